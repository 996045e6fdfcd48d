"""The life of a slot decided across a leader kill, drawn from the simulator's
records (paxos_agents.trace) and asserted arrow by arrow.

The script: proposer p leads with ballot b1 and proposes V in slot S; every
Accepted of b1 is held (p and the learners never hear of the votes), then p
crashes. The other proposer q takes over: its phase 1 must find the vote
(S, b1, V) in the Promises and re-propose the SAME value under b2, and the
learners decide V from the Accepteds of b2. A new leader that ignored the
promised vote (the planted bug `ignore-promised-value`) breaks this test.
"""

from __future__ import annotations

import json

from paxos_agents.core import Accepted, Command, Settings, Value
from paxos_agents.sim import SEPARATE, SimCluster
from paxos_agents.sim.__main__ import main as sim_main
from paxos_agents.sim.recording import SimRecorder
from paxos_agents.trace import digest, render, slot_life

BOUND = 400


def wait(sim: SimCluster, cond, bound: int = BOUND) -> None:
    assert sim.run(bound, until=cond), f"not reached within {bound} ticks (now {sim.now})"


def leader_killed_run(plant: frozenset[str] = frozenset()):
    recorder = SimRecorder()
    sim = SimCluster(SEPARATE.membership(), 1, Settings(batch=1, plant=plant), recorder=recorder)
    m = sim.membership
    wait(sim, lambda: sim.leader() is not None and all(
        sim.nodes[p].proposer.leader == sim.leader() for p in m.proposers))
    old = sim.leader()
    b1 = sim.nodes[old].proposer.ballot
    sim.hold(lambda msg: isinstance(msg, Accepted) and msg.ballot == b1)
    command = Command("c0", b"v-c0")
    sim.submit(old, command)
    wait(sim, lambda: all(sim.nodes[a].acceptor.vote_at(0) is not None for a in m.acceptors))
    assert all(n.learner.decided_up_to < 0 for n in sim.learners())  # nobody heard the votes
    sim.crash(old)
    wait(sim, lambda: all(n.learner.decided_up_to >= 0 for n in sim.learners()))
    new = sim.leader()
    assert new is not None and new != old
    return sim, recorder, old, new, str(b1), str(sim.nodes[new].proposer.ballot), \
        digest(Value.of([command]))


def test_a_slot_decided_across_a_leader_kill_is_drawn_arrow_by_arrow():
    sim, recorder, old, new, b1, b2, v = leader_killed_run()
    m = sim.membership
    acceptors, learners = set(m.acceptors), set(m.learners)
    life = slot_life(recorder.records, 0)
    steps = [s.to_json() for s in life.steps]

    def where(**want) -> list[int]:
        return [i for i, s in enumerate(steps) if all(s.get(k) == w for k, w in want.items())]

    # 1. the old leader's Accept(b1, 0, V) reaches every acceptor
    accepts1 = where(kind="accept", ballot=b1, **{"from": old})
    assert {steps[i]["to"] for i in accepts1} == acceptors
    assert all(steps[i]["value"] == v and steps[i]["status"] == "delivered" for i in accepts1)
    # 2. their Accepted(b1) to the learners and the old leader, held: never received
    accepted1 = where(kind="accepted", ballot=b1)
    assert {(steps[i]["from"], steps[i]["to"]) for i in accepted1} >= {
        (a, d) for a in acceptors for d in learners | {old}}
    assert all(steps[i]["status"] == "lost" and steps[i]["value"] == v for i in accepted1)
    # 3. the new leader's Prepare(b2) covering slot 0, to every acceptor
    prepares = where(kind="prepare", ballot=b2, **{"from": new})
    assert {steps[i]["to"] for i in prepares} == acceptors
    assert all(steps[i]["slots"][0] <= 0 for i in prepares)
    # 4. the Promises carry the old vote (0, b1, V)
    promises = where(kind="promise", ballot=b2, to=new, status="delivered")
    assert {steps[i]["from"] for i in promises} == acceptors
    assert all([0, b1, v] in steps[i]["votes"] for i in promises)
    # 5. the new leader's Accept(b2, 0, V): the SAME value digest
    accepts2 = where(kind="accept", ballot=b2, **{"from": new})
    assert {steps[i]["to"] for i in accepts2} == acceptors
    assert all(steps[i]["value"] == v for i in accepts2)
    # 6. Accepted(b2) reaches the learners
    accepted2 = where(kind="accepted", ballot=b2, status="delivered")
    assert {steps[i]["to"] for i in accepted2} >= learners
    assert all(steps[i]["value"] == v for i in accepted2)
    # 7. every learner's decided mark, with V
    decided = where(kind="decided")
    assert {steps[i]["from"] for i in decided} == learners
    assert life.decided == {learner: v for learner in learners}
    # ... in that causal order
    assert max(accepts1) < min(prepares)
    for later, earlier in ((promises, prepares), (accepts2, promises),
                           (accepted2, accepts2), (decided, accepted2)):
        assert min(later) > min(earlier)
    assert max(accepts2) > max(promises[:2])  # a quorum of promises came first
    # The diagram shows the same, in 80 columns.
    lines = render(life, 80, order=sim.ids)
    assert all(len(line) <= 80 for line in lines)
    text = "\n".join(lines)
    short_b1 = b1.split(".")[0] + ".p" + old[-1]
    assert f"Promise {b2.split('.')[0]}.p{new[-1]} [s0 {short_b1} {v}]" in text
    assert f"DECIDED s0 {v}" in text and f"Accepted {short_b1} s0 {v} LOST" in text


def test_sim_cli_draws_a_decided_slot_and_refuses_an_unknown_one(capsys):
    assert sim_main(["--seed", "3", "--trace", "1", "-o", "json"]) == 0
    life = json.loads(capsys.readouterr().out)
    assert life["slot"] == 1 and life["decided"]
    assert any(s["kind"] == "accept" for s in life["steps"])
    assert sim_main(["--seed", "3", "--trace", "100000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "slot 100000 was not decided in seed 3" in err[0]
