"""Every `paxosctl` command against real clusters: output, streams, exit codes.

Exit codes (paxosctl.errors): 0 ok, 1 generic / no cluster running,
2 bad input, 3 not healthy, 124 outcome unknown (a proposal timed out,
say), 130 interrupted. Data goes to stdout, errors to stderr.
"""

from __future__ import annotations

import base64
import json
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest
from clusters import (
    PAXOSCTL,
    STATES,
    Cluster,
    ClusterFactory,
    alive,
    describe,
    manifest_text,
    paxosctl,
    wait_until,
)

from paxosctl import __version__
from paxosctl.errors import ProposalTimeout, UsageError

#: The shared cluster's value limit, small enough to cross on a command line.
MAX_VALUE_BYTES = 1024

PROPOSE_TEXT = re.compile(r"decided at (\d+)\.(\d+): (.*) \((\d+(?:\.\d+)?) ms\)")
STATUS_KEYS = {"cluster", "leader", "decided_up_to", "agents"}
AGENT_KEYS = {"name", "role", "state", "pid", "restarts", "uptime_s"}
NO_CLUSTER = "no cluster running for cluster.toml (start it with: paxosctl up cluster.toml)"


@pytest.fixture(scope="module")
def shared(module_clusters: ClusterFactory) -> Cluster:
    """One roles cluster for the tests that leave it healthy (saves a start each)."""
    return module_clusters("roles", name="cli", paxos={"max_value_bytes": MAX_VALUE_BYTES})


def ok(cluster: Cluster, *args: str, **kwargs) -> str:
    """Run a command that must succeed with nothing on stderr; its stdout."""
    result = cluster.run(*args, **kwargs)
    assert result.returncode == 0, describe(result)
    assert result.stderr == "", describe(result)
    return result.stdout


def fails(cluster: Cluster, code: int, *args: str, **kwargs) -> str:
    """Run a command that must fail with `code`, nothing on stdout and an
    `error:` line on stderr; its stderr."""
    result = cluster.run(*args, **kwargs)
    assert result.returncode == code, describe(result)
    assert result.stdout == "", describe(result)
    assert result.stderr.startswith("error: "), describe(result)
    return result.stderr


def entries_with(entries: list[dict], request_id: str) -> list[dict]:
    return [e for e in entries if e["request_id"] == request_id]


# ----------------------------------------------------------------- up / down


