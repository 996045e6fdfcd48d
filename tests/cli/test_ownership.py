"""One owner per state dir, private state, impossible state dirs, log rotation.

Real clusters (one OS process per agent) in fresh temp folders, driven by
the real `paxosctl`. Each test names the behaviour it guards; breaking
that behaviour turns it red:

- the state dir's lock: of two `up -d` at once one wins, the loser touches
  nothing of the winner's and names it;
- cluster.json: a manifest of another cluster is refused by every command;
- the running manifest's digest: `up` with other settings points to apply;
- the metrics port check with SO_REUSEADDR: `up` right after a scrape;
- umask: what the cluster makes 0700 / 0600, an existing state dir's mode kept;
- the state_dir checks of `validate` and `up`: one line, exit 2, nothing created;
- RotatingFileHandler: supervisor.log rotates like the agents' logs;
- the registry rebuilt from the stores (members.py): a lost members.json
  keeps every member id, and an acceptor whose store went with it refuses
  to start (issue 20, probe 5).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from clusters import PAXOSCTL, ClusterFactory, describe, manifest_text, paxosctl, wait_until

from paxos_agents.runtime.spec import LOG_MAX_BYTES
from paxosctl.manifest import MetricsSettings

UP_LINE = re.compile(r"cluster test up: 3 agents running, leader replica-\d \(supervisor pid (\d+)\)\n")


def with_state_dir(text: str, state_dir: str) -> str:
    """A manifest text with `state_dir` in its [cluster] table."""
    return text.replace("[cluster]\n", f"[cluster]\nstate_dir = {json.dumps(state_dir)}\n", 1)


def one_error_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The single `error: ...` line of a command that must fail with `code`
    and print nothing else (no hint, no traceback)."""
    assert result.returncode == code, describe(result)
    assert result.stdout == "", describe(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), describe(result)
    return lines[0]


def files_under(folder: Path) -> set[str]:
    return {str(Path(root, name).relative_to(folder))
            for root, dirs, files in os.walk(folder) for name in dirs + files}


# ------------------------------------------------------------ one owner


def test_of_two_racing_ups_one_wins_and_the_other_names_it(make_cluster: ClusterFactory) -> None:
    """Guards the state dir lock: both pass the "already running" check
    (they start together, well before either daemon claims the folder; an
    `up` that found the winner already serving would exit 0 instead),
    one supervisor claims the folder, the other exits 1 without touching
    the winner's pid file or socket, and no agent is left without a supervisor."""
    cluster = make_cluster("replicas", start=False)
    racers = [subprocess.Popen([PAXOSCTL, "up", "-d", "-f", str(cluster.manifest)], cwd=cluster.dir,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = sorted(((*p.communicate(timeout=60), p.returncode) for p in racers),
                      key=lambda o: o[2])
    cluster.remember_processes()
    (won_out, won_err, won), (lost_out, lost_err, lost) = outcomes
    assert (won, won_err) == (0, ""), outcomes
    winner = int(UP_LINE.fullmatch(won_out).group(1))
    assert (lost, lost_out) == (1, ""), outcomes
    assert lost_err == f"error: cluster test is already running (supervisor pid {winner})\n"

    # The winner's pid file and socket are intact: it is found and it answers.
    assert cluster.supervisor().pid == winner
    assert json.loads((cluster.state_dir / "supervisor.pid").read_text())["pid"] == winner
    cluster.wait_healthy()
    # Every process of the cluster is the winner or descends from it.
    family = {winner} | {p.pid for p in psutil.Process(winner).children(recursive=True)}
    assert {p.pid for p in cluster.owned_processes()} <= family
    assert len(cluster.agent_processes()) == 3


def test_a_second_supervisor_touches_nothing_of_the_live_one(make_cluster: ClusterFactory) -> None:
    """Guards the lock where no CLI check helps: the daemon itself, started
    by hand on a running cluster, must not unlink its socket or pid file."""
    cluster = make_cluster("replicas")
    sock = cluster.state_dir / "control.sock"
    pid_file = cluster.state_dir / "supervisor.pid"
    before = (os.stat(sock).st_ino, pid_file.read_text())
    supervisor = cluster.supervisor()

    second = subprocess.run([sys.executable, "-m", "paxosctl.supervisor.daemon", str(cluster.manifest)],
                            cwd=cluster.dir, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=30)
    assert second.returncode == 1, describe(second)
    report = json.loads(second.stderr)
    assert report == {"message": f"cluster test is already running (supervisor pid {supervisor.pid})",
                      "hint": None, "exit_code": 1}
    assert (os.stat(sock).st_ino, pid_file.read_text()) == before
    assert cluster.supervisor().pid == supervisor.pid
    cluster.wait_healthy()


def test_a_manifest_of_another_cluster_is_refused_by_every_command(make_cluster: ClusterFactory) -> None:
    """Guards cluster.json: a second manifest that names the same state_dir
    (by mistake) is refused with one line naming the real owner, running or
    not, and never acts on it."""
    cluster = make_cluster("replicas")
    identity = json.loads((cluster.state_dir / "cluster.json").read_text())
    members = json.loads((cluster.state_dir / "members.json").read_text())
    assert identity["format"] == 1 and identity["name"] == "test"
    assert identity["manifest"] == str(cluster.manifest)
    assert identity["id"] == members["cluster_id"]  # the id every store records
    supervisor = cluster.supervisor()
    agents = {name: p.pid for name, p in cluster.agent_processes().items()}
    other = cluster.dir / "other.toml"
    other.write_text(with_state_dir(manifest_text("replicas", name="other"), ".paxosctl/test"))
    owner = f"error: other.toml: cluster.state_dir: {cluster.state_dir} belongs to cluster test " \
            f"(manifest {cluster.manifest}{{running}}), not to cluster other; " \
            "give other.toml a state_dir of its own"
    commands = [("up", "-d", "other.toml"), ("up", "other.toml"), ("validate", "other.toml"),
                *((*args, "--file", "other.toml") for args in (
                    ("down",), ("status",), ("propose", "v"), ("decided",), ("logs", "supervisor"),
                    ("kill", "replica-0"), ("restart", "replica-0"), ("chaos", "--drop", "0.5"),
                    ("metrics",), ("bench", "--requests", "1"), ("soak", "--duration", "1s")))]
    running = f"; running, supervisor pid {supervisor.pid}"
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda args: paxosctl(*args, cwd=cluster.dir), commands))
    for result in results:
        assert one_error_line(result, 1) == owner.format(running=running), describe(result)

    # The cluster it names went on untouched.
    assert cluster.supervisor().pid == supervisor.pid
    assert {name: p.pid for name, p in cluster.agent_processes().items()} == agents
    assert not cluster.status().get("chaos")

    # Stopped, it still owns the folder.
    cluster.down()
    for args in (("up", "-d", "other.toml"), ("status", "-f", "other.toml")):
        result = paxosctl(*args, cwd=cluster.dir)
        assert one_error_line(result, 1) == owner.format(running=""), args


