"""Protocol records on a real cluster (issue 25): what the agents record
when a command is proposed, read back over the data path with
paxosctl.observe.records, and the knob that turns them off."""

from __future__ import annotations

import clusters
from paxosctl.observe import records as observe


def _records(cluster, agents=None) -> dict[str, list[dict]]:
    got = observe.collect(cluster.manifest, agents)
    for name, part in got.items():
        assert not part.error, f"{name}: {part.error}"
    return {name: part.records for name, part in got.items()}


def _decided_slot(cluster, value: str) -> int:
    result = cluster.run_ok("propose", value, "-o", "json")
    import json
    return json.loads(result.stdout)["slot"]


def test_a_proposed_slot_is_recorded_by_sender_receivers_and_learners(cluster):
    slot = _decided_slot(cluster, "hello-records")
    learners = cluster.learners

    def decided_everywhere():
        recs = _records(cluster)
        if all(any(r["kind"] == "decided" and r["slots"] == [slot, slot] for r in recs[n])
               for n in learners):
            return recs
        return None

    recs = clusters.wait_until(decided_everywhere, 10, f"every learner's decided record of {slot}")
    sends = [r for n in cluster.proposers for r in recs[n]
             if r["dir"] == "send" and r["kind"] == "accept" and r["slots"] == [slot, slot]
             and not r.get("dropped")]
    assert sends, "no proposer recorded sending an Accept of the slot"
    value = sends[0]["value"]
    assert {s["value"] for s in sends} == {value}
    for send in sends:
        assert send["link"][:3] == [send["agent"], send["incarnation"], send["peer"]]
        receiver = send["peer"]
        recvs = [r for r in recs[receiver] if r["dir"] == "recv" and r["kind"] == "accept"
                 and r["link"] == send["link"]]
        assert len(recvs) == 1, f"{receiver} has no recv record with the link {send['link']}"
        assert recvs[0]["slots"] == [slot, slot] and recvs[0]["value"] == value
        assert recvs[0]["ballot"] == send["ballot"] and recvs[0]["peer"] == send["agent"]
    assert {r["agent"] for r in sends} == {sends[0]["agent"]}  # one leader sent them
    assert {s["peer"] for s in sends} == set(cluster.acceptors)
    for learner in learners:
        decided = [r for r in recs[learner] if r["kind"] == "decided"
                   and r["slots"] == [slot, slot]]
        assert decided[0]["value"] == value and decided[0]["dir"] == "local"
        assert decided[0]["link"] is None and decided[0]["peer"] is None
        assert decided[0]["commands"] == 1


def test_records_off_the_op_answers_no_items(make_cluster):
    cluster = make_cluster("roles", paxos={"protocol_records": 0})
    _decided_slot(cluster, "not-recorded")
    got = observe.collect(cluster.manifest)
    assert set(got) == set(cluster.agent_names)
    for name, part in got.items():
        assert not part.error, f"{name}: {part.error}"
        assert part.records == [] and part.last == 0 and part.incarnation is not None
