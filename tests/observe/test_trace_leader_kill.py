"""A slot decided across a leader kill, on a live cluster, drawn by
`paxosctl trace` and asserted arrow by arrow (the simulator's version is
tests/sim/test_sim_trace.py); and the chaos rule that builds it,
`paxosctl chaos --drop-kind KIND --drop-to AGENT`.

The scenario: with every Accepted dropped by its sender (`--drop-kind
accepted`, to any agent), the leader's Accept(b1, S, V) gets votes from
the acceptors that nobody hears of, so `propose` cannot learn the outcome
(exit 124). The leader is SIGKILLed and chaos healed; the other proposer
takes over and its phase 1 must find the vote (S, b1, V) in the Promises
and propose the SAME value under b2; the learners decide V, once.

With the Accepteds dropped to the leader alone (`--drop-to LEADER`), the
learners still hear the acceptors and decide V in b1: the leader's records
show no received Accepted, and the slot is decided all the same.
"""

from __future__ import annotations

import json

import clusters

VALUE = "across-a-kill"


def trace(cluster, request_id: str, done) -> dict:
    """`paxosctl trace --request-id` once `done(life)` holds (records of a
    majority's answers may arrive after the decision: wait for them all)."""
    def drawn():
        r = cluster.run("trace", "--request-id", request_id, "-o", "json")
        if r.returncode != 0:
            return None
        life = json.loads(r.stdout)
        return life if done(life) else None
    return clusters.wait_until(drawn, 15, f"the trace of {request_id} complete")


def ballot(text: str) -> tuple[int, str]:
    """"3.proposer-1" as the (round, node) pair ballots are ordered by."""
    round_, node = text.split(".", 1)
    return int(round_), node


def next_leader(cluster, above: tuple[int, str]) -> str | None:
    st = cluster.status()
    return st["leader"] if st["leader"] and tuple(st["ballot"]) > above else None


def one_line_refusal(cluster, *args: str, fragment: str) -> None:
    r = cluster.run(*args)
    assert r.returncode == 2, clusters.describe(r)
    lines = r.stderr.strip().splitlines()
    assert lines and fragment in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_accepted_dropped_to_the_leader_alone_the_learners_still_decide(cluster):
    leader = cluster.leader()
    one_line_refusal(cluster, "chaos", "--drop-kind", "acepted",
                     fragment="drop_kinds: no message kind 'acepted'; kinds: prepare, promise")
    one_line_refusal(cluster, "chaos", "--drop-kind", "accepted", "--drop-to", "nobody",
                     fragment="drop_to: no agent 'nobody'; agents: ")
    assert cluster.run_ok("chaos").stdout.strip() == "chaos: off"  # nothing half-set
    shown = cluster.run_ok("chaos", "--drop-kind", "accepted", "--drop-to", leader).stdout
    assert shown.strip() == f"chaos: drop_kinds=accepted, drop_to={leader}"
    assert f"chaos: drop_kinds=accepted, drop_to={leader}" in cluster.run_ok("status").stdout
    assert cluster.run_ok("chaos").stdout == shown  # no option: what is in force
    assert cluster.status()["chaos"] == {"drop_kinds": ["accepted"], "drop_to": [leader]}
    scraped = cluster.run_ok("metrics").stdout  # the rule is a fault in force, for alerts
    assert 'paxosctl_chaos_active{fault="drop_kinds"} 1.0' in scraped
    assert 'paxosctl_chaos_active{fault="drop"} 0.0' in scraped

    proposed = cluster.run_ok("propose", VALUE, "--request-id", "to-leader", "--timeout", "10",
                              "-o", "json")
    slot = json.loads(proposed.stdout)["slot"]
    acceptors, learners = set(cluster.acceptors), set(cluster.learners)

    def complete(life) -> bool:
        to_leader = {s["from"] for s in life["steps"] if s["kind"] == "accepted"
                     and s["to"] == leader}
        return set(life["decided"]) == learners and to_leader == acceptors
    life = trace(cluster, "to-leader", complete)
    assert life["slot"] == slot
    steps = life["steps"]
    to_leader = [s for s in steps if s["kind"] == "accepted" and s["to"] == leader]
    # Every Accepted to the leader dropped by its sender's chaos; none received.
    assert all(s["status"] == "dropped" and s.get("dropped") == "chaos" and "recv" not in s
               for s in to_leader), to_leader
    # ... while those to the learners arrive, and they decide the leader's value.
    value = next(s["value"] for s in steps if s["kind"] == "accept" and s["from"] == leader)
    assert {s["to"] for s in steps if s["kind"] == "accepted" and s["status"] == "delivered"} \
        >= learners
    assert life["decided"] == {learner: value for learner in learners}

    assert cluster.run_ok("chaos", "--drop-kind", "").stdout.strip() == "chaos: off"
    assert cluster.status()["chaos"] == {}  # the rule and its targets gone
    cluster.run_ok("propose", "after-heal", "--timeout", "10")
    cluster.run_ok("chaos", "--drop-kind", "accepted", "--drop-to", leader)
    assert cluster.run_ok("chaos", "--heal").stdout.strip() == "chaos: off"