def test_up_with_other_settings_points_to_apply(make_cluster: ClusterFactory) -> None:
    """Guards the running manifest's digest: `up` of a changed manifest is
    refused (exit 1); of the same settings written differently, a no-op (exit 0)."""
    cluster = make_cluster("replicas")
    pid = cluster.supervisor().pid
    original = cluster.manifest.read_text()

    cluster.manifest.write_text(original + "\n[paxos]\nwindow = 8\n")
    result = cluster.run("up", "-d")
    assert result.returncode == 1 and result.stdout == "", describe(result)
    assert result.stderr == (
        f"error: cluster test is already running (supervisor pid {pid}), but cluster.toml differs "
        f"from what it runs (the manifest it was started from ({cluster.manifest} as it was "
        "then), as apply, scale and replace changed it)\n"
        "  hint: to run cluster.toml: paxosctl apply -f cluster.toml (or paxosctl down -f "
        "cluster.toml, then up)\n")

    cluster.manifest.write_text("# the same settings, another layout\n\n" + original.replace(" = ", "="))
    result = cluster.run("up", "-d")
    assert (result.returncode, result.stdout, result.stderr) == (
        0, f"cluster test is already running (supervisor pid {pid})\n", ""), describe(result)
    assert cluster.supervisor().pid == pid


# ------------------------------------------------------------------- metrics port


