"""`Node.status()`: one typed value of who leads, the ballot, the applied
prefix and the configurations, which the runtime's heartbeat reads instead
of the roles' attributes."""

from __future__ import annotations

import random

from paxos_agents.core import (
    ZERO_BALLOT,
    Ballot,
    Command,
    Heartbeat,
    Membership,
    Node,
    NodeStatus,
    Record,
    Settings,
)

SOLO = Membership(proposers=("r1",), acceptors=("r1",), learners=("r1",))
SPLIT = Membership(proposers=("p1",), acceptors=("a1",), learners=("l1",))


def run_alone(node: Node, ticks: int) -> None:
    """A one-replica cluster: tick, and deliver its messages to itself."""
    for _ in range(ticks):
        node.tick()
        ready = node.ready()
        for m in (*ready.send, *ready.send_after_persist):
            node.step(m)


def test_a_replica_that_leads_reports_itself_its_ballot_and_its_applied_slots():
    node = Node("r1", SOLO, Settings(), Record(), random.Random(0))
    node.propose(Command("c1", b"x"))
    run_alone(node, 40)
    status = node.status()
    assert status.leading and status.leader == "r1"
    assert status.ballot == node.proposer.ballot and status.ballot > ZERO_BALLOT
    assert status.decided_up_to == 0  # c1, applied
    assert status.config is not None and status.config.history.latest.acceptors == ("r1",)
    assert status.config.epoch == 0 and status.config.pending is None


def test_each_role_reports_only_what_it_holds():
    def status(name: str) -> NodeStatus:
        return Node(name, SPLIT, Settings(), Record(), random.Random(0)).status()

    assert status("a1") == NodeStatus(leading=False, ballot=None, leader=None,
                                      decided_up_to=None, config=None)
    proposer = status("p1")
    assert (proposer.leading, proposer.ballot, proposer.leader, proposer.decided_up_to) == (
        False, ZERO_BALLOT, None, None)
    assert proposer.config is not None and proposer.config.history.latest.acceptors == ("a1",)
    learner = status("l1")
    assert (learner.leading, learner.ballot, learner.decided_up_to) == (False, None, -1)


def test_a_follower_reports_the_leader_it_heard():
    node = Node("p1", SPLIT, Settings(), Record(), random.Random(0))
    node.step(Heartbeat(src="p2", dst="p1", ballot=Ballot(3, "p2"), highest_slot=-1,
                        decided_up_to=-1))
    status = node.status()
    assert not status.leading and status.leader == "p2" and status.ballot == ZERO_BALLOT
