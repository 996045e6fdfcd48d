"""The learner's request index on integer keys (schema 6), its group commit, its memory.

- A key only narrows: two ids crafted to share one (same millisecond, and
  the other 80 bits differing in bits 0 and 21, which the key's XOR fold
  cancels) are two requests, each applied once, judged by full id, on a
  real file, across a restart, and in a real cluster.
- The index survives a learner restart: a retry within the window is
  answered with its first position, not applied again.
- Group commit: a learner's `Stored` report never leaves before the COMMIT
  of what it reports; a failed COMMIT means no report at all.
- Memory: the values kept to check acceptors' copies of a vote are
  bounded by bytes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import threading
import time
from multiprocessing import Pipe
from pathlib import Path

import pytest

from clusters import describe, wait_until
from peer_inbox import Received
from paxos_agents.core import Accepted, Ballot, Membership, Settings
from paxos_agents.core.commands import Command, Value
from paxos_agents.core.messages import Stored
from paxos_agents.core.node import Node
from paxos_agents.core.ready import Persist
from paxos_agents.core.requestkeys import request_key
from paxos_agents.runtime.agent import Agent
from paxos_agents.runtime.valuechecks import CHECKED_BYTES
from paxos_agents.runtime.codec import encode
from paxos_agents.runtime.control import PipeControl
from paxos_agents.runtime.spec import AgentSpec
from paxos_agents.runtime.storage import SqliteStorage, StorageError
from paxos_agents.runtime.transport import endpoint
from paxosctl import Client

MS = 0x0193_1234_5678  # a millisecond stamp of the client's id layout


def colliding_ids() -> tuple[str, str]:
    """Two ids of the client's layout with one key: the fold XORs bits i
    and i + 21 of the 80 bits after the milliseconds, so flipping both
    leaves it as it was."""
    rest = 0x0123_4567_89AB_CDEF_0011
    a = f"{MS:012x}{rest:020x}"
    b = f"{MS:012x}{rest ^ 1 ^ (1 << 21):020x}"
    assert a != b and request_key(a) == request_key(b)
    return a, b


def test_keys_are_stable_and_time_ordered():
    """Guards the on-disk key: a fixed id has a fixed key in every process
    (no salted hash()), and a later millisecond sorts after."""
    # Fixed values: a change of the function is a change of the file format.
    assert request_key("r1") == 0x41EEC5062DB4DE98
    assert request_key("0193123456780123456789abcdef0011") == 0x3262468ACF0305DA
    ids = [f"{MS + i:012x}{random.Random(i).getrandbits(80):020x}" for i in range(100)]
    keys = [request_key(r) for r in ids]
    assert keys == sorted(keys) and all(0 <= k < 1 << 63 for k in keys)
    # The same in a fresh interpreter (another PYTHONHASHSEED).
    import subprocess
    import sys
    out = subprocess.run(
        [sys.executable, "-c", "from paxos_agents.core.requestkeys import request_key as k;"
         f"print(k('r1'), k({ids[0]!r}))"],
        capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "12345"}, check=True)
    assert out.stdout.split() == [str(request_key("r1")), str(keys[0])]


def test_two_ids_sharing_a_key_are_told_apart_by_full_id(tmp_path: Path):
    """Guards: a key hit counts only where the full id is at the row's
    position of its slot (the key alone would call b applied at 3)."""
    a, b = colliding_ids()
    with SqliteStorage(tmp_path / "l.db") as store:
        value = Value.of([Command("x", b"1"), Command(a, b"2")])
        store.save(Persist(decisions=((3, value),), applied=3,
                           requests=(("x", 3), (a, 3)),
                           request_keys=((3, [request_key("x"), request_key(a)], None),)))
        assert store.first_slots([a, b]) == {a: 3}
        # b first applied at 5, in the same position as a at 3: still told apart.
        store.save(Persist(decisions=((5, Value.of([Command("y", b"3"), Command(b, b"4")])),),
                           applied=5, requests=(("y", 5), (b, 5))))
        assert store.first_slots([a, b]) == {a: 3, b: 5}
        assert store.read_log(5, 1 << 20).first_slots == {"y": 5, b: 5}  # state transfer


MEMBERS = Membership(proposers=("p1",), acceptors=("a1", "a2", "a3"), learners=("l1",))


def learner(path: Path) -> tuple[Node, SqliteStorage]:
    store = SqliteStorage(path)
    return Node("l1", MEMBERS, Settings(), store.load(), random.Random(0), store=store), store


def decide(node: Node, store: SqliteStorage, slot: int, *commands: Command):
    for src in ("a1", "a2"):
        node.step(Accepted(src=src, dst="l1", ballot=Ballot(1, "p1"), slot=slot,
                           value=Value.of(commands)))
    ready = node.ready()
    store.save(ready.persist)
    return [c for a in ready.applied for c in a.commands()]


def test_colliding_ids_are_each_applied_once_across_a_restart(tmp_path: Path):
    """Guards exactly-once by full id through the learner core on a real
    file: b (a's key) is new, not a's duplicate; after a restart (memory
    empty, the filter rebuilt from the stored keys) each retry is answered
    with its own first slot."""
    a, b = colliding_ids()
    node, store = learner(tmp_path / "l1.db")
    [first_a] = decide(node, store, 0, Command(a, b"A"))
    [first_b] = decide(node, store, 1, Command(b, b"B"))
    assert (first_a.first_slot, first_a.duplicate) == (0, False)
    assert (first_b.first_slot, first_b.duplicate) == (1, False)
    store.close()
    node, store = learner(tmp_path / "l1.db")
    try:
        again = decide(node, store, 2, Command(b, b"B"), Command(a, b"A"), Command("new", b"n"))
        assert [(c.first_slot, c.duplicate) for c in again] == [(1, True), (0, True), (2, False)]
    finally:
        store.close()
    # "new" was indexed at position 2 of a slot with duplicates before it.
    node, store = learner(tmp_path / "l1.db")
    try:
        [retry] = decide(node, store, 3, Command("new", b"n"))
        assert (retry.first_slot, retry.duplicate) == (2, True)
    finally:
        store.close()


def test_colliding_ids_in_a_real_cluster_and_a_retry_after_restart(make_cluster):
    """Guards the same end to end: two clients' ids sharing a key are both
    decided at their own positions; after both learners restart, each retry
    is answered with its first position and the log holds each once."""
    cluster = make_cluster("roles")
    a, b = colliding_ids()
    with Client.for_manifest(cluster.manifest) as client:
        da = client.propose("value a", request_id=a, timeout=20)
        db = client.propose("value b", request_id=b, timeout=20)
    assert (da.slot, da.value) != (db.slot, db.value) and db.value == b"value b"
    for name in cluster.learners:
        cluster.run_ok("restart", name)
    cluster.wait_healthy(60)
    with Client.for_manifest(cluster.manifest) as client:
        ra = client.propose("value a", request_id=a, timeout=20)
        rb = client.propose("value b", request_id=b, timeout=20)
    assert (ra.slot, ra.index) == (da.slot, da.index)
    assert (rb.slot, rb.index) == (db.slot, db.index)
    done = cluster.run("decided", "-o", "json")
    assert done.returncode == 0, describe(done)
    rids = [e["request_id"] for e in json.loads(done.stdout) if not e["noop"]]
    assert rids.count(a) == 1 and rids.count(b) == 1


# --- group commit: Stored only after the COMMIT --------------------------------------------


class FailAt:
    """The storage's fault hook: notes when each point is passed; raises
    at `point` once armed."""

    def __init__(self, point: str) -> None:
        self.point, self.armed = point, False
        self.passed: list[tuple[str, float]] = []

    def __call__(self, at: str) -> None:
        self.passed.append((at, time.monotonic()))
        if self.armed and at == self.point:
            raise StorageError(f"injected at {at}")


def learner_agent(tmp_path: Path, fault: FailAt):
    spec = AgentSpec(name="l1", membership=MEMBERS, settings=Settings(stored_ticks=1),
                     tick_seconds=0.01, heartbeat_seconds=0.2,
                     state_path=str(tmp_path / "l1.db"), log_path=str(tmp_path / "l1.log"),
                     seed=1, run_dir=str(tmp_path / "run"))
    os.makedirs(spec.run_dir, mode=0o700)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # p1's endpoint: the test
    listener.bind(endpoint(spec.run_dir, "p1"))
    listener.listen(1)
    listener.setblocking(False)
    inbox_r, _inbox_w = Pipe(duplex=False)
    _outbox_r, outbox_w = Pipe(duplex=False)
    storage = SqliteStorage(spec.state_path, fault=fault)
    storage.admit(1)  # as if its peers had admitted it: a new store sends nothing before
    fault.passed.clear()
    agent = Agent(spec, PipeControl(inbox_r, outbox_w), storage)
    return agent, storage, Received(listener), (listener, _inbox_w, _outbox_r)


def apply_slot(agent: Agent, slot: int) -> None:
    for src in ("a1", "a2"):
        agent._on_message(src, encode(Accepted(src=src, dst="l1", ballot=Ballot(1, "p1"),
                                               slot=slot, value=Value.of([Command(f"r{slot}",
                                                                                  b"v")]))))
    agent._flush()
    agent.node.tick()  # its Stored report is due (stored_ticks = 1)
    agent._flush()
    agent.transport.flush()


def stored_reports(received: Received) -> list[int]:
    return [m.upto for m in received.messages() if isinstance(m, Stored)]


def test_a_stored_report_leaves_only_after_the_commit_of_what_it_reports(tmp_path: Path):
    """Guards Stored-after-COMMIT under group commit: the slot is written
    and its report held; the COMMIT sends it."""
    agent, storage, received, _keep = learner_agent(tmp_path, FailAt("before-commit"))
    try:
        apply_slot(agent, 0)
        assert storage.pending  # written, not committed: the group waits
        assert stored_reports(received) == []
        agent._commit()
        agent.transport.flush()
        wait_until(lambda: 0 in stored_reports(received) or None, 5, "the Stored report")
        assert not storage.pending
    finally:
        storage.close()
    with SqliteStorage(tmp_path / "l1.db") as again:
        assert again.applied == 0


def test_a_crash_between_apply_and_commit_never_yields_a_stored_report(tmp_path: Path):
    """Guards: when the COMMIT fails (the fault hook at before-commit, as a
    crash there), the report of the slot applied is never sent and the
    file holds nothing of it."""
    fault = FailAt("before-commit")
    agent, storage, received, _keep = learner_agent(tmp_path, fault)
    try:
        apply_slot(agent, 0)
        fault.armed = True
        with pytest.raises(StorageError, match="injected at before-commit"):
            agent._commit()
        agent.transport.flush()  # whatever was queued would go now
        assert stored_reports(received) == []
    finally:
        storage.close()
    with SqliteStorage(tmp_path / "l1.db") as again:
        assert again.applied == -1 and again.first_slots(["r0"]) == {}


@pytest.fixture
def own_signals():
    """`Agent.run` installs the agent's signal handlers (SIGINT ignored, as
    under a supervisor): put this process's back, or every child a later
    test starts would inherit SIGINT ignored (a Ctrl-C test then hangs)."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_the_run_loop_commits_the_group_within_its_window(tmp_path: Path, own_signals):
    """Guards the window: a written slot waits at most about
    GROUP_COMMIT_SECONDS (persister.py) for its COMMIT while the loop runs (the agent is
    stopped only a second later; its stop would commit too)."""
    fault = FailAt("never")
    agent, storage, received, _keep = learner_agent(tmp_path, fault)
    try:
        apply_slot(agent, 0)
        assert storage.pending
        [(_, written)] = [p for p in fault.passed if p[0] == "after-write"]
        stopper = threading.Timer(1.0, agent.stop)
        stopper.start()
        stopped_at = time.monotonic() + 1.0
        agent.run()
        stopper.join()
        [(_, committed), *_] = [p for p in fault.passed if p[0] == "before-commit"]
        assert committed - written < 0.5 < stopped_at - written, (committed - written)
        assert 0 in stored_reports(received)
    finally:
        storage.close()


def test_the_checked_votes_cache_is_bounded_by_bytes(tmp_path: Path):
    """Guards a learner's RSS (<= 40 MiB after 600,000 commands): the values
    kept to compare the next acceptors' copies of a vote stay under
    CHECKED_BYTES, whatever their size (4096 of 9 KiB were 36 MiB)."""
    agent, storage, _received, _keep = learner_agent(tmp_path, FailAt("never"))
    try:
        for slot in range(600):
            value = Value.of([Command(f"{slot}-{i}", b"v" * 100) for i in range(60)])
            for src in ("a1", "a2", "a3"):
                agent._on_message(src, encode(Accepted(src=src, dst="l1", ballot=Ballot(1, "p1"),
                                                       slot=slot, value=value)))
            agent._flush()
            held = sum(len(data) for data in agent.values.checked.values())
            assert held <= CHECKED_BYTES + len(value.data), (slot, held)
        agent._commit()
    finally:
        storage.close()
