"""`paxosctl trace` on a real cluster: a proposed slot drawn from the agents'
records read over the data path, found by its request id, and bad input
refused in one line."""

from __future__ import annotations

import json

import clusters


def test_trace_draws_a_proposed_slot_found_by_slot_or_request_id(cluster):
    result = cluster.run_ok("propose", "traced-value", "--request-id", "trace-me", "-o", "json")
    slot = json.loads(result.stdout)["slot"]

    def drawn():
        r = cluster.run("trace", "--request-id", "trace-me", "-o", "json")
        if r.returncode != 0:
            return None
        life = json.loads(r.stdout)
        return life if set(life["decided"]) == set(cluster.learners) else None

    life = clusters.wait_until(drawn, 15, "every learner's decision in the trace")
    assert life["slot"] == slot
    steps = life["steps"]
    leader = next(s["from"] for s in steps if s["kind"] == "accept")
    accepts = [s for s in steps if s["kind"] == "accept" and s["from"] == leader
               and s["status"] == "delivered"]
    value = accepts[0]["value"]
    assert {s["to"] for s in accepts} == set(cluster.acceptors)
    assert all(s["value"] == value and s["slots"] == [slot, slot] for s in accepts)
    first_accept = steps.index(accepts[0])
    accepted = [i for i, s in enumerate(steps) if s["kind"] == "accepted"]
    assert accepted and min(accepted) > first_accept  # causal order: answers after the ask
    decided = [i for i, s in enumerate(steps) if s["kind"] == "decided"]
    assert life["decided"] == {learner: value for learner in cluster.learners}
    assert min(decided) > min(accepted)
    text = cluster.run_ok("trace", str(slot)).stdout
    assert f"DECIDED s{slot} {value}" in text and "Accept " in text


def test_trace_refuses_bad_input_in_one_line(cluster):
    cases = [(("trace", "five"), 2, "SLOT: expected a slot number"),
             (("trace",), 2, "give one of SLOT, --request-id ID or --follow"),
             (("trace", "999999"), 1, "slot 999999 is in no agent's protocol records"),
             (("trace", "--request-id", "never-proposed"), 1, "request id")]
    for args, code, message in cases:
        r = cluster.run(*args)
        assert r.returncode == code, clusters.describe(r)
        lines = r.stderr.strip().splitlines()
        assert len(lines) <= 2 and message in lines[0], r.stderr  # error (+ hint)
        assert "Traceback" not in r.stderr
