"""The namespace hosts themselves (tests/hosts.py): they talk over TCP, resolve
each other's names, partition and heal, die, restart, lose their disk, and
leave nothing behind. Every process under test runs inside a namespace."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

import hosts
from clusters import wait_until
from hosts import Host, HostsError, NamespacesUnavailable, Network, RunState

PY = sys.executable
PORT = 7000

ECHO_SERVER = """
import socket, sys
server = socket.create_server(("0.0.0.0", int(sys.argv[1])))
while True:
    conn, _ = server.accept()
    with conn:
        conn.sendall(conn.recv(64))
"""

PROBE = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as conn:
    conn.sendall(b"ping " + sys.argv[1].encode())
    print(conn.recv(64).decode())
"""

#: A service that refuses (exit 42) once its volume holds a file named `refuse`;
#: else it marks its volume with up-<pid> and waits to be killed.
SERVICE = """
import os, pathlib, signal, sys
if pathlib.Path("refuse").exists():
    sys.exit(42)
pathlib.Path(f"up-{os.getpid()}").touch()
signal.pause()
"""


def service_up(host: Host, process: subprocess.Popen[bytes]) -> None:
    """Wait until a SERVICE process is past its check of `refuse`."""
    wait_until(lambda: (host.volume / f"up-{process.pid}").exists(), 10, f"service {process.pid} up")


def probe(client: Host, target: str, timeout: float = 0.5) -> bool:
    """True if `client` gets an echo from target:PORT within `timeout`."""
    result = client.run([PY, "-c", PROBE, target, str(PORT), str(timeout)], timeout=timeout + 10)
    return result.returncode == 0 and result.stdout.strip() == f"ping {target}"


def echo_server(host: Host) -> subprocess.Popen[bytes]:
    """An echo server on host:PORT, listening when this returns."""
    server = host.popen([PY, "-c", ECHO_SERVER, str(PORT)], log="echo")
    wait_until(lambda: probe(host, "127.0.0.1"), 10, f"the echo server on {host.name}")
    return server


