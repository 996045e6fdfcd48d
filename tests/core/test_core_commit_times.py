"""The leader's commit durations (core committime.py), on a clock the test sets.

A slot is timed from the arrival of its *oldest* command at the leader's
intake to the leader learning it decided, once per slot whatever its
commands; the core reads no clock, only what `Node.set_time` told it.
Re-proposals are timed from their arrival at the leader that proposes
them again (committime.py says why), and a no-op is not timed.
"""

from __future__ import annotations

import pytest
from core.leading import lead

from paxos_agents.core import (
    Accept,
    Accepted,
    Ballot,
    Command,
    Decide,
    Heartbeat,
    Membership,
    Nack,
    Node,
    Prepare,
    Promise,
    Settings,
    Value,
    Vote,
)
from paxos_agents.core.committime import COMMIT_BUCKETS

MEMBERS = Membership(proposers=("p1",), acceptors=("a1", "a2", "a3"), learners=("l1",))


def leader(window: int = 32) -> Node:
    node = Node("p1", MEMBERS, Settings(window=window))
    lead(node)
    node.ready()
    return node


def accepts(node: Node) -> dict[int, Value]:
    """slot -> value of the Accepts the node sends now."""
    return {m.slot: m.value for m in node.ready().send if isinstance(m, Accept)}


def accepted(node: Node, slot: int, value: Value, by=("a1", "a2")) -> None:
    for acceptor in by:
        node.step(Accepted(src=acceptor, dst="p1", ballot=node.proposer.ballot, slot=slot,
                           value=value))


def bucket_of(seconds: float) -> int:
    return next(i for i, bound in enumerate(COMMIT_BUCKETS) if seconds <= bound)


def test_a_slot_is_timed_once_from_its_oldest_command_not_its_newest():
    node = leader(window=1)
    node.set_time(1.0)
    node.propose_batch((Command("c0", b"0"),))
    (slot0, value0), = accepts(node).items()  # alone in slot 0: the window is now full
    node.set_time(10.0)
    node.propose_batch((Command("c1", b"1"),))
    node.set_time(10.5)
    node.propose_batch((Command("c2", b"2"), Command("c3", b"3")))
    assert accepts(node) == {}  # queued behind the full window
    node.set_time(11.0)
    accepted(node, slot0, value0)
    times = node.commit_times
    assert (times.count, times.sum) == (1, 10.0)  # slot 0: from 1.0 to 11.0
    (slot1, value1), = accepts(node).items()
    assert [c.request_id for c in value1.commands] == ["c1", "c2", "c3"]
    node.set_time(12.0)
    accepted(node, slot1, value1)
    # One observation for three commands, from c1's arrival (10.0), not c2's or c3's (10.5).
    assert (times.count, times.sum) == (2, 12.0)
    assert times.buckets[bucket_of(2.0)] == 1 and times.buckets[-1] == 0


def test_the_third_vote_and_a_repeated_decision_are_not_timed_again():
    node = leader()
    node.set_time(2.0)
    node.propose_batch((Command("c", b"x"),))
    (slot, value), = accepts(node).items()
    node.set_time(2.25)
    accepted(node, slot, value, by=("a1", "a2", "a3"))
    node.step(Decide(src="p1", dst="p1", slot=slot, value=value))
    assert (node.commit_times.count, node.commit_times.sum) == (1, 0.25)


def test_a_slot_of_ours_learned_decided_otherwise_is_timed_when_learned():
    """A Decide (or a replica's own learner) tells the leader before its own count does."""
    node = leader()
    node.set_time(3.0)
    node.propose_batch((Command("c", b"x"),))
    (slot, value), = accepts(node).items()
    node.set_time(3.5)
    node.step(Decide(src="p1", dst="p1", slot=slot, value=value))
    accepted(node, slot, value)  # the votes that come late change nothing
    assert (node.commit_times.count, node.commit_times.sum) == (1, 0.5)


def test_commands_queued_again_after_losing_the_lead_are_timed_from_then():
    """Deposed with a slot in flight, led again: its command is timed from
    when it was queued again here (3.0), not from its first arrival (1.0)."""
    node = leader()
    node.set_time(1.0)
    node.propose_batch((Command("c", b"x"),))
    assert list(accepts(node)) == [0]
    node.set_time(3.0)
    ballot = node.proposer.ballot
    node.step(Nack(src="a1", dst="p1", ballot=ballot,
                   promised=Ballot(ballot.round + 1, "p2")))
    assert not node.is_leader and len(node.proposer.intake.pending) == 1
    node.set_time(4.0)
    lead(node)
    (slot, value), = accepts(node).items()
    assert [c.request_id for c in value.commands] == ["c"]
    node.set_time(5.0)
    accepted(node, slot, value)
    assert (node.commit_times.count, node.commit_times.sum) == (1, 2.0)


def test_a_value_phase_1_reports_is_timed_from_the_new_leader_proposing_it_and_no_op_never():
    """A new leader re-proposes slot 1's reported value from 7.0 (its arrival
    here) and fills slot 0 with a no-op, which holds no command: one slot timed."""
    node = Node("p1", MEMBERS, Settings())
    node.set_time(7.0)
    for _ in range(100):
        node.tick()
        if any(isinstance(m, Prepare) for m in node.ready().send_after_persist):
            break
    old = Ballot(0, "p2")
    reported = Value.of([Command("old", b"v")])
    for acceptor in ("a1", "a2"):
        node.step(Promise(src=acceptor, dst="p1", ballot=node.proposer.ballot, first_slot=0,
                          votes=(Vote(slot=1, ballot=old, value=reported),)))
    assert node.is_leader
    sent = accepts(node)
    assert sent[1] == reported and not sent[0].data  # slot 0: a no-op
    node.set_time(7.75)
    for slot in (0, 1):
        accepted(node, slot, sent[slot])
    assert (node.commit_times.count, node.commit_times.sum) == (1, 0.75)


def test_commands_handed_to_a_leader_leave_their_arrivals_with_them():
    """Queued while no leader is known, forwarded once one is: nothing left
    here to time, and the arrivals still cover exactly what is queued."""
    node = Node("p2", Membership(proposers=("p1", "p2"), acceptors=("a1", "a2", "a3"),
                                 learners=("l1",)), Settings())
    node.set_time(1.0)
    node.propose_batch((Command("c", b"x"), Command("d", b"y")))
    intake = node.proposer.intake
    assert len(intake.pending) == 2 and list(intake.arrivals) == [[2, 1.0]]
    node.step(Heartbeat(src="p1", dst="p2", ballot=Ballot(5, "p1"), highest_slot=-1,
                        decided_up_to=-1))
    assert not intake.pending and not intake.arrivals
    assert node.commit_times.count == 0


@pytest.mark.parametrize("seconds", [0.0, 0.0001, 0.00011, 9.99, 10.0, 10.01, 3600.0])
def test_a_duration_lands_in_the_bucket_of_the_first_bound_not_below_it(seconds):
    node = leader()
    node.set_time(0.0)  # from 0: the durations are exact floats
    node.propose_batch((Command("c", b"x"),))
    (slot, value), = accepts(node).items()
    node.set_time(seconds)
    accepted(node, slot, value)
    buckets = node.commit_times.buckets
    expected = next((i for i, b in enumerate(COMMIT_BUCKETS) if seconds <= b), len(COMMIT_BUCKETS))
    assert buckets[expected] == 1 and sum(buckets) == 1
