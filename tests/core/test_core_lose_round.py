"""A proposer must persist its ballot round before its Prepare leaves (Paxos
Made Simple, section 2.5; the TLA+ mutant LoseRound, tests/tla/README.md).

One deterministic schedule, every message delivered at most once (only
delayed): p1's Promises for 2.p1 (phase 1 from slot 1, so they report
nothing in slot 0, where X is chosen) are still in flight when p1 crashes.
Restarted *without* its round, p1 picks 2.p1 again, runs phase 1 from slot
0, and counts those stale Promises: it proposes Y in slot 0 and two values
are chosen. Restarted from what it persisted, it picks 3.p1 and the stale
Promises count for nothing.
"""

from __future__ import annotations

import pytest

from paxos_agents.core import Accept, Accepted, Ballot, Heartbeat, Prepare, Promise, Settings
from paxos_agents.sim import Violation

from test_core_ballot_reuse import Net, X, Y, is_


def restart_from_disk(net: Net, node_id: str) -> None:
    net.inbox = [m for m in net.inbox if m.src != node_id]  # unsent: gone
    net.nodes[node_id] = net._boot(node_id, net.records[node_id].copy())


def run(restart) -> Ballot:
    """The schedule above; returns p1's ballot after the restart."""
    net = Net(Settings())
    net.tick_until("p2", Prepare)                      # p2 leads under 1.p2
    net.drop(is_(Prepare, "p1"))
    net.deliver(is_(Prepare, "p2"))
    net.deliver(is_(Promise, dst="p2"))
    held = next(m for m in net.inbox if isinstance(m, Heartbeat) and m.dst == "p1")
    net.drop(lambda m: isinstance(m, Heartbeat))       # its first heartbeat to p1: delayed
    net.submit("p2", X)                                # X is chosen in slot 0
    net.deliver(is_(Accept, "p2"))
    net.deliver(is_(Accepted, dst=("p2", "l1")))
    net.drop(is_(Accepted))
    net.tick_until("p2", Heartbeat)                    # p1 learns slot 0 is decided
    net.deliver(lambda m: isinstance(m, Heartbeat) and m.dst == "p1" and m.decided_up_to == 0)
    net.drop(lambda m: m.src == "p2")                  # then p2 falls silent
    net.tick_until("p1", Prepare)                      # p1: phase 1 from slot 1 under 2.p1
    assert net.nodes["p1"].proposer.ballot == Ballot(2, "p1")
    net.deliver(is_(Prepare, "p1", ("a1", "a2")))
    net.drop(is_(Prepare, "p1"))                       # their Promises: in flight
    restart(net, "p1")                                 # p1 crashes and restarts
    net.inbox.append(held)                             # the old heartbeat arrives late
    net.deliver(lambda m: m is held)
    net.drop(lambda m: m.src == "p2")
    net.tick_until("p1", Prepare)
    ballot = net.nodes["p1"].proposer.ballot
    net.drop(is_(Prepare, "p1"))
    net.deliver(is_(Promise, dst="p1"))                # the stale Promises, once each
    net.submit("p1", Y)
    net.deliver(is_(Accept, "p1"))
    net.deliver(is_(Accepted, dst=("p1", "l2")))       # the checker raises on two values
    return ballot


def test_restart_from_the_persisted_round_never_reuses_a_ballot():
    assert run(restart_from_disk) == Ballot(3, "p1")


def test_restart_without_the_round_is_saved_here_only_by_the_promise_coverage_rule():
    """Without the persisted round, p1 reuses 2.p1 and the stale Promises arrive.
    They covered slots >= 1 only, so they do not count for a phase 1 from slot 0
    (promises.py: a promise counts only for the slots it covers, the rule phase 1
    across configurations needs). Before that rule this schedule chose two values
    in slot 0; the round rule stays necessary in general (TLA+ LoseRound)."""
    net_box = {}

    def restart(net, node):
        net_box["net"] = net
        net.restart_without_memory(node)

    assert run(restart) == Ballot(2, "p1")  # the reused ballot
    p1 = net_box["net"].nodes["p1"].proposer
    assert not p1.phase == "leader"
    assert p1.election.promises.by_src and not p1.election.prepared(p1.history)
