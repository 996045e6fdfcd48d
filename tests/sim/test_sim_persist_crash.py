"""A node crashing during its persist: what the runtime sent before `storage.save`.

runtime/agent.py drains a `Ready` per loop turn in this order: `send`
(flushed during the fsync), the clients' answers, the persist, then
`send_after_persist`. A crash inside the persist leaves the first two done
and nothing of the rest. The simulator's `crash_in_next_persist` (and the
random `Faults.crash_before_persist`) is that crash; these scenarios show
that the real roles announce nothing such a crash loses, and that the
planted variants that send an announcement early do, and are caught.
"""

from __future__ import annotations

import pytest

from paxos_agents.core import Accepted, Command, Settings, Stored
from paxos_agents.sim import SEPARATE, SimCluster, Violation

from test_sim_scenarios import elect, spy, wait

CORRECT = frozenset()


def cluster(plant: frozenset[str], **settings) -> SimCluster:
    return SimCluster(SEPARATE.membership(), 9, Settings(batch=1, plant=plant, **settings))


@pytest.mark.parametrize("plant", [CORRECT, frozenset({"send-before-persist"})],
                         ids=["correct", "planted-send-before-persist"])
def test_an_acceptor_crashing_in_the_persist_of_its_vote(plant):
    """Guards Paxos Made Simple §2.5 under the runtime's loop order: an
    acceptor that dies while its vote is being written has sent no
    Accepted (the correct acceptor), so the vote it lost was never counted;
    the planted one's Accepted has left and a learner counts a vote that
    no disk holds. Either way nothing of the persist is durable."""
    sim = cluster(plant)
    leader = elect(sim)
    victim = "acceptor-0"
    sent = spy(sim)
    sim.crash_in_next_persist(victim)
    sim.submit(leader, Command("c0", b"v0"))
    wait(sim, lambda: sim.nodes[victim] is None)
    assert sim.records[victim].votes == {}  # the vote never became durable
    announced = [m for m in sent if isinstance(m, Accepted) and m.src == victim]
    if plant:
        assert announced and {m.slot for m in announced} == {0}
    else:
        assert announced == []
        # The other two acceptors are a majority: c0 is decided all the same.
        wait(sim, lambda: 0 in sim.checker.chosen)
        sim.restart(victim)
        sim.run(50)


@pytest.mark.parametrize("plant", [CORRECT, frozenset({"stored-before-persist"})],
                         ids=["correct", "planted-stored-before-persist"])
def test_a_learner_crashing_in_the_persist_of_what_it_applied(plant):
    """Guards `Stored` after the persist: a learner that dies while the slot
    it applied is being written has told nobody it stored it (correct), so
    the acceptors keep the votes it will need; the planted learner's report
    has left, the acceptors compact below a slot it does not hold, and the
    simulator's compaction check fails."""
    sim = cluster(plant, stored_ticks=1)
    leader = elect(sim)
    victim = "learner-0"
    sent = spy(sim)
    sim.crash_in_next_persist(victim)
    sim.submit(leader, Command("c0", b"v0"))
    wait(sim, lambda: sim.nodes[victim] is None)
    durable = sim.records[victim].applied
    claimed = max((m.upto for m in sent if isinstance(m, Stored) and m.src == victim), default=-1)
    assert durable == -1
    if plant:
        assert claimed == 0  # reported slot 0 stored; the disk holds nothing
        with pytest.raises(Violation, match="compaction: acceptor-. dropped votes below slot 1 "
                                            "but learner-0 has stored only up to -1"):
            sim.run(100)
    else:
        assert claimed == -1
        sim.run(100)  # learner-1 reports slot 0; nothing compacts without learner-0
        assert all(sim.nodes[a].acceptor.compacted == 0 for a in sim.membership.acceptors)
        sim.restart(victim)
        wait(sim, lambda: sim.nodes[victim].learner.decided_up_to == 0)
        wait(sim, lambda: all(sim.nodes[a].acceptor.compacted == 1
                              for a in sim.membership.acceptors))