def test_up_detached_serves_then_a_second_up_changes_nothing(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster("roles", start=False)
    # `up -d` runs in a folder holding other packages of the same names (a
    # source checkout of another version, say): the daemon and its agents
    # still run the installed paxosctl, not whatever the working folder holds.
    for package in ("paxosctl", "paxos_agents"):
        (cluster.dir / package).mkdir()
        (cluster.dir / package / "__init__.py").write_text('raise ImportError("a decoy in the cwd")\n')
    result = cluster.run("up", "-d")
    assert result.returncode == 0, describe(result)
    assert re.fullmatch(r"cluster test up: 7 agents running, leader (proposer-[01]) "
                        r"\(supervisor pid \d+\)\n", result.stdout), describe(result)
    cluster.remember_processes()
    st = cluster.status()
    assert [a["state"] for a in st["agents"]] == ["running"] * 7
    assert st["leader"] in ("proposer-0", "proposer-1")
    assert all(psutil.pid_exists(a["pid"]) for a in st["agents"])
    supervisor = cluster.supervisor()
    assert supervisor is not None

    # Idempotent, as docker compose: the same manifest is already running.
    again = cluster.run("up", "-d")
    assert again.returncode == 0, describe(again)
    assert again.stdout == f"cluster test is already running (supervisor pid {supervisor.pid})\n"
    assert again.stderr == ""
    # ...and changed nothing.
    assert [a["pid"] for a in cluster.status()["agents"]] == [a["pid"] for a in st["agents"]]


def test_up_positional_file_and_bad_manifest(tmp_short: Path) -> None:
    bad = tmp_short / "bad.toml"
    bad.write_text(manifest_text("roles").replace('role = "learner"', 'role = "lerner"'))
    result = paxosctl("up", "-d", str(bad), cwd=tmp_short)
    assert result.returncode == 2, describe(result)
    assert result.stderr.splitlines()[0] == (
        'error: bad.toml: agents.learner.role: unknown role "lerner"; '
        "allowed: proposer, acceptor, learner, replica")
    assert not (tmp_short / ".paxosctl" / "test" / "supervisor.pid").exists()


def test_up_foreground_until_ctrl_c(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster("replicas", start=False)
    process = subprocess.Popen([PAXOSCTL, "up", str(cluster.manifest)], cwd=cluster.dir,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        st = wait_until(lambda: process.poll() is None and cluster.healthy(), 30,
                        "the foreground cluster to serve")
        agents = cluster.agent_processes()
        cluster.remember_processes()
        assert len(agents) == 3 and st["leader"]
        with cluster.client() as client:
            assert client.propose("foreground", timeout=10).value == b"foreground"
        process.send_signal(signal.SIGINT)  # Ctrl-C
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert stdout == ""
    assert "cluster test: starting 3 agents" in stderr
    assert not any(alive(p) for p in agents.values())
    assert cluster.supervisor() is None


def test_down_stops_every_process(cluster: Cluster) -> None:
    processes = cluster.remember_processes()
    agents = cluster.agent_processes()
    assert len(agents) == 7 and len(processes) >= 8  # supervisor, forkserver, agents
    out = ok(cluster, "down")
    assert out == "cluster test stopped\n"
    # `down` waits for the supervisor, which waits for its agents.
    for p in [cluster.supervisor()] + list(agents.values()):
        assert p is None or not alive(p), f"{p} still runs after down"
    wait_until(lambda: not any(alive(p) for p in processes), 10,
               "every process of the cluster to be gone")
    assert not any(psutil.pid_exists(p.pid) and alive(p) for p in processes)
    assert cluster.supervisor() is None
    assert not (cluster.state_dir / "control.sock").exists()
    assert not (cluster.state_dir / "supervisor.pid").exists()
    stderr = fails(cluster, 1, "status")
    assert "no cluster running" in stderr
    assert ok(cluster, "down") == "cluster test is not running\n"  # idempotent


# -------------------------------------------------------------------- propose


def test_propose_text(shared: Cluster) -> None:
    out = ok(shared, "propose", "hello world")
    match = PROPOSE_TEXT.fullmatch(out.rstrip("\n"))
    assert match and out.count("\n") == 1, out
    assert match.group(3) == "hello world"
    position = f"{match.group(1)}.{match.group(2)}"
    assert [e["position"] for e in shared.decided() if e["value"] == "hello world"] == [position]


def test_propose_json(shared: Cluster) -> None:
    out = ok(shared, "propose", "json value", "-o", "json")
    decision = json.loads(out)
    assert {"slot", "index", "position", "value", "request_id"} <= decision.keys()
    assert decision["value"] == "json value"
    assert isinstance(decision["slot"], int) and decision["slot"] >= 0
    assert decision["position"] == f"{decision['slot']}.{decision['index']}"
    assert isinstance(decision["request_id"], str) and decision["request_id"]
    [entry] = entries_with(shared.decided(), decision["request_id"])
    assert entry == {"slot": decision["slot"], "index": decision["index"],
                     "position": decision["position"], "value": "json value",
                     "request_id": decision["request_id"], "noop": False}


def test_propose_reads_stdin(shared: Cluster) -> None:
    out = ok(shared, "propose", "-", "-o", "json", "--request-id", "from-stdin",
             input="a value from stdin")
    decision = json.loads(out)
    assert decision["value"] == "a value from stdin"
    assert decision["request_id"] == "from-stdin"
    [entry] = entries_with(shared.decided(), "from-stdin")
    assert entry["value"] == "a value from stdin"


def test_any_bytes_are_decided_and_read_back_exactly(shared: Cluster) -> None:
    """Values are bytes end to end: stdin as it is (a trailing newline too),
    JSON shows bytes that are not UTF-8 as base64, text escapes them."""
    value = b"\x00\xff\xfe tab\there\nline\\ \xe2\x9c\x93\n"
    result = subprocess.run([PAXOSCTL, "propose", "-", "-o", "json", "--request-id", "raw-bytes",
                             "-f", str(shared.manifest)], cwd=shared.dir, input=value,
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result
    decision = json.loads(result.stdout)
    assert base64.b64decode(decision["value"]["base64"]) == value
    [entry] = entries_with(shared.decided(), "raw-bytes")
    assert base64.b64decode(entry["value"]["base64"]) == value
    with shared.client() as client:
        [raw] = [e for e in client.decided() if e.request_id == "raw-bytes"]
        assert raw.value == value
    text = [line for line in ok(shared, "decided").splitlines() if "\traw-bytes\t" in line]
    assert text == [f"{entry['position']}\traw-bytes\t"
                    "\\x00\\xff\\xfe tab\\there\\nline\\\\ \u2713\\n"]
    # UTF-8 text stays text in JSON.
    assert json.loads(ok(shared, "propose", "caf\u00e9", "-o", "json"))["value"] == "caf\u00e9"


def test_same_request_id_is_decided_once(shared: Cluster) -> None:
    first = json.loads(ok(shared, "propose", "once", "--request-id", "idem-1", "-o", "json"))
    second = json.loads(ok(shared, "propose", "once", "--request-id", "idem-1", "-o", "json"))
    assert first["slot"] == second["slot"]
    assert first["request_id"] == second["request_id"] == "idem-1"
    # A different value under the same id is refused (exit 2), naming the slot
    # where the id was decided; it is not decided either: the first one stands.
    stderr = fails(shared, 2, "propose", "twice", "--request-id", "idem-1", "-o", "json")
    assert stderr.startswith("error: request_id_conflict: request id idem-1 was decided at "
                             f"position {first['position']} with another value"), stderr
    # Text output too.
    text = ok(shared, "propose", "once", "--request-id", "idem-1")
    match = PROPOSE_TEXT.fullmatch(text.rstrip("\n"))
    assert f"{match.group(1)}.{match.group(2)}" == first["position"]

    entries = shared.decided()
    assert [e["position"] for e in entries_with(entries, "idem-1")] == [first["position"]]
    assert [e for e in entries if e["value"] in ("once", "twice")] == [
        {"slot": first["slot"], "index": first["index"], "position": first["position"],
         "value": "once", "request_id": "idem-1", "noop": False}]


def test_propose_too_large_exits_2(shared: Cluster) -> None:
    at_limit = "x" * MAX_VALUE_BYTES
    decision = json.loads(ok(shared, "propose", "-", "-o", "json", input=at_limit))
    assert decision["value"] == at_limit

    stderr = fails(shared, 2, "propose", "-", "--request-id", "too-big",
                   input="x" * (MAX_VALUE_BYTES + 1))
    assert f"value is {MAX_VALUE_BYTES + 1} bytes; the limit is {MAX_VALUE_BYTES}" in stderr
    # Bytes, not characters: "é" is two bytes in UTF-8.
    stderr = fails(shared, 2, "propose", "é" * (MAX_VALUE_BYTES // 2 + 1))
    assert f"value is {MAX_VALUE_BYTES + 2} bytes" in stderr
    # The proposer refuses it too, for clients that skip the CLI's check.
    with shared.client() as client, pytest.raises(UsageError, match="paxos.max_value_bytes"):
        client.propose("y" * (MAX_VALUE_BYTES + 1), request_id="too-big-2", timeout=5)
    assert not [e for e in shared.decided() if e["request_id"] in ("too-big", "too-big-2")]


def test_propose_bad_arguments_exit_2(shared: Cluster) -> None:
    assert "--timeout" in fails(shared, 2, "propose", "v", "--timeout", "0")
    assert "--timeout" in fails(shared, 2, "propose", "v", "--timeout", "-3")
    result = shared.run("propose", "v", "--timeout", "soon")
    assert result.returncode == 2 and result.stdout == "", describe(result)


def test_timeout_and_unhealthy_status(make_cluster: ClusterFactory) -> None:
    """Two of three acceptors down for good: no majority, so a proposal
    times out (124, outcome unknown) and status says unhealthy (3)."""
    cluster = make_cluster("roles", restart={"policy": "never"})
    for name in ("acceptor-0", "acceptor-1"):
        out = ok(cluster, "kill", name)
        assert re.fullmatch(rf"sent SIGKILL to {name} \(pid \d+\)\n", out), out
    wait_until(lambda: [cluster.agent(n)["state"] for n in ("acceptor-0", "acceptor-1")]
               == ["stopped", "stopped"], 10, "both acceptors to be stopped")

    result = cluster.run("status")
    assert result.returncode == 3, describe(result)
    assert result.stderr == ""
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:]}
    assert rows["acceptor-0"][2] == "stopped" and rows["acceptor-0"][3] == "-"
    assert rows["acceptor-2"][2] == "running"

    result = cluster.run("status", "-o", "json")
    assert result.returncode == 3, describe(result)
    st = json.loads(result.stdout)
    states = {a["name"]: a["state"] for a in st["agents"]}
    assert states["acceptor-0"] == states["acceptor-1"] == "stopped"
    assert {a["name"]: a["pid"] for a in st["agents"]}["acceptor-0"] is None

    result = cluster.run("propose", "lost?", "--timeout", "1", "--request-id", "maybe-lost")
    assert result.returncode == 124, describe(result)
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert "unknown" in result.stderr
    assert "paxosctl decided" in result.stderr
    assert "maybe-lost" in result.stderr

    # The Python client raises the same error.
    with cluster.client() as client:
        with pytest.raises(ProposalTimeout) as caught:
            client.propose("lost too?", request_id="maybe-lost-2", timeout=0.5)
        assert caught.value.exit_code == 124

    # Bring them back: healthy again (exit 0), and the timed-out values are
    # decided at most once.
    for name in ("acceptor-0", "acceptor-1"):
        assert ok(cluster, "restart", name) == f"restarting {name}\n"
    cluster.wait_healthy()
    assert cluster.run("status").returncode == 0
    ok(cluster, "propose", "after")
    entries = cluster.decided()
    assert len(entries_with(entries, "maybe-lost")) <= 1
    assert len(entries_with(entries, "maybe-lost-2")) <= 1


# --------------------------------------------------------------------- status


def test_status_table(shared: Cluster) -> None:
    st = shared.wait_healthy()
    out = ok(shared, "status")
    lines = out.splitlines()
    assert lines[0].startswith("cluster: cli")
    assert f"leader: {st['leader']}" in lines[0]
    assert lines[1].split() == ["NAME", "ROLE", "STATE", "PID", "RESTARTS", "AGE", "NOTE"]
    rows = [line.split() for line in lines[2:]]
    assert [r[0] for r in rows] == list(shared.agent_names)
    for row, agent in zip(rows, st["agents"]):
        assert row[1] == agent["role"]
        assert row[2] == "running"
        assert row[3] == str(agent["pid"])
        assert row[4].isdigit()


def test_status_wide(shared: Cluster) -> None:
    shared.wait_healthy()
    out = ok(shared, "status", "-o", "wide")
    lines = out.splitlines()
    assert lines[1].split() == ["NAME", "ROLE", "STATE", "PID", "RESTARTS", "AGE",
                                "CPU", "RSS", "HEARTBEAT", "NOTE"]
    for line in lines[2:]:
        cols = line.split()
        assert cols[2] == "running"
        assert re.fullmatch(r"\d+\.\d\ds", cols[6]), line
        assert re.fullmatch(r"\d+\.\dMiB", cols[7]), line
        assert re.fullmatch(r"\d+(ms|s)", cols[8]) and cols[9] == "ago", line


def test_status_json(shared: Cluster) -> None:
    shared.wait_healthy()
    st = json.loads(ok(shared, "status", "-o", "json"))
    assert STATUS_KEYS <= st.keys()
    assert st["cluster"] == "cli"
    assert st["leader"] in shared.agent_names
    assert st["decided_up_to"] is None or isinstance(st["decided_up_to"], int)
    assert [a["name"] for a in st["agents"]] == list(shared.agent_names)
    for agent in st["agents"]:
        assert AGENT_KEYS <= agent.keys(), agent
        assert agent["state"] in STATES
        assert agent["role"] == agent["name"].rsplit("-", 1)[0]
        assert isinstance(agent["pid"], int)
        assert isinstance(agent["restarts"], int) and agent["restarts"] >= 0
        assert isinstance(agent["uptime_s"], (int, float)) and agent["uptime_s"] >= 0


def test_bad_output_format_exits_2(shared: Cluster) -> None:
    for args in (("status", "-o", "xml"), ("propose", "v", "-o", "table"),
                 ("decided", "-o", "wide")):
        stderr = fails(shared, 2, *args)
        assert "-o/--output" in stderr


# -------------------------------------------------------------------- decided


def test_decided(shared: Cluster) -> None:
    ids = [json.loads(ok(shared, "propose", f"d{i}", "-o", "json"))["request_id"] for i in range(3)]
    entries = json.loads(ok(shared, "decided", "-o", "json"))
    assert isinstance(entries, list) and entries
    for e in entries:
        assert set(e) == {"slot", "index", "position", "value", "request_id", "noop"}, e
        assert isinstance(e["slot"], int) and isinstance(e["noop"], bool)
        assert e["position"] == f"{e['slot']}.{e['index']}"
        if e["noop"]:
            assert e["value"] is None and e["request_id"] is None
    positions = [(e["slot"], e["index"]) for e in entries]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    rids = [e["request_id"] for e in entries if not e["noop"]]
    assert len(rids) == len(set(rids))
    mine = [e for e in entries if e["request_id"] in ids]
    assert [e["value"] for e in mine] == ["d0", "d1", "d2"]

    # Text: position, request id, value, tab-separated.
    text = ok(shared, "decided").splitlines()
    for e in mine:
        assert f"{e['position']}\t{e['request_id']}\t{e['value']}" in text

    # --from
    start = mine[1]["slot"]
    later = json.loads(ok(shared, "decided", "--from", str(start), "-o", "json"))
    assert later == [e for e in entries if e["slot"] >= start]
    result = shared.run("decided", "--from", "-1")
    assert result.returncode == 2 and result.stdout == "", describe(result)

    # The Python client pages through the log in whole slots.
    with shared.client() as client:
        futures = [client.propose_async(f"page {i}", timeout=10) for i in range(40)]
        [f.result(40) for f in futures]
        everything = client.decided()
        assert list(client.iter_decided(0, page_size=3)) == everything
        assert list(client.iter_decided(start, page_size=1)) == [
            e for e in everything if e.slot >= start]
        assert client.decided(start, limit=5) == [e for e in everything if e.slot >= start][:5]


# ------------------------------------------------------------------------ logs


def test_logs_tail(shared: Cluster) -> None:
    log_file = shared.state_dir / "logs" / "supervisor.log"
    wait_until(lambda: len(log_file.read_text().splitlines()) >= 5, 10, "a few supervisor log lines")
    out = ok(shared, "logs", "supervisor", "--tail", "3")
    lines = out.splitlines()
    assert len(lines) == 3
    assert "\n".join(lines) in log_file.read_text()

    agent_log = shared.state_dir / "logs" / "acceptor-1.log"
    out = ok(shared, "logs", "acceptor-1", "--tail", "1")
    assert len(out.splitlines()) == 1
    assert out.splitlines()[0] in agent_log.read_text().splitlines()
    assert "acceptor-1[" in out

    assert ok(shared, "logs", "acceptor-1", "--tail", "0") == ""
    everything = ok(shared, "logs", "acceptor-1", "--tail", "100000")
    assert everything.splitlines() == agent_log.read_text().splitlines()[:len(everything.splitlines())]

    stderr = fails(shared, 2, "logs", "acceptor-9")
    assert "no agent 'acceptor-9'" in stderr


def test_logs_follow(shared: Cluster) -> None:
    shared.wait_healthy()
    process = subprocess.Popen([PAXOSCTL, "logs", "supervisor", "--follow", "--tail", "0",
                                "--file", str(shared.manifest)], cwd=shared.dir,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout],
                              daemon=True)
    reader.start()
    seen: list[str] = []

    def saw(fragment: str) -> bool:
        while not lines.empty():
            seen.append(lines.get())
        return any(fragment in line for line in seen)

    log_file = shared.state_dir / "logs" / "supervisor.log"

    def following() -> bool:
        """`logs` has read the whole file: what is written now is new to it."""
        size = log_file.stat().st_size
        return any(f.path == str(log_file) and f.position == size
                   for f in psutil.Process(process.pid).open_files())

    try:
        wait_until(following, 15, "logs --follow to reach the end of the log")
        pid = shared.agent("learner-0")["pid"]
        ok(shared, "restart", "learner-0")
        wait_until(lambda: saw(f"learner-0: pid {pid} exited") or saw("learner-0: started pid"),
                   15, "a new supervisor log line through logs --follow")
        process.send_signal(signal.SIGINT)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        process.stdout.close()
        process.stderr.close()
    assert process.returncode == 130  # Ctrl-C ends a follow as it ends any wait
    assert all("supervisor" in line for line in seen), seen
    shared.wait_healthy()


# ----------------------------------------------------------- kill / restart


def test_kill_restarts_the_agent(shared: Cluster) -> None:
    before = shared.wait_healthy()
    old = next(a for a in before["agents"] if a["name"] == "acceptor-2")
    old_process = psutil.Process(old["pid"])
    out = ok(shared, "kill", "acceptor-2")
    assert out == f"sent SIGKILL to acceptor-2 (pid {old['pid']})\n"
    after = wait_until(
        lambda: (a := shared.agent("acceptor-2"))["state"] == "running" and a["pid"] != old["pid"] and a,
        15, "acceptor-2 to be restarted")
    assert after["restarts"] == old["restarts"] + 1
    wait_until(lambda: not alive(old_process), 5, "the old acceptor-2 to be gone")
    shared.wait_healthy()


def test_kill_with_signal_term(shared: Cluster) -> None:
    old = shared.wait_healthy()
    pid = next(a["pid"] for a in old["agents"] if a["name"] == "learner-1")
    out = ok(shared, "kill", "learner-1", "--signal", "TERM")
    assert out == f"sent SIGTERM to learner-1 (pid {pid})\n"
    wait_until(lambda: (a := shared.agent("learner-1"))["state"] == "running" and a["pid"] != pid,
               15, "learner-1 to be restarted")
    shared.wait_healthy()


def test_kill_bad_input_exits_2(shared: Cluster) -> None:
    assert 'no agent "nobody"' in fails(shared, 2, "kill", "nobody")
    assert "unknown signal" in fails(shared, 2, "kill", "learner-0", "--signal", "NOSUCH")
    assert 'no agent "nobody"' in fails(shared, 2, "restart", "nobody")


def test_restart_agent(shared: Cluster) -> None:
    old = shared.wait_healthy()
    before = next(a for a in old["agents"] if a["name"] == "learner-0")
    out = ok(shared, "restart", "learner-0")
    assert out == "restarting learner-0\n"
    after = wait_until(
        lambda: (a := shared.agent("learner-0"))["state"] == "running" and a["pid"] != before["pid"] and a,
        15, "learner-0 to be restarted")
    assert after["restarts"] == before["restarts"] + 1
    shared.wait_healthy()
    # It serves again: a proposal is decided and learner-0 has it too.
    ok(shared, "propose", "after restart")


# ------------------------------------------------------------------- validate

VALID_EXTRA = {"health": {"heartbeat_timeout": "2s"}, "restart": {"policy": "on-failure"}}

BAD_MANIFESTS = [
    # (id, text, the key named, a fragment)
    ("unknown-key", manifest_text("roles", restart={"max_restart": 3}),
     "restart.max_restart", "unknown key"),
    ("bad-duration", manifest_text("roles", health={"heartbeat_timeout": "3 parsecs"}),
     "health.heartbeat_timeout", '"3 parsecs"'),
    ("unknown-role", manifest_text("roles").replace('role = "acceptor"', 'role = "acceptr"'),
     "agents.acceptor.role", 'unknown role "acceptr"'),
    ("missing-role", manifest_text("roles").replace('role = "learner"\n', ""),
     "agents.learner.role", "missing required key"),
    ("no-learner", manifest_text("roles").replace('role = "learner"', 'role = "acceptor"'),
     "agents", "no learner"),
    ("toml-syntax", manifest_text("roles").replace("[agents.acceptor]", "[agents.acceptor"),
     "", "(at line 8, column"),
]


def test_validate_good(tmp_short: Path) -> None:
    for i, (topology, extra) in enumerate((("roles", {}), ("replicas", VALID_EXTRA))):
        path = tmp_short / f"good{i}.toml"
        path.write_text(manifest_text(topology, **extra))
        result = paxosctl("validate", path.name, cwd=tmp_short)
        assert result.returncode == 0, describe(result)
        assert result.stderr == ""
        assert result.stdout.startswith(f"{path.name}: valid: cluster test, ")
    # Nothing was started or created.
    assert not (tmp_short / ".paxosctl").exists()


def test_validate_examples() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    for name, count in (("cluster.toml", 7), ("replicas.toml", 3)):
        result = paxosctl("validate", name, cwd=examples)
        # The example's fixed metrics port may be taken (exit 2 naming it); otherwise valid.
        if result.returncode == 2:
            assert "metrics.listen" in result.stderr, describe(result)
        else:
            assert result.returncode == 0, describe(result)
            assert f"{count} agents" in result.stdout


@pytest.mark.parametrize("text,key,fragment", [b[1:] for b in BAD_MANIFESTS],
                         ids=[b[0] for b in BAD_MANIFESTS])
def test_validate_bad(tmp_short: Path, text: str, key: str, fragment: str) -> None:
    path = tmp_short / "bad.toml"
    path.write_text(text)
    result = paxosctl("validate", "bad.toml", cwd=tmp_short)
    assert result.returncode == 2, describe(result)
    assert result.stdout == ""
    first, *rest = result.stderr.splitlines()
    prefix = f"error: bad.toml: {key}: " if key else "error: bad.toml: "
    assert first.startswith(prefix), first
    assert fragment in first, first
    assert all(line.startswith("  hint: ") for line in rest), result.stderr


def test_validate_missing_file(tmp_short: Path) -> None:
    result = paxosctl("validate", "nope.toml", cwd=tmp_short)
    assert result.returncode == 2, describe(result)
    assert result.stderr.startswith("error: nope.toml: cannot read the manifest: no such file")


# ------------------------------------------------------- version, no cluster


def test_version(tmp_short: Path) -> None:
    result = paxosctl("--version", cwd=tmp_short)
    assert result.returncode == 0, describe(result)
    assert result.stdout == f"paxosctl {__version__}\n"
    assert result.stderr == ""


def test_no_cluster_running(tmp_short: Path) -> None:
    (tmp_short / "cluster.toml").write_text(manifest_text("roles"))
    for args in (("status",), ("status", "-o", "json"), ("propose", "v"), ("decided",),
                 ("kill", "acceptor-0"), ("restart", "acceptor-0")):
        result = paxosctl(*args, cwd=tmp_short)
        assert result.returncode == 1, describe(result)
        assert result.stdout == "", describe(result)
        assert result.stderr.splitlines()[0] == f"error: {NO_CLUSTER}", describe(result)
    # `down` is idempotent: nothing to stop is done.
    result = paxosctl("down", cwd=tmp_short)
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "cluster test is not running\n", ""), describe(result)
    assert not (tmp_short / ".paxosctl").exists()  # and it created nothing
    # A bad -o is bad input, whether or not a cluster runs.
    result = paxosctl("status", "-o", "xml", cwd=tmp_short)
    assert result.returncode == 2, describe(result)
    assert result.stdout == ""


def test_no_manifest_here(tmp_short: Path) -> None:
    result = paxosctl("status", cwd=tmp_short)
    assert result.returncode == 1, describe(result)
    assert result.stdout == ""
    assert f"no cluster.toml in {tmp_short.resolve()} or any folder above it" in result.stderr


def test_unknown_command_exits_2(tmp_short: Path) -> None:
    result = paxosctl("frobnicate", cwd=tmp_short)
    assert result.returncode == 2, describe(result)
    assert result.stdout == ""


def test_console_script_exists() -> None:
    assert Path(PAXOSCTL).exists()


# ------------------------------------------------------- habits of other CLIs


def test_dash_h_python_dash_m_and_ps(shared: Cluster) -> None:
    """What kubectl and docker compose users type: -h on every command,
    `python -m paxosctl`, and `ps` for `status`."""
    for args in (("-h",), ("status", "-h"), ("propose", "-h"), ("decided", "-h")):
        result = shared.run(*args, with_file=False)
        assert result.returncode == 0 and "Usage: paxosctl" in result.stdout, describe(result)
    module = subprocess.run([sys.executable, "-m", "paxosctl", "--version"], cwd=shared.dir,
                            capture_output=True, text=True, timeout=60)
    assert (module.returncode, module.stdout) == (0, f"paxosctl {__version__}\n"), module
    ps = json.loads(ok(shared, "ps", "-o", "json"))
    assert {a["name"] for a in ps["agents"]} == set(shared.agent_names)


def test_decided_limit_and_a_closed_pipe(shared: Cluster) -> None:
    """`decided --limit N` prints N entries; `decided | head -1` is not an
    error (exit 0, nothing on stderr) even when the log is far longer than
    the pipe holds."""
    with shared.client() as client:
        futures = [client.propose_async("p" * 100) for _ in range(1000)]
        [f.result(60) for f in futures]
    assert len(ok(shared, "decided", "--limit", "2").splitlines()) == 2
    assert len(json.loads(ok(shared, "decided", "--limit", "3", "-o", "json"))) == 3
    script = f'"{PAXOSCTL}" decided -f "{shared.manifest}" | head -1; exit ${{PIPESTATUS[0]}}'
    result = subprocess.run(["bash", "-c", script], cwd=shared.dir, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", describe(result)
    assert len(result.stdout.splitlines()) == 1
