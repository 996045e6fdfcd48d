"""Bounded history in the pure core: the compaction rule, state transfer,
retention and expired requests, and memory that does not grow with the log.

Paxos Made Live (Chandra, Griesemer, Redstone, 2007), section 5.5: replicas
take snapshots and drop the log below them; a lagging replica catches up
from a peer's snapshot. Raft's InstallSnapshot and client sessions (Ongaro's
thesis, sections 5 and 6.3) are the models for the chunks and expiry.
"""

from __future__ import annotations

import random

import pytest

from paxos_agents.core import (
    EXPIRED,
    NOOP,
    Accept,
    Ballot,
    Chunk,
    Command,
    Decide,
    Fetch,
    LogEntry,
    Membership,
    Nack,
    Node,
    Prepare,
    Promise,
    Ready,
    Record,
    Settings,
    Stored,
    Value,
    Vote,
)
from paxos_agents.core.acceptor import RECENT_VOTES
from paxos_agents.core.configs import History

MEMBERS = Membership(proposers=("p1", "p2"), acceptors=("a1", "a2", "a3"), learners=("l1", "l2"))
B1 = Ballot(1, "p1")


def node(name: str, record: Record | None = None, **settings) -> Node:
    return Node(name, MEMBERS, Settings(**settings), record or Record(), random.Random(0))


def step(n: Node, msg) -> Ready:
    n.step(msg)
    return n.ready()


def sent(ready: Ready, kind: type) -> list:
    return [m for m in (*ready.send_after_persist, *ready.send) if isinstance(m, kind)]


def stored(src: str, upto: int) -> Stored:
    return Stored(src=src, dst="a1", upto=upto)


# --------------------------------------------------------------- acceptor


@pytest.mark.parametrize(
    ("reports", "point"),
    [([("l1", 10)], 0), ([("l1", 10), ("l2", 4)], 5), ([("l1", 10), ("l2", 4), ("l2", 12)], 11),
     ([("l1", 10), ("l2", 12), ("l1", 3)], 11), ([("p1", 50), ("l1", 9), ("l2", 9)], 10)],
    ids=["one-learner-is-not-enough", "lowest-of-all-learners", "moves-up-with-the-lowest",
         "an-older-report-never-lowers-it", "only-configured-learners-count"],
)
def test_compaction_point_is_one_above_what_every_learner_stored(reports, point):
    a = node("a1")
    for slot in range(15):
        step(a, Accept(src="p1", dst="a1", ballot=B1, slot=slot, value=NOOP))
    last = None
    for src, upto in reports:
        ready = step(a, stored(src, upto))
        last = ready.persist.compacted if ready.persist.compacted is not None else last
    assert a.acceptor.compacted == point
    assert last == (point or None)  # persisted, in the Ready that compacts
    assert [v.slot for v in a.acceptor.votes_from(0)] == list(range(point, 15))


def test_planted_truncate_early_compacts_below_a_lagging_learner():
    a = node("a1", plant=frozenset({"truncate-early"}))
    step(a, stored("l1", 10))
    assert a.acceptor.compacted == 11  # l2 has stored nothing: the bug


@pytest.mark.parametrize(
    ("msg", "why"),
    [(Prepare(src="p2", dst="a1", ballot=Ballot(9, "p2"), first_slot=3), "prepare-below"),
     (Accept(src="p2", dst="a1", ballot=Ballot(9, "p2"), slot=4, value=NOOP), "accept-below")],
    ids=["prepare-below-the-point", "accept-below-the-point"],
)
def test_acceptor_refuses_below_the_point_whatever_the_ballot(msg, why):
    a = node("a1", Record(promised=B1, compacted=5))
    ready = step(a, msg)
    nack, = sent(ready, Nack)
    assert nack.compacted == 5 and nack.promised == B1
    assert a.acceptor.promised == B1  # a higher ballot below the point changes nothing
    assert not ready.persist


def test_promise_carries_the_compaction_point_and_votes_from_disk():
    record = Record(compacted=2, votes={3: Vote(3, B1, ()), 4: Vote(4, B1, ())})
    a = node("a1", record)
    promise, = sent(step(a, Prepare(src="p2", dst="a1", ballot=Ballot(2, "p2"), first_slot=2)),
                    Promise)
    assert promise.compacted == 2 and [v.slot for v in promise.votes] == [3, 4]


def test_acceptor_memory_does_not_grow_with_the_log():
    a = node("a1")
    for slot in range(5 * RECENT_VOTES):
        step(a, Accept(src="p1", dst="a1", ballot=B1, slot=slot, value=NOOP))
    assert len(a.acceptor._recent) <= 2 * RECENT_VOTES


# --------------------------------------------------------------- proposer


def candidate() -> Node:
    p = node("p1")
    for _ in range(40):
        p.tick()
        ready = p.ready()
        if sent(ready, Prepare):
            return p
    raise AssertionError("p1 never ran for leader")


