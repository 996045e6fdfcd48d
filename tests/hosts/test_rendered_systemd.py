"""The systemd units of issue 23 run on namespace hosts (systemd_host.py):
examples/hosts.toml as it is (its hosts are 192.0.2.1-3, the namespace
hosts' addresses), the units of two of its three hosts started, a majority
of acceptors serving a client; a killed agent is restarted, an exit 78 is not.

The units are `paxosctl.render.systemd`'s, as `paxosctl render systemd`
writes them; a `scale --engine systemd --apply` puts two more acceptors on
a fourth host through a `systemctl` that hands their units to it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
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
        # host-4 (192.0.2.4) is spare: a scale puts agents there.
        self.net = make_hosts(["host-1", "host-2", "host-3", "host-4", "client"])
        manifest = folder / "hosts.toml"
        shutil.copy(EXAMPLE, manifest)
        made = subprocess.run([PAXOSCTL, "certs", "init", "-f", str(manifest)], capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        self.manifest = load_manifest(manifest)
        self.etc = {}
        for name in ("host-1", "host-2", "host-3", "host-4", "client"):
            etc = self.etc[name] = folder / f"etc-{name}"
            shutil.copytree(folder / "certs", etc / "certs", ignore=shutil.ignore_patterns("ca.key"))
            shutil.copy(manifest, etc / "hosts.toml")
        self.machines = {name: SystemdHost(self.net[name], binds={BIN: PAXOSCTL, "/etc/paxosctl": self.etc[name]},
                                           time_scale=0.25)  # RestartSec=2s: 0.5 s here
                         for name in ("host-1", "host-2", "host-3", "host-4")}
        for name, machine in self.machines.items():
            if name in self.manifest.transport.hosts():  # host-4: nothing until a scale
                machine.install(units(self.manifest, name))
        self._held = MOUNT_POINTS.hold([(Path("/etc/paxosctl"), False)])

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """`paxosctl ARGS -f /etc/paxosctl/hosts.toml` on the client host."""
        command = wrap([str(PAXOSCTL), *args, "-f", ETC], [Bind(self.etc["client"], Path("/etc/paxosctl"))],
                       env={"PATH": "/usr/bin:/bin"}, cwd="/etc/paxosctl")
        return self.net["client"].run(command, timeout=timeout)

    def wait_probe(self, agents: list[str], probe: str = "readyz", timeout: float = 30,
                   manifest: Manifest | None = None) -> None:
        """Until each agent's /readyz (or /healthz) answers 200 to the client host
        (where `manifest`, by default the example's, places its probes)."""
        placing = manifest or self.manifest

        def ok(agent: str) -> bool:
            url = f"http://{placing.transport.placement(agent).http}/{probe}"
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


#: A systemctl for the client host: `daemon-reload`, `enable --now UNIT` and
#: `disable --now UNIT` handed to the test through a spool folder (the unit
#: file itself is in the --unit-dir the launcher wrote it to).
FAKE_SYSTEMCTL = """#!{python}
import json, sys, time
from pathlib import Path
spool = Path({spool!r})
args = sys.argv[1:]
if args == ["daemon-reload"]:
    sys.exit(0)
if len(args) != 3 or args[:2] not in (["enable", "--now"], ["disable", "--now"]):
    sys.exit(f"systemctl (test): {{' '.join(args)}} is not modelled")
request = spool / f"{{time.time_ns()}}.req"
request.with_suffix(".tmp").write_text(json.dumps(args))
request.with_suffix(".tmp").rename(request)
answer, deadline = request.with_suffix(".done"), time.monotonic() + 60
while not answer.exists():
    if time.monotonic() > deadline:
        sys.exit("systemctl (test): no answer")
    time.sleep(0.02)
if answer.read_text():
    sys.exit(answer.read_text())
"""


def test_scale_acceptors_to_a_new_host_through_systemctl(hosts: Hosts) -> None:
    """`paxosctl scale acceptor=5 --engine systemd --apply` from the client host:
    the operator put acceptor-3 and acceptor-4 in a new host's list (only in
    the manifests of that host and the client: the record tells the others
    where they are); the launcher writes their units, `systemctl enable --now`
    starts them on host-4, the change is in force; 5 -> 3 disables them."""
    import json
    import threading

    for name in ("host-1", "host-2", "host-3"):
        for unit in hosts.machines[name].units:
            hosts.machines[name].start(unit)
    hosts.wait_probe([a.name for a in hosts.manifest.agents])
    first = hosts.cli("propose", "three", timeout=60)
    assert first.returncode == 0, first.stderr
    folder = hosts.manifest.path.parent
    added = ("acceptor-3", "acceptor-4")
    for name in added:
        issued = subprocess.run([PAXOSCTL, "certs", "issue", name, "-f", str(hosts.manifest.path)],
                                capture_output=True, text=True)
        assert issued.returncode == 0, issued.stderr
        for suffix in (".crt", ".key"):
            shutil.copy2(folder / "certs" / "agent" / f"{name}{suffix}",
                         hosts.etc["host-4"] / "certs" / "agent" / f"{name}{suffix}")
    for name in ("operator.crt", "operator.key"):
        shutil.copy2(folder / "certs" / "operator" / name, hosts.etc["client"] / "certs" / "operator" / name)
    table = '\n[transport.hosts.host-4]\naddress = "192.0.2.4"\nagents = ["acceptor-3", "acceptor-4"]\n'
    for name in ("host-4", "client"):
        manifest = hosts.etc[name] / "hosts.toml"
        manifest.write_text(manifest.read_text() + table)
    spool, units = hosts.etc["client"] / "spool", hosts.etc["client"] / "units"
    spool.mkdir()
    systemctl = hosts.etc["client"] / "systemctl"
    systemctl.write_text(FAKE_SYSTEMCTL.format(python=sys.executable, spool=str(spool)))
    systemctl.chmod(0o755)
    machine, calls, stop = hosts.machines["host-4"], [], threading.Event()

    def serve() -> None:
        while not stop.wait(0.02):
            for request in sorted(spool.glob("*.req")):
                verb, _, unit = json.loads(request.read_text())
                error = ""
                try:
                    if verb == "enable":
                        machine.install({unit: (units / unit).read_text()})
                        machine.start(unit)
                    else:
                        machine.stop(unit)
                except Exception as e:  # noqa: BLE001 - the CLI shows it as systemctl's error
                    error = f"error: {e}"
                calls.append((verb, unit))
                request.with_suffix(".done").write_text(error)
                request.unlink()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    engine = ("--engine", "systemd", "--apply", "--systemctl", "/etc/paxosctl/systemctl",
              "--unit-dir", "/etc/paxosctl/units", "--timeout", "90")
    try:
        grown = hosts.cli("scale", "acceptor=5", *engine, timeout=120)
        assert grown.returncode == 0, grown.stderr
        assert "scale acceptor 3 -> 5: in force after" in grown.stdout, grown.stdout
        assert calls == [("enable", f"paxosctl-hosts-{n}.service") for n in added], calls
        unit = (units / "paxosctl-hosts-acceptor-3.service").read_text()
        assert " agent acceptor-3 " in unit and "--bootstrap" not in unit  # admitted as added
        with tempfile.TemporaryDirectory(prefix="pxm", dir="/tmp") as short:  # a socket path's limit
            edited = Path(short) / "hosts.toml"
            shutil.copy(hosts.etc["client"] / "hosts.toml", edited)
            hosts.wait_probe(list(added), "readyz", manifest=load_manifest(edited))
        status = hosts.cli("status", "-o", "json")
        assert status.returncode == 0, status.stdout  # all nine answer, the added ones learned
        assert cli_ok(hosts.cli("propose", "five", timeout=60))
        shrunk = hosts.cli("scale", "acceptor=3", *engine, timeout=120)
        assert shrunk.returncode == 0, shrunk.stderr
        assert calls[2:] == [("disable", f"paxosctl-hosts-{n}.service") for n in reversed(added)] or \
            sorted(calls[2:]) == [("disable", f"paxosctl-hosts-{n}.service") for n in added], calls
        assert not machine.runners
        assert cli_ok(hosts.cli("propose", "three-again", timeout=60))
    finally:
        stop.set()
        server.join(5)


def cli_ok(result: subprocess.CompletedProcess[str]) -> bool:
    assert result.returncode == 0, result.stderr
    return True
