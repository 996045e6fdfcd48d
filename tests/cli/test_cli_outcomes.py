"""`propose` never invites a duplicate: every outcome it cannot know exits
124 (130 on Ctrl-C), names the request id it used (one it made itself if
the user gave none) and says how to retry safely; a retry with that id is
never decided twice. A request id reused with another value exits 2.

Proposals are held in flight by cutting two of the three acceptors off
(`paxosctl chaos --partition`): nothing can be decided until it heals or
the supervisor is replaced.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import psutil

from clusters import PAXOSCTL, Cluster, ClusterFactory, alive, describe, wait_until

from paxosctl.client.sync import ANSWER_GRACE

#: What a 124 or 130 says of the request it sent.
UNKNOWN = re.compile(r"request (\S+) may still be decided")
CUT = "acceptor-0,acceptor-1"


def start_propose(cluster: Cluster, value: str, *args: str) -> subprocess.Popen[str]:
    """`paxosctl propose VALUE ARGS` in the background."""
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"}
    return subprocess.Popen([PAXOSCTL, "propose", value, *args, "-f", str(cluster.manifest)],
                            cwd=cluster.dir, env=env, text=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def in_flight(cluster: Cluster) -> int:
    """Commands the proposers took from clients (reported with their heartbeats)."""
    return sum(a.get("client_commands", 0) for a in cluster.status()["agents"])


def assert_unknown(code: int, returncode: int, stdout: str, stderr: str,
                   request_id: str | None = None) -> str:
    """The command exited `code`, saying the value may still be decided, the
    request id and the safe retry; returns the request id it named."""
    what = f"exit {returncode}\nstdout: {stdout!r}\nstderr: {stderr!r}"
    assert returncode == code, what
    assert stdout == "", what
    assert "Traceback" not in stderr, what
    assert stderr.startswith("error: "), what
    found = UNKNOWN.search(stderr)
    assert found, what
    if request_id is not None:
        assert found.group(1) == request_id, what
    assert f"--request-id {found.group(1)}" in stderr, what  # the safe retry
    return found.group(1)


def retry(cluster: Cluster, value: str, request_id: str) -> int:
    """Propose again under `request_id`: decided (exit 0); its slot."""
    result = cluster.run("propose", value, "--request-id", request_id, "-o", "json",
                         "--timeout", "30")
    assert result.returncode == 0, describe(result)
    decision = json.loads(result.stdout)
    assert (decision["value"], decision["request_id"]) == (value, request_id)
    return decision["slot"]


def assert_decided_once(cluster: Cluster, slots: dict[str, tuple[str, int]]) -> None:
    """Each request id appears once in the decided log: with its value, at its slot."""
    log = cluster.decided()
    for request_id, (value, slot) in slots.items():
        found = [(e["value"], e["slot"]) for e in log if e["request_id"] == request_id]
        assert found == [(value, slot)], (request_id, found)


def test_supervisor_killed_while_proposals_wait(make_cluster: ClusterFactory) -> None:
    """kill -9 of the supervisor with four proposals in flight: each
    `propose` exits 124 naming its request id; after `up`, retrying with
    those ids decides each value once."""
    cluster = make_cluster("roles")
    cluster.run_ok("chaos", "--partition", CUT)
    given = ["given-0", "given-1", None, None]
    procs = [start_propose(cluster, f"value-{i}", "--timeout", "60",
                           *(["--request-id", rid] if rid else []))
             for i, rid in enumerate(given)]
    try:
        wait_until(lambda: in_flight(cluster) >= len(procs), 15,
                   "the proposals to reach the proposers")
        supervisor = cluster.supervisor()
        descendants = supervisor.children(recursive=True)
        supervisor.kill()
        outcomes = [p.communicate(timeout=15) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    request_ids = [assert_unknown(124, p.returncode, out, err, rid)
                   for p, (out, err), rid in zip(procs, outcomes, given)]
    assert len(set(request_ids)) == len(procs)  # made by each CLI when not given

    wait_until(lambda: not any(alive(p) for p in descendants), 15,
               "every process of the killed supervisor to exit")
    cluster.up()
    slots = {rid: (f"value-{i}", retry(cluster, f"value-{i}", rid))
             for i, rid in enumerate(request_ids)}
    assert_decided_once(cluster, slots)


def test_ctrl_c_exits_130_and_a_frozen_agent_cannot_hold_propose(
        make_cluster: ClusterFactory) -> None:
    cluster = make_cluster("roles")

    # Ctrl-C while waiting: 130, and the value may still be decided.
    cluster.run_ok("chaos", "--partition", CUT)
    proc = start_propose(cluster, "interrupted", "--timeout", "60")
    try:
        wait_until(lambda: in_flight(cluster) >= 1, 15, "the proposal to reach the proposers")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    interrupted = assert_unknown(130, proc.returncode, out, err)
    assert "interrupted" in err
    # Still in flight: its request id cannot be taken by another value (exit 2).
    taken = cluster.run("propose", "another value", "--request-id", interrupted)
    assert taken.returncode == 2, describe(taken)
    assert taken.stderr.startswith(f"error: request_id_conflict: request id {interrupted} "
                                   "is being proposed with another value"), describe(taken)
    cluster.run_ok("chaos", "--heal")
    slots = {interrupted: ("interrupted", retry(cluster, "interrupted", interrupted))}

    # A supervisor that does not answer at all (SIGSTOP) is not on the way:
    # proposals are still decided.
    supervisor = cluster.supervisor()
    supervisor.suspend()
    try:
        result = cluster.run("propose", "supervisor frozen", "--timeout", "5", "-o", "json",
                             timeout=30)
    finally:
        supervisor.resume()
    assert result.returncode == 0, describe(result)
    decision = json.loads(result.stdout)
    slots[decision["request_id"]] = ("supervisor frozen", decision["slot"])

    # Proposers that do not answer at all (SIGSTOP): --timeout still bounds
    # the wait, 124 with the request id.
    proposers = [psutil.Process(a["pid"]) for a in cluster.status()["agents"]
                 if a["role"] == "proposer"]
    for p in proposers:
        p.suspend()
    try:
        started = time.monotonic()
        frozen = cluster.run("propose", "frozen", "--timeout", "1", timeout=30)
        elapsed = time.monotonic() - started
    finally:
        for p in proposers:
            try:
                p.resume()
            except psutil.NoSuchProcess:
                pass  # its missed heartbeats got it killed meanwhile: restarted, as it should be
    frozen_id = assert_unknown(124, frozen.returncode, frozen.stdout, frozen.stderr)
    assert elapsed < 1 + ANSWER_GRACE + 3, f"propose --timeout 1 took {elapsed:.1f}s"
    # It was sent: the proposers, thawed, decide it. The retry finds it, once.
    slots[frozen_id] = ("frozen", retry(cluster, "frozen", frozen_id))
    assert_decided_once(cluster, slots)
