"""A command whose slot was decided with ANOTHER value must not be lost.

A leader proposes command r8 in slot s. Before a majority accepts it, a
newer leader decides a different value (r9) in slot s, and the old leader
finds out (its replica's own learner decides the slot, or a Decide arrives)
before anything deposes it. r8 was not chosen anywhere, so it must still be
proposable: the leader re-queues it, or at the least it proposes it when the
client retries.

Found by the simulator: `python -m paxos_agents.sim --seeds 1 --start 849
--topology replicas=3` (liveness: r8 is never applied, every retry of it is
dropped by the leader as "already queued or in flight").
"""

from __future__ import annotations

import random

import pytest

from paxos_agents.core import (
    Accept,
    Accepted,
    Ballot,
    Command,
    Decide,
    Membership,
    Node,
    Prepare,
    Promise,
    Record,
    Settings,
    Value,
)

R8 = Command("r8", b"v8")
R9 = Command("r9", b"v9")

REPLICAS = Membership(proposers=("r0", "r1", "r2"), acceptors=("r0", "r1", "r2"),
                      learners=("r0", "r1", "r2"))
SEPARATE = Membership(proposers=("p1", "p2"), acceptors=("a1", "a2", "a3"), learners=("l1",))


def leader(node_id: str, membership: Membership) -> Node:
    """A fresh proposer made leader of an empty log (every acceptor promises, no votes)."""
    node = Node(node_id, membership, Settings(), Record(), random.Random(3))
    for _ in range(100):
        node.tick()
        ready = node.ready()
        prepares = [m for m in ready.send_after_persist if isinstance(m, Prepare)]
        if prepares:
            break
    else:
        raise AssertionError("never ran for leader")
    for acceptor in membership.acceptors[: membership.majority]:
        node.step(Promise(src=acceptor, dst=node_id, ballot=node.proposer.ballot,
                          first_slot=0, votes=()))
    assert node.is_leader
    node.ready()
    return node


def proposed(node: Node) -> dict[int, set]:
    """slot -> the values `node` sent Accepts for, since the last ready()."""
    out: dict[int, set] = {}
    for m in node.ready().send:
        if isinstance(m, Accept):
            out.setdefault(m.slot, set()).add(m.value)
    return out


def decide_other_value_replica(node: Node) -> None:
    # Two acceptors accept r9 in slot 0 under a newer leader's ballot; the
    # replica's own learner counts them, decides, and tells its proposer.
    newer = Ballot(node.proposer.ballot.round + 1, "r1")
    for src in ("r1", "r2"):
        node.step(Accepted(src=src, dst=node.node_id, ballot=newer, slot=0, value=Value.of([R9])))


def decide_other_value_separate(node: Node) -> None:
    # A learner's Retry answer (or another proposer) tells it slot 0's decision.
    node.step(Decide(src="p2", dst=node.node_id, slot=0, value=Value.of([R9])))


@pytest.mark.parametrize(
    "node_id,membership,decide_other",
    [("r0", REPLICAS, decide_other_value_replica), ("p1", SEPARATE, decide_other_value_separate)],
    ids=["replica-learns-from-own-learner", "proposer-told-by-decide"],
)
def test_command_outvoted_in_its_slot_is_proposed_again(node_id, membership, decide_other):
    """Guards liveness: a request id is never stuck as "outstanding" with nothing in flight."""
    node = leader(node_id, membership)
    node.propose(R8)
    assert proposed(node) == {0: {Value.of([R8])}}

    decide_other(node)
    assert node.proposer.decisions.chosen[0] == Value.of([R9])
    again = proposed(node)  # re-queued by the leader itself, if it does so

    # The client did not hear back and retries, as clients do.
    node.propose(R8)
    for _ in range(Settings().accept_timeout_ticks + 1):
        node.tick()
        for slot, values in proposed(node).items():
            again.setdefault(slot, set()).update(values)

    slots_with_r8 = sorted(s for s, values in again.items()
                           if any(R8 in value for value in values))
    assert slots_with_r8, (
        "r8 lost: slot 0 was decided with r9, yet the leader neither re-proposed r8 "
        f"nor accepted the client's retry (outstanding={sorted(node.proposer.intake.outstanding)}, "
        f"pending={list(node.proposer.intake.pending)}, inflight={sorted(node.proposer.pipeline.inflight)})"
    )
    assert 0 not in slots_with_r8  # slot 0 is decided; r8 goes to a fresh slot