def gone(process: psutil.Process) -> bool:
    """Ended (a zombie not yet reaped by its parent counts: it runs nothing)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def netns_names(pid: int | None = None) -> set[str]:
    """`ip netns list`; with `pid`, only the names made by that run."""
    names = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout.split())
    return names if pid is None else {n for n in names if n.startswith(f"{hosts.PREFIX}-{pid}-")}


def root_links() -> set[str]:
    return {line.split(":")[1].strip() for line in
            subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout.splitlines()}


def test_two_hosts_talk_over_tcp(make_hosts):
    net = make_hosts(["a", "b"])
    echo_server(net["a"])
    assert probe(net["b"], net["a"].address)
    assert probe(net["b"], "a")


def test_names_resolve_inside_the_hosts_only(make_hosts):
    net = make_hosts(["a", "b"], aliases={"a": ["acceptor-0.paxos.demo.svc"]})
    net["b"].add_alias("proposer-0.paxos.demo.svc")
    lookup = "import socket, sys; print(*(socket.gethostbyname(n) for n in sys.argv[1:]))"
    names = ["a", "acceptor-0.paxos.demo.svc", "b", "proposer-0.paxos.demo.svc"]
    for host in net.hosts:
        result = host.run([PY, "-c", lookup, *names])
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [net["a"].address] * 2 + [net["b"].address] * 2
    for name in ("acceptor-0.paxos.demo.svc", "proposer-0.paxos.demo.svc"):
        with pytest.raises(socket.gaierror):
            socket.gethostbyname(name)


def test_a_moved_alias_resolves_to_its_new_host_everywhere(make_hosts):
    net = make_hosts(["a", "b", "c"], aliases={"a": ["replica-2.replica.demo.svc"]})
    net["b"].move_alias("replica-2.replica.demo.svc")
    lookup = "import socket, sys; print(socket.gethostbyname(sys.argv[1]))"
    for host in net.hosts:
        result = host.run([PY, "-c", lookup, "replica-2.replica.demo.svc"])
        assert result.stdout.split() == [net["b"].address], (host, result)
    assert net["a"].aliases == [] and net["b"].aliases == ["replica-2.replica.demo.svc"]
    with pytest.raises(hosts.HostsError, match="no host's alias"):
        net["c"].move_alias("nobody.demo.svc")


def test_partition_stops_traffic_and_heal_restores_it(make_hosts):
    net = make_hosts(["a", "b"])
    echo_server(net["a"])
    assert probe(net["b"], "a")
    net["a"].partition()
    assert not probe(net["b"], "a"), "a partitioned host answered"
    net["a"].heal()
    wait_until(lambda: probe(net["b"], "a"), 10, "a's echo after heal")


def test_cut_from_drops_one_peer_only(make_hosts):
    net = make_hosts(["a", "b", "c"])
    echo_server(net["a"])
    net["a"].cut_from(net["b"])
    assert not probe(net["b"], "a"), "b reached a through the cut"
    assert probe(net["c"], "a"), "the cut between a and b stopped c too"
    net["a"].heal()
    wait_until(lambda: probe(net["b"], "a"), 10, "a's echo to b after heal")


def test_kill_all_leaves_no_process_in_the_namespace(make_hosts):
    net = make_hosts(["a", "b"])
    a = net["a"]
    mine = [a.popen(["sleep", "60"]), a.popen(["sh", "-c", "setsid sleep 61 & exec sleep 62"], log="sh")]
    bystander = net["b"].popen(["sleep", "63"])
    wait_until(lambda: len(a.pids()) == 3, 10, "three processes in a")
    in_namespace = [psutil.Process(pid) for pid in a.pids()]
    killed = a.kill_all()
    assert a.pids() == []
    assert sorted(killed) == sorted(p.pid for p in in_namespace)
    assert all(gone(p) for p in in_namespace)
    assert all(p.returncode == -9 for p in mine)
    assert bystander.poll() is None, "kill_all on a reached b"


def test_kill_all_gets_a_process_still_on_its_way_in(make_hosts, monkeypatch):
    a = make_hosts(["a"])["a"]
    # A loaded machine, made certain: 0.3 s pass before `ip netns exec` enters the namespace.
    command = a._command
    monkeypatch.setattr(a, "_command", lambda argv: ["sh", "-c", 'sleep 0.3; exec "$@"', "sh", *command(argv)])
    just_started = a.popen(["sleep", "60"])
    a.kill_all()
    assert just_started.wait(5) == -9


def test_keep_running_restarts_until_the_permanent_exit_code(make_hosts):
    a = make_hosts(["a"])["a"]
    runner = a.keep_running("svc", [PY, "-c", SERVICE], permanent_exit=42, backoff=0.05)
    first = runner.wait_started(1)
    service_up(a, first)
    a.kill_all()
    second = runner.wait_started(2)
    assert second.pid != first.pid
    service_up(a, second)
    assert runner.exit_codes == [-9]
    (a.volume / "refuse").touch()
    a.kill_all()
    assert runner.wait_exited() == 42
    assert (runner.starts, runner.exit_codes) == (3, [-9, -9, 42])
    assert a.pids() == []
    assert (a.logs / "svc.log").read_text().count("--- ") == 3


def test_keep_running_backs_off_doubling_up_to_its_ceiling(make_hosts):
    a = make_hosts(["a"])["a"]
    runner = a.keep_running("fails", [PY, "-c", "raise SystemExit(1)"], backoff=0.05, max_backoff=0.2)
    runner.wait_started(6)
    runner.stop()
    gaps = [later - earlier for earlier, later in zip(runner.start_times, runner.start_times[1:])]
    # Lower bounds only: a restart never comes before its back-off (0.05, 0.1, then 0.2 at most).
    assert all(gap >= wait for gap, wait in zip(gaps, [0.05, 0.1, 0.2, 0.2, 0.2])), gaps
    assert set(runner.exit_codes[:5]) == {1}


def test_runner_stop_ends_the_process_and_the_restarts(make_hosts):
    a = make_hosts(["a"])["a"]
    runner = a.keep_running("svc", [PY, "-c", SERVICE], backoff=0.05)
    process = runner.wait_started(1)
    runner.stop()
    assert process.returncode == -15
    assert (runner.state, runner.starts) == (RunState.STOPPED, 1)
    assert a.pids() == []


def test_the_volume_survives_a_restart_and_wipe_empties_it(make_hosts):
    a = make_hosts(["a"])["a"]
    write = "import pathlib; pathlib.Path('store').mkdir(); pathlib.Path('store/db').write_text('state')"
    assert a.run([PY, "-c", write]).returncode == 0
    a.kill_all()
    assert (a.volume / "store" / "db").read_text() == "state"
    a.wipe()
    assert a.volume.is_dir() and list(a.volume.iterdir()) == []


def _assert_nothing_left(net: Network, links_before: set[str], processes: list[psutil.Process]) -> None:
    made = [net.switch, *(h.netns for h in net.hosts)]
    assert not any(name.startswith(net.prefix) for name in netns_names())
    assert not any((hosts.ETC_NETNS / name).exists() for name in made)
    assert not net.folder.exists()
    assert root_links() == links_before, "a link appeared in the root namespace"
    assert all(gone(process) for process in processes)


def test_teardown_leaves_nothing_even_after_a_failure():
    links_before = root_links()
    with pytest.raises(ZeroDivisionError):
        with Network(["a", "b"], aliases={"a": ["x.svc"]}) as net:
            runner = net["a"].keep_running("svc", [PY, "-c", SERVICE])
            processes = [psutil.Process(p.pid) for p in (runner.wait_started(1), net["b"].popen(["sleep", "60"]))]
            net["a"].cut_from(net["b"])
            net["b"].partition()
            assert root_links() == links_before, "a link appeared in the root namespace"
            assert {net.switch, net["a"].netns, net["b"].netns} <= netns_names()
            1 / 0
    _assert_nothing_left(net, links_before, processes)


def test_a_failure_while_making_the_hosts_leaves_nothing(monkeypatch):
    made = []

    def fail_on_second(self, host):
        made.append(self)
        if host.name == "b":
            raise HostsError("planted")
        original(self, host)

    original = Network._make_host
    monkeypatch.setattr(Network, "_make_host", fail_on_second)
    links_before = root_links()
    with pytest.raises(HostsError, match="planted"):
        Network(["a", "b"])
    _assert_nothing_left(made[0], links_before, [])


def test_sweep_removes_a_dead_runs_leftovers_and_no_live_ones():
    gone = subprocess.Popen(["true"])
    gone.wait()
    # Another prefix: a parallel run's own sweep would take these dead leftovers first.
    dead = f"pxnt-{gone.pid}-abcdef"
    live = f"pxnt-{os.getpid()}-fedcba-sw"
    orphan = None
    try:
        for name in (f"{dead}-sw", f"{dead}-a", live):
            subprocess.run(["ip", "netns", "add", name], check=True)
        (hosts.ETC_NETNS / f"{dead}-a").mkdir(parents=True)
        (hosts.ETC_NETNS / f"{dead}-a" / "hosts").write_text("192.0.2.1 a\n")
        Path("/tmp", dead).mkdir()
        orphan = subprocess.Popen(["ip", "netns", "exec", f"{dead}-a", "sleep", "60"])
        wait_until(lambda: subprocess.run(["ip", "netns", "pids", f"{dead}-a"], capture_output=True,
                                          text=True).stdout.strip(), 5, "the orphan in its namespace")
        removed = hosts.sweep_stale("pxnt")
        assert {f"{dead}-sw", f"{dead}-a", dead} <= set(removed)
        assert live not in removed and live in netns_names()
        assert not {f"{dead}-sw", f"{dead}-a"} & netns_names()
        assert not (hosts.ETC_NETNS / f"{dead}-a").exists() and not Path("/tmp", dead).exists()
        assert orphan.wait(5) == -9
    finally:
        if orphan is not None and orphan.poll() is None:
            orphan.kill()
            orphan.wait()
        for name in (f"{dead}-sw", f"{dead}-a", live):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        shutil.rmtree(hosts.ETC_NETNS / f"{dead}-a", ignore_errors=True)
        shutil.rmtree(Path("/tmp", dead), ignore_errors=True)


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), (None, pytest.skip.Exception)],
                         ids=["ci-fails", "locally-skips"])
def test_no_namespaces_skips_locally_and_fails_in_ci(monkeypatch, tmp_path, ci, outcome):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `ip` to be found
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(NamespacesUnavailable) as unavailable:
        Network(["a"])
    # Caught as BaseException: a skip where a failure was due must fail here, not skip this test.
    with pytest.raises(BaseException, match="^network-namespace hosts unavailable: no `ip` command") as ended:
        hosts.unavailable(str(unavailable.value))
    assert ended.type is outcome


@pytest.mark.parametrize(("names", "aliases", "error"), [
    (["A"], {}, "host name 'A'"),
    (["a", "a"], {}, "host names repeat"),
    (["a"], {"b": ["x.svc"]}, "aliases for 'b': no such host"),
    (["a", "b"], {"a": ["b"]}, "a name is given twice"),
    (["a"], {"a": ["Bad_Name"]}, "alias 'Bad_Name' is not a DNS name"),
], ids=["upper-case", "repeated", "alias-of-nobody", "alias-is-a-host", "alias-not-dns"])
def test_bad_names_are_refused_before_anything_is_made(names, aliases, error):
    before = netns_names(os.getpid())  # this run's only: a parallel run makes its own meanwhile
    with pytest.raises(HostsError, match=error):
        Network(names, aliases=aliases)
    assert netns_names(os.getpid()) == before