def test_candidate_nacked_for_compaction_runs_phase_1_again_above_the_point():
    # (A point below known + alpha: the proposer knows config(20); see
    # test_core_configs.py for a point past it.)
    p = candidate()
    ballot = p.proposer.ballot
    ready = step(p, Nack(src="a1", dst="p1", ballot=ballot, promised=ballot, compacted=20))
    prepares = sent(ready, Prepare)
    assert prepares and {m.first_slot for m in prepares} == {20}
    assert prepares[0].ballot > ballot
    assert p.proposer.decided_up_to == 19 and p.proposer.decisions.compacted == 20


def test_retry_below_the_point_never_runs_a_ballot():
    p = candidate()
    step(p, Nack(src="a1", dst="p1", ballot=p.proposer.ballot, promised=p.proposer.ballot,
                  compacted=20))
    for _ in range(3):
        p.tick()
        p.ready()
    before = p.proposer.stats.elections
    from paxos_agents.core import Retry
    ready = step(p, Retry(src="l1", dst="p1", slot=12))
    assert not sent(ready, Prepare) and p.proposer.stats.elections == before
    assert p.proposer.stats.retries_compacted == 1


# ---------------------------------------------------------------- learner


def decide(n: Node, slot: int, *commands: Command) -> Ready:
    return step(n, Decide(src="p1", dst=n.node_id, slot=slot, value=Value.of(commands)))


def test_learner_reports_stored_only_after_the_persist():
    le = node("l1")
    decide(le, 0, Command("a", b"1"))
    le.tick()
    ready = le.ready()
    reports = [m for m in ready.send_after_persist if isinstance(m, Stored)]
    assert {m.dst for m in reports} == {"a1", "a2", "a3", "l2", "p1", "p2"}
    assert {m.upto for m in reports} == {0}
    assert not [m for m in ready.send if isinstance(m, Stored)]


def test_state_transfer_takes_the_peers_outcomes():
    """The peer applied `a` at slot 0 and saw it again at slot 1 (a duplicate),
    and refused `x` at slot 1 as expired: the copy must do exactly the same."""
    peer = node("l2")
    decide(peer, 0, Command("a", b"1"))
    decide(peer, 1, Command("a", b"1"), Command("b", b"2"))
    le = node("l1")
    chunk, = sent(step(peer, Fetch(src="l1", dst="l2", first_slot=0)), Chunk)
    assert chunk.first_slot == 0 and [s for s, _ in chunk.decisions] == [0, 1]
    doctored = Chunk(src="l2", dst="l1", asked=0, first_slot=0,
                     decisions=chunk.decisions[:1] + ((1, Value.of([Command("a", b"1"), Command("x", b"9")])),),
                     first_slots=(("a", 0),))
    ready = step(le, doctored)
    assert le.learner.decided_up_to == 1 and le.learner.installed == 2
    assert ready.logged == [LogEntry(0, b"1", "a", False)]
    assert le.learner.first_slot == {"a": 0}
    assert not ready.applied  # clients were answered where it was applied


@pytest.mark.parametrize(("chunk_bytes", "slots"), [(1, [0]), (60, [0, 1]), (1 << 20, [0, 1, 2])],
                         ids=["one-slot-at-least", "about-the-budget", "default-all"])
def test_a_chunk_holds_about_chunk_bytes_and_at_least_one_slot(chunk_bytes, slots):
    """`Settings.chunk_bytes` bounds a state-transfer chunk (the simulator makes
    it tiny so catching up takes many chunks): slots are added while the
    chunk is under the budget, and one always goes."""
    peer = node("l2", chunk_bytes=chunk_bytes)
    for slot in range(3):
        decide(peer, slot, Command(f"r{slot}", b"x" * 20))
    chunk, = sent(step(peer, Fetch(src="l1", dst="l2", first_slot=0)), Chunk)
    assert [s for s, _ in chunk.decisions] == slots


def test_a_copied_slot_holding_one_request_id_twice_applies_it_once():
    """A slot may hold one request id twice (two tries batched together); the
    learner that applies it logs and counts it once, and so must one that
    copies the slot (simulator seed 1513 with retain=6 logged it twice)."""
    twice = Value.of([Command("a", b"1"), Command("a", b"1"), Command("b", b"2")])
    le = node("l1")
    ready = step(le, Chunk(src="l2", dst="l1", asked=0, first_slot=0, decisions=((0, twice),),
                           first_slots=(("a", 0), ("b", 0))))
    assert ready.logged == [LogEntry(0, b"1", "a", False), LogEntry(0, b"2", "b", False)]
    assert le.learner.once.applied_commands == 2


def test_a_chunk_from_above_restarts_the_log_only_when_it_answers_our_fetch():
    le = node("l1")
    stale = Chunk(src="l2", dst="l1", asked=5, first_slot=5, decisions=((5, NOOP),), first_slots=())
    step(le, stale)
    assert le.learner.decided_up_to == -1  # a piece we cannot use yet
    # The sender's configuration history, fed past the chunk: the log below 5
    # is gone, and with it the decisions that would tell us the configurations.
    history = History.initial(32, MEMBERS.acceptors).with_known(6)
    trimmed = Chunk(src="l2", dst="l1", asked=0, first_slot=5, decisions=((5, NOOP),),
                    first_slots=(), history=history)
    ready = step(le, trimmed)
    assert le.learner.decided_up_to == 5 and le.learner.log_start == 5
    assert ready.persist.log_start == 5