def test_a_slot_decided_across_a_leader_kill_is_drawn_arrow_by_arrow(cluster):
    old = cluster.leader()
    b1 = "{}.{}".format(*cluster.status()["ballot"])  # [round, node] -> as the trace writes it
    cluster.run_ok("chaos", "--drop-kind", "accepted")  # to any agent: nobody hears a vote
    first = cluster.run("propose", VALUE, "--request-id", "kill-me", "--timeout", "2")
    assert first.returncode == 124, clusters.describe(first)  # outcome unknown
    assert cluster.status()["decided_up_to"] in (None, -1)
    cluster.run_ok("kill", old)
    cluster.run_ok("chaos", "--heal")
    # The next leader: usually the other proposer; the killed one, restarted
    # by the supervisor, sometimes wins the race (a new incarnation, b2 > b1).
    new = clusters.wait_until(lambda: next_leader(cluster, ballot(b1)), 20, "a leader above " + b1)
    again = cluster.run_ok("propose", VALUE, "--request-id", "kill-me", "--timeout", "10",
                           "-o", "json")
    slot = json.loads(again.stdout)["slot"]
    acceptors, learners = set(cluster.acceptors), set(cluster.learners)

    def complete(life) -> bool:
        reached = {s["to"] for s in life["steps"] if s["kind"] == "accept"
                   and s["from"] == new and s.get("recv")}
        return set(life["decided"]) == learners and reached == acceptors
    life = trace(cluster, "kill-me", complete)
    assert life["slot"] == slot
    steps = life["steps"]

    def where(**want) -> list[int]:
        return [i for i, s in enumerate(steps) if all(s.get(k) == w for k, w in want.items())]

    # 1. the old leader's Accept(b1, S, V) reached every acceptor (its own
    #    records died with it: the acceptors' receipts remain). A new leader
    #    that dropped the promised vote would decide the request in a later
    #    slot, where there is no such Accept.
    accepts1 = where(kind="accept", ballot=b1, **{"from": old})
    assert {steps[i]["to"] for i in accepts1} == acceptors, \
        f"slot {slot}, where {new} decided the request, is not the slot of {old}'s vote"
    v = steps[accepts1[0]]["value"]
    assert all(steps[i]["value"] == v and steps[i]["slots"] == [slot, slot] for i in accepts1)
    # 2. the acceptors' Accepted(b1), to the old leader among others: dropped by chaos
    accepted1 = where(kind="accepted", ballot=b1)
    assert {(steps[i]["from"], steps[i]["to"]) for i in accepted1} >= {
        (a, d) for a in acceptors for d in learners | {old}}
    assert all(steps[i]["status"] == "dropped" and steps[i]["dropped"] == "chaos"
               and steps[i]["value"] == v for i in accepted1)
    # 3. the new leader's Prepare(b2 > b1) covering S, to every acceptor
    prepares = [i for i in where(kind="prepare", **{"from": new}) if steps[i]["ballot"] != b1]
    assert {steps[i]["to"] for i in prepares} == acceptors
    b2 = steps[prepares[0]]["ballot"]
    assert ballot(b2) > ballot(b1)
    assert all(steps[i]["ballot"] == b2 and steps[i]["slots"][0] <= slot for i in prepares)
    # 4. the Promises to it carry the old vote (S, b1, V)
    promises = where(kind="promise", ballot=b2, to=new, status="delivered")
    assert len({steps[i]["from"] for i in promises}) * 2 > len(acceptors)  # a majority at least
    assert all([slot, b1, v] in steps[i]["votes"] for i in promises)
    # 5. the new leader's Accept(b2, S, V): the SAME value digest
    accepts2 = where(kind="accept", ballot=b2, **{"from": new})
    assert {steps[i]["to"] for i in accepts2} == acceptors
    assert all(steps[i]["value"] == v for i in accepts2)
    # 6. Accepted(b2) reaches the learners
    accepted2 = where(kind="accepted", ballot=b2, status="delivered")
    assert {steps[i]["to"] for i in accepted2} >= learners
    assert all(steps[i]["value"] == v for i in accepted2)
    # 7. every learner's decided mark, with V
    assert {steps[i]["from"] for i in where(kind="decided")} == learners
    assert life["decided"] == {learner: v for learner in learners}
    # ... in that causal order
    assert max(accepts1) < min(prepares)
    for later, earlier in ((promises, prepares), (accepts2, promises),
                           (accepted2, accepts2), (where(kind="decided"), accepted2)):
        assert min(later) > min(earlier)
    # Decided once: the request id's one entry in the log, at S.
    entries = [e for e in cluster.decided() if e.get("request_id") == "kill-me"]
    assert [e["slot"] for e in entries] == [slot], entries
