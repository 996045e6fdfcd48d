"""`paxosctl render systemd`: one unit per agent, `paxosctl-<cluster>-<agent>.service`,
each running `paxosctl agent` in the foreground.

systemd starts, restarts and stops the process; Paxos decides who votes.
`Restart=on-failure` restarts a crash; `RestartPreventExitStatus=78 2`
does not restart what a restart would only repeat (78: a certificate,
state it cannot open or that is missing; 2: bad input), and the unit
shows that one line in `systemctl status`. The hardening is the shipped
unit's (examples/paxosctl.service); an agent is one process, so the
unit's control group is the agent.

Which agents: those `[transport.hosts.<host>]` places on `host`, or every
agent of the manifest when `host` is None (agents no host table places,
as in a manifest of Unix sockets, are on no host: they are written only
then).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from ..errors import UsageError
from ..manifest import Manifest, display_path

__all__ = ["Options", "unit_name", "units"]

#: StateDirectory= is relative to this; a state dir elsewhere is made writable by ReadWritePaths=.
STATE_ROOT = "/var/lib"


@dataclass(frozen=True, slots=True)
class Options:
    """Where things are on the host; None: the default for the cluster
    (manifest `/etc/paxosctl/<cluster>.toml`, state dir
    `/var/lib/paxosctl/<cluster>`)."""

    bin: str = "/opt/paxosctl/bin/paxosctl"
    manifest: str | None = None
    state_dir: str | None = None
    user: str = "paxosctl"

    def manifest_path(self, cluster: Manifest) -> str:
        return self.manifest or f"/etc/paxosctl/{cluster.name}.toml"

    def state_path(self, cluster: Manifest) -> str:
        return self.state_dir or f"{STATE_ROOT}/paxosctl/{cluster.name}"


def unit_name(cluster: Manifest, agent: str) -> str:
    return f"paxosctl-{cluster.name}-{agent}.service"


def agents_on(cluster: Manifest, host: str | None) -> tuple[str, ...]:
    """The agents whose units go on `host` (every agent if None)."""
    if host is None:
        return tuple(a.name for a in cluster.agents)
    hosts = cluster.transport.hosts()
    if host not in hosts:
        known = ", ".join(hosts) if hosts else "none ([transport.hosts] is empty: leave --host out)"
        raise UsageError(f"--host: {display_path(cluster.path)} has no host {host!r}; hosts: {known}")
    return hosts[host]


def _check_paths(opts: Options, cluster: Manifest) -> None:
    for flag, path in (("--bin", opts.bin), ("--manifest-path", opts.manifest_path(cluster)),
                       ("--state-dir", opts.state_path(cluster))):
        if not posixpath.isabs(path) or any(c.isspace() or c in "\"'\\%$;" for c in path):
            raise UsageError(f"{flag}: {path!r:.80} is not usable in a unit; allowed: an absolute path "
                             "without spaces, quotes, \\, %, $ or ;")


def unit(cluster: Manifest, agent: str, opts: Options) -> str:
    """The text of agent's unit (`--bootstrap` only for the manifest's own agents)."""
    manifest = opts.manifest_path(cluster)
    state = opts.state_path(cluster)
    bootstrap = " --bootstrap" if agent in {a.name for a in cluster.agents} else ""
    if posixpath.commonpath([state, STATE_ROOT]) == STATE_ROOT and state != STATE_ROOT:
        where = f"StateDirectory={posixpath.relpath(state, STATE_ROOT)}\nStateDirectoryMode=0700"
    else:
        where = f"ReadWritePaths={state}"
    return f"""\
# Agent {agent} of paxosctl cluster {cluster.name}, rendered by `paxosctl render systemd`
# from {display_path(cluster.path)}. Install the manifest as {manifest} (its certificates
# folder, if TLS, beside it), then:
#   systemctl daemon-reload && systemctl enable --now {unit_name(cluster, agent)}

[Unit]
Description=paxosctl agent {agent} of cluster {cluster.name}
After=network-online.target
Wants=network-online.target
# A member is never given up on: exit 78 and 2 stop the restarts (below), any
# other failure is retried every RestartSec for as long as it takes.
StartLimitIntervalSec=0

[Service]
Type=exec
ExecStart={opts.bin} agent {agent} -f {manifest} --state-dir {state}{bootstrap}
# SIGTERM: the agent finishes its current persist and exits 0.
KillSignal=SIGTERM
TimeoutStopSec=30
Restart=on-failure
RestartSec=2s
# 78: a refusal a restart would repeat (certificate, lost or unreadable state),
# its one line in `systemctl status`; 2: a bad manifest or option.
RestartPreventExitStatus=78 2

User={opts.user}
Group={opts.user}
UMask=0077
{where}
# The manifest's folder: its certificates path is relative to it.
WorkingDirectory={posixpath.dirname(manifest)}

# Hardening, as examples/paxosctl.service. The agent needs its state dir
# (read-write), TCP or Unix sockets, fsync.
NoNewPrivileges=yes
CapabilityBoundingSet=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
"""


def units(cluster: Manifest, host: str | None, opts: Options) -> dict[str, str]:
    """File name -> unit text, for every agent on `host` (every agent if None)."""
    _check_paths(opts, cluster)
    return {unit_name(cluster, agent): unit(cluster, agent, opts) for agent in agents_on(cluster, host)}