@pytest.mark.parametrize(
    ("issued", "first_slot"),
    [(-1, EXPIRED), (8, EXPIRED), (9, 20), (19, 20)],
    ids=["unknown-stamp-expires", "issued-one-before-the-window", "issued-at-the-window-edge",
         "issued-just-before"],
)
def test_expiry_with_a_retained_window(issued, first_slot):
    """retain=10: applying slot 20, the index covers slots 10..19. A command
    issued after slot 9 can only have been decided in them, so it is checked
    exactly; one issued after slot 8 might have been decided in slot 9: expired."""
    le = node("l1", retain_slots=10)
    for slot in range(20):
        decide(le, slot)
    ready = decide(le, 20, Command("r", b"v", issued))
    applied, = ready.applied[0].commands()
    assert applied.first_slot == first_slot
    assert (ready.applied[0].log() == [LogEntry(20, b"v", "r", False)]) == (first_slot == 20)


def test_retention_deletes_old_slots_and_duplicates_stay_caught_inside_it():
    le = node("l1", retain_slots=16)
    decide(le, 0, Command("r0", b"v", 0))
    for slot in range(1, 40):
        decide(le, slot, Command(f"r{slot}", b"v", slot - 1))
    assert le.learner.log_start > 0
    assert le.learner.log_start <= 40 - 16
    assert min(le.learner.decided) == le.learner.log_start
    ready = decide(le, 40, Command("r30", b"v", 29))  # a retry inside the window
    applied, = ready.applied[0].commands()
    assert applied.first_slot == 30 and applied.duplicate


def test_learner_holds_no_request_id_once_written():
    le = node("l1")
    for slot in range(500):
        decide(le, slot, *(Command(f"r{slot}-{i}", b"v") for i in range(64)))
        assert len(le.learner.requests) <= 64  # the last Ready's ids, no more
    assert not le.learner._tail


@pytest.mark.parametrize("topology", ["separate", "collapsed"])
def test_acceptors_compact_in_both_topologies(topology):
    """Guards that a replica's acceptor hears its own learner: with replicas,
    compaction needs every replica's report, its own included."""
    from paxos_agents.sim import COLLAPSED, SEPARATE, SimCluster
    sim = SimCluster((SEPARATE if topology == "separate" else COLLAPSED).membership(), 3,
                     Settings(batch=1))
    proposer = sim.membership.proposers[0]
    for i in range(20):
        sim.submit(proposer, Command(f"r{i}", f"v{i}".encode()))
        sim.run(3)
    sim.run(200)
    points = [sim.nodes[a].acceptor.compacted for a in sim.membership.acceptors]
    assert all(p >= 20 for p in points), points


def test_an_admitted_learner_reports_again_at_the_next_tick():
    """A new store's first reports went nowhere (nothing leaves an agent not
    yet admitted: runtime/admission.py). Once admitted it reports at the
    next tick, not ten `stored_ticks` later, so a peer ahead of it answers
    with its own report and the state transfer starts."""
    le = node("l1")
    le.tick()
    first = [m for m in le.ready().send_after_persist if isinstance(m, Stored)]
    assert first and {m.upto for m in first} == {-1}  # the report the transport dropped
    le.tick()
    assert not sent(le.ready(), Stored)  # nothing moved: the next one is ten stored_ticks away
    le.admitted()
    le.tick()
    again = [m for m in le.ready().send_after_persist if isinstance(m, Stored)]
    assert {m.dst for m in again} >= {"l2", "p1", "p2"} and {m.upto for m in again} == {-1}


def test_a_peer_that_stopped_answering_fetches_no_longer_holds_its_slots_back():
    """A learner copies from a peer what that peer reported stored, and asks
    the proposers only for the slots above it. A peer that stopped after its
    report (the tour's step 5 in CI: learner-1 stopped as learner-0 started)
    must not hold those slots back: after FETCH_PATIENCE election timeouts
    without a chunk, they are asked of the proposers with Retries."""
    from paxos_agents.core.learner import FETCH_PATIENCE
    from paxos_agents.core.messages import Heartbeat, Retry

    le = node("l1")
    step(le, Heartbeat(src="p1", dst="l1", ballot=B1, highest_slot=3, decided_up_to=3))
    step(le, Stored(src="l2", dst="l1", upto=3))  # l2 has slots 0..3, then stops
    fetches, retries = [], []
    patience = FETCH_PATIENCE * le.learner.settings.election_ticks
    for _ in range(patience + 2 * le.learner.settings.gap_ticks + 2):
        le.tick()
        ready = le.ready()
        fetches += sent(ready, Fetch)
        retries += sent(ready, Retry)
    assert fetches and {f.dst for f in fetches} == {"l2"}  # it tried the peer first
    assert {r.slot for r in retries} >= {0, 1, 2, 3}, retries  # then the proposers
    assert "l2" not in le.learner.peers.stored
    step(le, Stored(src="l2", dst="l1", upto=3))  # back: a source again
    assert le.learner.peers.stored["l2"] == 3
