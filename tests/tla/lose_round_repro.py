"""The README's finding, on the real core: a proposer that restarted without
its round breaks agreement, every message delivered once (only delayed).

The new incarnation reuses its old ballot and counts the Promises that
answered the old incarnation's Prepare, which was for a higher first_slot
and so reported nothing in slot 0. The core persists the round, so this
cannot happen as shipped; it shows that persisting it is required (the
TLA+ mutant LoseRound finds the same with duplicated Promises).

    .venv/bin/python tests/tla/lose_round_repro.py   # prints VIOLATION: agreement ...

Driven by hand with the Net harness of tests/core/test_core_ballot_reuse.py,
whose restart_without_memory wipes the proposer's record.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "core"))
from test_core_ballot_reuse import Net, X, Y, is_

from paxos_agents.core import Accept, Accepted, Heartbeat, Prepare, Promise, Settings, Value
from paxos_agents.sim import Violation

net = Net(Settings())
# 1. p2 leads under (1, p2).
net.tick_until("p2", Prepare)
net.drop(is_(Prepare, "p1"))
net.deliver(is_(Prepare, "p2"))
net.deliver(is_(Promise, dst="p2"))
assert net.nodes["p2"].is_leader
hb1 = [m for m in net.inbox if isinstance(m, Heartbeat) and m.dst == "p1"]
assert hb1 and hb1[0].decided_up_to == -1
held_hb1 = hb1[0]
net.drop(lambda m: isinstance(m, Heartbeat))          # HB1 to p1 is held back (delayed)
# 2. X decided in slot 0 under (1, p2); l1 learns it.
net.submit("p2", X)
net.deliver(is_(Accept, "p2"))
net.deliver(is_(Accepted, dst=("p2", "l1")))
net.drop(is_(Accepted))
assert net.nodes["l1"].learner.decided[0] == Value.of([X])
assert net.nodes["p2"].proposer.decided_up_to == 0
# 3. p2's next heartbeat tells p1 that slot 0 is decided; then p2 falls silent.
net.tick_until("p2", Heartbeat)
net.deliver(lambda m: isinstance(m, Heartbeat) and m.dst == "p1" and m.decided_up_to == 0)
net.drop(lambda m: m.src == "p2")
assert net.nodes["p1"].proposer.decided_up_to == 0
# 4. p1 times out and runs phase 1 from slot 1 under (2, p1); a1 and a2 promise.
net.tick_until("p1", Prepare)
old = net.nodes["p1"].proposer.ballot
print("old incarnation:", old, "first_slot", net.nodes["p1"].proposer.election.first_slot)
net.deliver(is_(Prepare, "p1", ("a1", "a2")))
net.drop(is_(Prepare, "p1"))
promises = [m for m in net.inbox if isinstance(m, Promise) and m.dst == "p1"]
print("in flight to p1:", [(m.src, str(m.ballot), m.first_slot, m.votes) for m in promises])
# 5. p1 crashes before they arrive and restarts with no round (the hypothesis).
net.restart_without_memory("p1")
# 6. p2's first heartbeat (sent before slot 0 was decided) arrives late.
net.inbox.append(held_hb1)
net.deliver(lambda m: m is held_hb1)
# 7. p2 still silent: p1 runs phase 1 again, from slot 0 (it knows nothing decided).
net.drop(lambda m: m.src == "p2")
net.tick_until("p1", Prepare)
new = net.nodes["p1"].proposer.ballot
print("new incarnation:", new, "first_slot", net.nodes["p1"].proposer.election.first_slot)
assert new == old
net.drop(is_(Prepare, "p1"))                          # its own Prepares: nacked or lost, no matter
# 8. The old incarnation's Promises arrive, once each.
net.deliver(is_(Promise, dst="p1"))
print("p1 leads:", net.nodes["p1"].is_leader, "next_slot", net.nodes["p1"].proposer.pipeline.next_slot)
# 9. A client asks p1 for Y: it goes to slot 0 under (2, p1), which every acceptor accepts.
try:
    net.submit("p1", Y)
    net.deliver(is_(Accept, "p1"))
    net.deliver(is_(Accepted, dst=("p1", "l2")))
    print("no violation?", net.nodes["l2"].learner.decided)
except Violation as v:
    print("VIOLATION:", v)
    sys.exit(0)
sys.exit(1)
