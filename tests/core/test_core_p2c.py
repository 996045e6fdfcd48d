"""P2c in one deterministic schedule (Paxos Made Simple, section 2.2): a new
leader proposes, in each slot, the value of the highest-ballot vote its
promises report, even when it once proposed another value there itself.

The schedule: p1 (ballot 1.p1) gets X accepted by a1 only; p2 (1.p2) gets
Y accepted by a2 and a3, so Y is chosen and l2 learns it; p1, deposed,
runs phase 1 again (2.p1) with promises from a1 (X at 1.p1) and a2 (Y at
1.p2). It must propose Y, not the X it remembers: X would be chosen too.
"""

from __future__ import annotations

from paxos_agents.core import Accept, Accepted, Ballot, Heartbeat, Prepare, Promise, Settings, Value

from test_core_ballot_reuse import Net, X, Y, is_


def test_new_leader_proposes_the_highest_ballot_vote_not_its_own_old_value():
    net = Net(Settings())
    # p1 leads under 1.p1 with a1 and a2; X reaches a1 only.
    net.tick_until("p1", Prepare)
    net.deliver(is_(Prepare, "p1", ("a1", "a2")))
    net.drop(is_(Prepare, "p1"))
    net.deliver(is_(Promise, dst="p1"))
    assert net.nodes["p1"].is_leader
    net.submit("p1", X)
    net.deliver(is_(Accept, "p1", "a1"))
    net.drop(lambda m: isinstance(m, (Accept, Accepted, Heartbeat)))
    # p2 leads under 1.p2 with a2 and a3; Y is chosen there and l2 learns it.
    net.tick_until("p2", Prepare)
    assert net.nodes["p2"].proposer.ballot == Ballot(1, "p2")
    net.deliver(is_(Prepare, "p2", ("a2", "a3")))
    net.drop(is_(Prepare, "p2"))
    net.deliver(is_(Promise, dst="p2"))
    assert net.nodes["p2"].is_leader
    net.submit("p2", Y)
    net.deliver(is_(Accept, "p2", ("a2", "a3")))
    net.deliver(is_(Accepted, dst="l2"))
    assert net.nodes["l2"].learner.decided[0] == Value.of([Y])
    # p1 hears the higher ballot, steps down, and runs again under 2.p1.
    net.deliver(is_(Heartbeat, "p2", "p1"))
    net.drop(lambda m: m.dst != "p1" or not isinstance(m, Prepare))
    net.inbox.clear()
    net.tick_until("p1", Prepare)
    assert net.nodes["p1"].proposer.ballot == Ballot(2, "p1")
    net.deliver(is_(Prepare, "p1", ("a1", "a2")))
    net.drop(is_(Prepare, "p1"))
    net.deliver(is_(Promise, dst="p1"))
    assert net.nodes["p1"].is_leader
    accepts = [m for m in net.inbox if isinstance(m, Accept) and m.slot == 0]
    assert accepts and {m.value for m in accepts} == {Value.of([Y])}
    # Delivered, l1 learns Y too (the checker would raise on two values).
    net.deliver(is_(Accept, "p1"))
    net.deliver(is_(Accepted, dst="l1"))
    assert net.nodes["l1"].learner.decided[0] == Value.of([Y])