def test_up_right_after_a_scrape_and_down(make_cluster: ClusterFactory) -> None:
    """Guards SO_REUSEADDR in the metrics port check: a scrape leaves the
    port's side of the connection in TIME_WAIT for a minute, which the real
    server binds over; the check must not refuse it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cluster = make_cluster("replicas", metrics={"listen": f"127.0.0.1:{port}"})
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert b"paxosctl_build_info" in response.read()
    cluster.down()
    # Which side of the scrape closed first is a race; make sure the port's
    # side holds a TIME_WAIT: accept one connection on it and close first.
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as peer:
            accepted, _ = listener.accept()
            accepted.close()  # the active close: TIME_WAIT on the port's side
            peer.recv(1)
    wait_until(lambda: any(c.status == psutil.CONN_TIME_WAIT and c.laddr and c.laddr.port == port
                           for c in psutil.net_connections("tcp")),
               5, f"a connection in TIME_WAIT on port {port}")
    cluster.up()  # asserts exit 0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200


# ------------------------------------------------------------------ private state


@pytest.mark.parametrize("existing", [False, True], ids=["made-by-up", "existing-0755"])
def test_state_is_private(make_cluster: ClusterFactory, existing: bool) -> None:
    """Guards the umask: every file and folder the cluster makes is 0600 /
    0700, the socket 0600, and the state dir 0700 if `up` made it. An
    existing state dir keeps its mode through up and down (issue 20: it may
    be the operator's project folder)."""
    cluster = make_cluster("replicas", start=False)
    if existing:
        cluster.state_dir.mkdir(parents=True)
        cluster.state_dir.chmod(0o755)
    cluster.up()
    with cluster.client() as client:
        client.propose("secret", timeout=20)
    wait_until(lambda: (cluster.state_dir / "state" / "replica-0.db-wal").exists(), 10,
               "replica-0's write-ahead log")

    folder_mode = 0o755 if existing else 0o700
    assert oct(stat.S_IMODE(cluster.state_dir.stat().st_mode)) == oct(folder_mode)
    modes = {}
    for root, dirs, files in os.walk(cluster.state_dir):
        for name in dirs + files:
            path = Path(root, name)
            modes[str(path.relative_to(cluster.state_dir))] = stat.S_IMODE(path.lstat().st_mode)
    expected = {"cluster.json", "supervisor.pid", "supervisor.lock", "members.json", "control.sock",
                "created.json", "logs", "logs/supervisor.log", "logs/replica-0.log", "state",
                "state/replica-0.db", "state/replica-0.db-wal", "run", "run/endpoints.json",
                "run/replica-0.sock"}
    assert expected <= modes.keys(), sorted(modes)
    wrong = {name: oct(mode) for name, mode in modes.items()
             if mode != (0o700 if (cluster.state_dir / name).is_dir() else 0o600)}
    assert wrong == {}
    cluster.down()
    assert oct(stat.S_IMODE(cluster.state_dir.stat().st_mode)) == oct(folder_mode)
    assert ipaddress.ip_address(MetricsSettings().host).is_loopback  # metrics: this machine only


# ---------------------------------------------------------- impossible state dirs


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """`folder`, made a folder this process cannot create files in: 0555,
    and for root (whom permission bits do not stop) immutable (chattr +i)."""
    folder.mkdir(mode=0o555)
    if os.geteuid() != 0:
        yield
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode:
        pytest.skip("running as root, and chattr +i is not available here")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


IMPOSSIBLE = [
    # (id, state_dir, what the error says)
    ("under-proc", "/proc/paxosctl-test/state", "/proc/paxosctl-test/state is under /proc, a kernel file system"),
    ("under-sys", "/sys/paxosctl-test", "/sys/paxosctl-test is under /sys, a kernel file system"),
    ("too-long-for-a-socket", "d" * 100 + "/state", "over the 107 a Unix socket allows"),
    ("a-file", "a-file", "/a-file is not a folder"),
    ("under-a-file", "a-file/state", "/a-file/state cannot be created: {dir}/a-file is not a folder"),
    ("not-writable", "read-only/state", "/read-only/state cannot be created: {dir}/read-only is not writable"),
]


@pytest.mark.parametrize(("state_dir", "fragment"), [i[1:] for i in IMPOSSIBLE],
                         ids=[i[0] for i in IMPOSSIBLE])
def test_impossible_state_dirs_are_refused_before_anything_is_created(
        tmp_short: Path, state_dir: str, fragment: str) -> None:
    """Guards the state_dir checks: `validate` finds it, `up` (both ways)
    refuses it with one line and exit 2, and nothing is created."""
    (tmp_short / "m.toml").write_text(with_state_dir(manifest_text("replicas"), state_dir))
    (tmp_short / "a-file").write_text("not a folder\n")
    with read_only(tmp_short / "read-only"):
        before = files_under(tmp_short)
        for args in (("validate", "m.toml"), ("up", "-d", "m.toml"), ("up", "m.toml")):
            line = one_error_line(paxosctl(*args, cwd=tmp_short), 2)
            assert line.startswith("error: m.toml: cluster.state_dir: "), line
            assert fragment.format(dir=tmp_short) in line, line
        assert files_under(tmp_short) == before
    assert not Path("/proc/paxosctl-test").exists() and not Path("/sys/paxosctl-test").exists()


# -------------------------------------------------------------------- log rotation


def test_supervisor_log_rotates_like_the_agents_logs(make_cluster: ClusterFactory) -> None:
    """Guards the RotatingFileHandler: past LOG_MAX_BYTES, supervisor.log
    moves to supervisor.log.1 and a new one starts (each chaos change logs a line)."""
    cluster = make_cluster("replicas")
    logs = cluster.state_dir / "logs"
    with cluster.client() as client:
        for batch in range(4 * LOG_MAX_BYTES // 50_000):
            if (logs / "supervisor.log.1").exists():
                break
            futures = [client.request_async("chaos", drop=0.0001 * (i % 5))
                       for i in range(1000)]
            assert all(f.result(30)["ok"] for f in futures)
        client.request("chaos", heal=True)
    assert (logs / "supervisor.log.1").exists(), sorted(os.listdir(logs))
    for name in ("supervisor.log", "supervisor.log.1"):
        size = (logs / name).stat().st_size
        assert 0 < size <= LOG_MAX_BYTES, (name, size)
        assert stat.S_IMODE((logs / name).stat().st_mode) == 0o600
    # The new file is the one written to: the heal is in it.
    assert "chaos now: off" in (logs / "supervisor.log").read_text()
    cluster.run_ok("logs", "supervisor", "--tail", "1")


# ------------------------------------------------- identity without the registry


def registry_of(cluster) -> dict:
    return json.loads((cluster.state_dir / "members.json").read_text())


@pytest.mark.parametrize("loss", ["deleted", "garbled", "deleted-with-cluster.json"])
def test_a_lost_registry_is_rebuilt_from_the_stores(make_cluster: ClusterFactory, loss: str) -> None:
    """Guards the rebuild (members.py): members.json deleted or unreadable,
    the stores intact, every agent starts again under the member id its
    store records."""
    cluster = make_cluster("roles")
    cluster.run_ok("propose", "before")
    registry = registry_of(cluster)
    cluster.down()
    if loss == "garbled":
        (cluster.state_dir / "members.json").write_text('{"format": 1, "clus')
    else:
        (cluster.state_dir / "members.json").unlink()
    if loss == "deleted-with-cluster.json":  # the cluster id is read back from the stores
        (cluster.state_dir / "cluster.json").unlink()
    cluster.up()  # every agent running, a leader
    assert registry_of(cluster) == registry
    assert [e["value"] for e in cluster.decided()] == ["before"]


def test_an_acceptor_whose_store_and_registry_are_gone_refuses_to_start(
        make_cluster: ClusterFactory) -> None:
    """Issue 20, probe 5: members.json and acceptor-0.db deleted. acceptor-0
    must not start empty (an amnesiac acceptor can undo a chosen value); the
    six others run as before and 2 of 3 acceptors still decide."""
    cluster = make_cluster("roles")
    for i in range(3):
        cluster.run_ok("propose", f"before-{i}")
    registry = registry_of(cluster)
    cluster.down()
    (cluster.state_dir / "members.json").unlink()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{cluster.state_file('acceptor-0')}{suffix}").unlink(missing_ok=True)

    result = cluster.run("up", "-d", "--wait", "60", timeout=90)
    cluster.remember_processes()
    assert result.returncode == 3, describe(result)
    row = wait_until(lambda: next((a for a in cluster.status()["agents"]
                                   if a["name"] == "acceptor-0" and a["state"] == "fatal"), None),
                     20, "acceptor-0 to refuse to start")
    error = row["error"]
    assert "\n" not in error and "state/acceptor-0.db is missing" in error, error
    assert "paxosctl replace acceptor-0" in error, error
    assert not cluster.state_file("acceptor-0").exists()  # it created nothing
    others = [a for a in cluster.agent_names if a != "acceptor-0"]
    wait_until(lambda: all(cluster.agent(name)["state"] == "running" for name in others), 30,
               "the six other agents to run")
    rebuilt = registry_of(cluster)["members"]
    assert {n: rebuilt[n] for n in others} == {n: registry["members"][n] for n in others}
    assert rebuilt["acceptor-0"]["started"]
    cluster.run_ok("propose", "after")  # acceptor-1 and acceptor-2: a majority of 3
    assert [e["value"] for e in cluster.decided()] == ["before-0", "before-1", "before-2", "after"]
    # The way out the line names works.
    replaced = cluster.run("replace", "acceptor-0", timeout=90)
    assert replaced.returncode == 0, describe(replaced)
    cluster.wait_healthy()
    cluster.run_ok("propose", "replaced")
    values = [e["value"] for e in cluster.decided() if not e["noop"] and "config" not in e]
    assert values == ["before-0", "before-1", "before-2", "after", "replaced"]
