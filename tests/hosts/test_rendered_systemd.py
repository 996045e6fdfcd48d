"""The systemd units of issue 23 run on namespace hosts (systemd_host.py):
examples/hosts.toml as it is (its hosts are 192.0.2.1-3, the namespace
hosts' addresses), the units of two of its three hosts started, a majority
of acceptors serving a client; a killed agent is restarted, an exit 78 is not.

The units come from `units` below (the contract, by hand) until
`paxosctl.render.systemd` is merged; then `units = systemd.units` with
`OPTIONS = systemd.Options(...)` is the one change.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from clusters import wait_until
from hosts import RunState
from mounts import MOUNT_POINTS, Bind, wrap
from systemd_host import SystemdHost

from paxos_agents.runtime.frames import EXIT_NEEDS_OPERATOR
from paxosctl.manifest import Manifest, load_manifest
from paxosctl.render import systemd

EXAMPLE = Path(__file__).parents[2] / "examples" / "hosts.toml"
PAXOSCTL = Path(sys.executable).parent / "paxosctl"
BIN, ETC, STATE = "/opt/paxosctl/bin/paxosctl", "/etc/paxosctl/hosts.toml", "/var/lib/paxosctl/hosts"


def units(cluster: Manifest, host: str | None) -> dict[str, str]:
    """`paxosctl render systemd`'s unit files of the agents placed on `host`
    (every host's when None), with the contract's default paths."""
    return systemd.units(cluster, host, systemd.Options(bin=BIN, manifest=ETC, state_dir=STATE))


class Hosts:
    """examples/hosts.toml certified; each host an /etc/paxosctl of its own (the
    manifest and certs/, no CA key), a client host with the client certificate."""

    def __init__(self, make_hosts, folder: Path) -> None:
        self.net = make_hosts(["host-1", "host-2", "host-3", "client"])
        manifest = folder / "hosts.toml"
        shutil.copy(EXAMPLE, manifest)
        made = subprocess.run([PAXOSCTL, "certs", "init", "-f", str(manifest)], capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        self.manifest = load_manifest(manifest)
        self.etc = {}
        for name in ("host-1", "host-2", "host-3", "client"):
            etc = self.etc[name] = folder / f"etc-{name}"
            shutil.copytree(folder / "certs", etc / "certs", ignore=shutil.ignore_patterns("ca.key"))
            shutil.copy(manifest, etc / "hosts.toml")
        self.machines = {name: SystemdHost(self.net[name], binds={BIN: PAXOSCTL, "/etc/paxosctl": self.etc[name]},
                                           time_scale=0.25)  # RestartSec=2s: 0.5 s here
                         for name in ("host-1", "host-2", "host-3")}
        for name, machine in self.machines.items():
            machine.install(units(self.manifest, name))
        self._held = MOUNT_POINTS.hold([(Path("/etc/paxosctl"), False)])

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """`paxosctl ARGS -f /etc/paxosctl/hosts.toml` on the client host."""
        command = wrap([str(PAXOSCTL), *args, "-f", ETC], [Bind(self.etc["client"], Path("/etc/paxosctl"))],
                       env={"PATH": "/usr/bin:/bin"}, cwd="/etc/paxosctl")
        return self.net["client"].run(command, timeout=timeout)

    def wait_probe(self, agents: list[str], probe: str = "readyz", timeout: float = 30) -> None:
        """Until each agent's /readyz (or /healthz) answers 200 to the client host."""
        def ok(agent: str) -> bool:
            url = f"http://{self.manifest.transport.placement(agent).http}/{probe}"
            return self.net["client"].run(["curl", "-sf", "-m", "2", url]).returncode == 0
        wait_until(lambda: all(ok(a) for a in agents), timeout, f"{agents} answering /{probe}")

    def close(self) -> None:
        for machine in self.machines.values():
            machine.close()
        MOUNT_POINTS.release(self._held)


@pytest.fixture
def hosts(make_hosts, tmp_path: Path) -> Iterator[Hosts]:
    made = Hosts(make_hosts, tmp_path)
    try:
        yield made
    finally:
        made.close()


def test_two_hosts_units_serve_and_a_killed_agent_is_restarted(hosts: Hosts) -> None:
    runners = {name: machine.start(unit) for name in ("host-1", "host-2")
               for machine in [hosts.machines[name]] for unit in machine.units}
    assert len(runners) == 2 and len(hosts.machines["host-1"].runners) == 3
    on_two = [a for t in hosts.manifest.transport.host_tables if t.name != "host-3" for a in t.agents]
    hosts.wait_probe(on_two)
    first = hosts.cli("propose", "two-hosts", timeout=60)
    assert first.returncode == 0, first.stderr
    acceptor = hosts.machines["host-2"].runners["paxosctl-hosts-acceptor-1.service"]
    assert (hosts.net["host-2"].volume / "state" / "acceptor-1.db").exists()  # StateDirectory= is the volume
    hosts.net["host-2"].kill_all()  # SIGKILL, a failure for Restart=on-failure, to its three agents
    for runner in hosts.machines["host-2"].runners.values():
        runner.wait_started(2, timeout=10)
        assert runner.exit_codes == [-9]
    # Up again, with their state from the volume (the store is not made anew).
    hosts.wait_probe(list(hosts.manifest.transport.host_tables[1].agents), "healthz")
    assert "incarnation 2" in hosts.net["host-2"].log_path("paxosctl-hosts-acceptor-1").read_text()
    # Ready again, and serving: with host-3 down, a propose needs acceptor-1 back.
    hosts.wait_probe(list(hosts.manifest.transport.host_tables[1].agents), "readyz")
    again = hosts.cli("propose", "after-the-host", timeout=60)
    assert again.returncode == 0, again.stderr
    # acceptor-1 alone killed, the cluster idle: the peers dial it again on their
    # own (a leader with nothing to send once left it unready for good).
    acceptor.wait_started(2).kill()
    acceptor.wait_started(3, timeout=10)
    hosts.wait_probe(["acceptor-1"], "readyz", timeout=20)
    last = hosts.cli("propose", "after-the-agent", timeout=60)
    assert last.returncode == 0, last.stderr


def test_an_exit_78_is_not_restarted(hosts: Hosts) -> None:
    key = hosts.etc["host-3"] / "certs" / "agent" / "acceptor-2.key"
    key.chmod(0o644)  # a key others can read: the agent refuses to start, exit 78
    machine = hosts.machines["host-3"]
    runner = machine.start("paxosctl-hosts-acceptor-2.service")
    assert runner.wait_exited(30) == EXIT_NEEDS_OPERATOR  # the runner gave up: RestartPreventExitStatus=78
    assert runner.starts == 1 and runner.state is RunState.EXITED
    assert "key" in hosts.net["host-3"].log_path("paxosctl-hosts-acceptor-2").read_text().splitlines()[-1]
    # Mended by the operator and started again, the same unit is restarted after a SIGKILL.
    key.chmod(0o600)
    machine.stop("paxosctl-hosts-acceptor-2.service")
    runner = machine.start("paxosctl-hosts-acceptor-2.service")
    wait_until(lambda: (hosts.net["host-3"].volume / "run" / "acceptor-2.lock").exists(), 20,
               "acceptor-2 running")
    runner.wait_started(1).kill()
    runner.wait_started(2, timeout=10)
