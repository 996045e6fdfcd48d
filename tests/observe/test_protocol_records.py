"""Protocol records on a real cluster (issue 25): what the agents record
when a command is proposed, read back over the data path with
paxosctl.observe.records, and the knob that turns them off."""

from __future__ import annotations

import json
import socket
import time

import pytest

import clusters
from paxos_agents.core.ids import Ballot
from paxos_agents.core.messages import Heartbeat
from paxos_agents.runtime import frames
from paxos_agents.runtime.codec import encode
from paxos_agents.runtime.handshake import PROTOCOL
from paxos_agents.runtime.records import PAGE
from paxos_agents.trace import slot_life
from paxosctl.client.probe import survey
from paxosctl.observe import records as observe


def _records(cluster, agents=None) -> dict[str, list[dict]]:
    got = observe.collect(cluster.manifest, agents)
    for name, part in got.items():
        assert not part.error, f"{name}: {part.error}"
    return {name: part.records for name, part in got.items()}


def _decided_slot(cluster, value: str) -> int:
    result = cluster.run_ok("propose", value, "-o", "json")
    return json.loads(result.stdout)["slot"]


@pytest.mark.parametrize("transport", ["unix", "tls"])
def test_a_proposed_slot_is_recorded_by_sender_receivers_and_learners(make_cluster, transport):
    """Over Unix sockets, and over TCP + mutual TLS (read as across hosts)."""
    cluster = make_cluster("roles", transport=transport)
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
        # A value is named where it is sent (trace.records), not on its receipt.
        assert recvs[0]["slots"] == [slot, slot] and "value" not in recvs[0]
        assert recvs[0]["ballot"] == send["ballot"] and recvs[0]["peer"] == send["agent"]
    assert {r["agent"] for r in sends} == {sends[0]["agent"]}  # one leader sent them
    # To every acceptor the leader could reach, at least a majority: one whose
    # link was not up yet gets it when the leader resends, which a slot the
    # other two decided never needs.
    peers = {s["peer"] for s in sends}
    assert peers <= set(cluster.acceptors) and len(peers) * 2 > len(cluster.acceptors), peers
    for learner in learners:
        decided = [r for r in recs[learner] if r["kind"] == "decided"
                   and r["slots"] == [slot, slot]]
        assert "value" not in decided[0] and decided[0]["dir"] == "local"
        assert decided[0]["link"] is None and decided[0]["peer"] is None
    # The trace names each learner's decision from its ballot: the value sent.
    life = slot_life([r for part in recs.values() for r in part], slot)
    assert life.decided == {learner: value for learner in learners}


def test_records_off_the_op_answers_no_items(make_cluster):
    cluster = make_cluster("roles", paxos={"protocol_records": 0})
    _decided_slot(cluster, "not-recorded")
    got = observe.collect(cluster.manifest)
    assert set(got) == set(cluster.agent_names)
    for name, part in got.items():
        assert not part.error, f"{name}: {part.error}"
        assert part.records == [] and part.last == 0 and part.incarnation is not None


def test_the_ring_is_bounded_and_paging_says_what_was_missed(make_cluster):
    # Leader heartbeats every tick fill a small ring within seconds.
    cluster = make_cluster("roles", paxos={"protocol_records": 1200, "heartbeat": "10ms"})
    newest = lambda: {n: p.last for n, p in  # noqa: E731
                      observe.collect(cluster.manifest, cluster.proposers, 1 << 62).items()}
    leader = clusters.wait_until(
        lambda: next((n for n, last in newest().items() if last > 1500), None), 30,
        "a proposer with more records than its ring holds")
    endpoints = observe.endpoints_of(cluster.manifest)

    [answer] = survey(endpoints, (leader,), {"op": "protocol", "since": 0}, learn=False)
    reply = answer.reply
    assert answer.answered, answer.error
    assert len(reply["items"]) == PAGE and reply["missed"] is True
    assert reply["first"] > 1 and reply["items"][0]["seq"] == reply["first"]
    assert reply["last"] == reply["items"][-1]["seq"]
    assert [r["seq"] for r in reply["items"]] == list(range(reply["first"], reply["last"] + 1))

    part = observe.collect(endpoints, [leader], 0)[leader]
    seqs = [r["seq"] for r in part.records]
    assert part.missed and len(seqs) > 2 * PAGE  # paged: more than two pages came back
    assert seqs == list(range(seqs[0], seqs[-1] + 1)), "paging skipped or repeated records"
    assert seqs[-1] - part.first < 1200  # never more than the ring holds

    [past] = survey(endpoints, (leader,), {"op": "protocol", "since": 1 << 62}, learn=False)
    assert past.reply["items"] == [] and past.reply["missed"] is False
    [bad] = survey(endpoints, (leader,), {"op": "protocol", "since": -1}, learn=False)
    assert "bad_request" in bad.error and "since" in bad.error


def _frame(body: bytes) -> bytes:
    return frames.LENGTH.pack(len(body)) + body


def _read_frame(sock: socket.socket, deadline: float) -> bytes:
    data = b""
    while len(data) < 4 or len(data) < 4 + frames.LENGTH.unpack(data[:4])[0]:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        assert chunk, "the agent closed the connection"
        data += chunk
    return data[4:4 + frames.LENGTH.unpack(data[:4])[0]]


@pytest.mark.parametrize("extra, generation", [
    ({}, 0),                                  # an older agent: no generation
    ({"generation": 7, "later_field": 3}, 7),  # a newer one: fields this one does not know
], ids=["older", "newer"])
def test_hellos_of_older_and_newer_agents_are_welcomed(cluster, extra, generation):
    """An agent of an older version sends no "generation": it is welcomed,
    and what it sends is recorded with generation 0 and its frame numbers.
    A HELLO with a scalar field this version does not know is welcomed too
    (how an older agent takes this version's "generation")."""
    endpoints = observe.endpoints_of(cluster.manifest)
    acceptor, impostor = cluster.acceptors[0], cluster.proposers[1]
    old_hello = json.dumps({"paxos": PROTOCOL, "cluster": endpoints.cluster_id,
                            "from": impostor, "incarnation": 1 << 40,
                            "to": acceptor, **extra}).encode()
    beat = encode(Heartbeat(src=impostor, dst=acceptor, ballot=Ballot(0, impostor),
                            highest_slot=-1, decided_up_to=-1))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(endpoints.socket(acceptor))
        sock.sendall(_frame(old_hello))
        answer = _read_frame(sock, time.monotonic() + 10)
        assert answer[:1] == frames.WELCOME, answer[:200]
        sock.sendall(_frame(beat) + _frame(beat))

        def recorded():
            recs = observe.collect(endpoints, [acceptor])[acceptor].records
            got = [r for r in recs if r["dir"] == "recv" and r["peer"] == impostor
                   and r["link"][1] == 1 << 40]
            return got if len(got) == 2 else None

        got = clusters.wait_until(recorded, 10, "the acceptor's recv records of the old peer")
    assert [r["link"] for r in got] == [[impostor, 1 << 40, acceptor, generation, 1],
                                        [impostor, 1 << 40, acceptor, generation, 2]]
    assert {r["kind"] for r in got} == {"heartbeat"} and got[0]["ballot"] == f"0.{impostor}"


def test_sends_chaos_dropped_or_duplicated_are_recorded_as_such(cluster):
    cut = cluster.acceptors[0]
    cluster.run_ok("chaos", "--partition", cut, "--duplicate", "1")
    slot = _decided_slot(cluster, "through-chaos")

    def accepts():
        recs = _records(cluster)
        sends = [r for n in cluster.proposers for r in recs[n] if r["dir"] == "send"
                 and r["kind"] == "accept" and r["slots"] == [slot, slot]]
        return (recs, sends) if {s["peer"] for s in sends} == set(cluster.acceptors) else None

    recs, sends = clusters.wait_until(accepts, 10, f"the Accepts of slot {slot} recorded")
    to_cut = [s for s in sends if s["peer"] == cut]
    assert to_cut and all(s["dropped"] == "chaos" and s["link"] is None for s in to_cut)
    assert not [r for r in recs[cut] if r["dir"] == "recv" and r["slots"] == [slot, slot]]
    for acceptor in cluster.acceptors[1:]:
        # Each copy of a duplicated frame is a frame of its own, recorded once on each end.
        copies = [s for s in sends if s["peer"] == acceptor]
        assert len(copies) >= 2 and not any(s.get("dropped") for s in copies)
        links = [s["link"] for s in copies]
        assert len({tuple(link) for link in links}) == len(links)
        got = [r["link"] for r in recs[acceptor] if r["dir"] == "recv" and r["kind"] == "accept"
               and r["slots"] == [slot, slot]]
        assert sorted(got) == sorted(links)


def test_follow_streams_new_records_and_starts_over_after_a_restart(cluster):
    learner = cluster.learners[0]
    seen: list[dict] = []
    deadline = time.monotonic() + 30
    stream = observe.follow(cluster.manifest, [learner], interval=0.1,
                            stop=lambda: time.monotonic() > deadline)
    incarnation = observe.collect(cluster.manifest, [learner])[learner].incarnation
    slot = _decided_slot(cluster, "followed")
    for record in stream:
        seen.append(record)
        if record["kind"] == "decided" and record["slots"] == [slot, slot]:
            break
    else:
        raise AssertionError(f"follow gave no decided record of slot {slot} within 30 s")
    assert {r["incarnation"] for r in seen} == {incarnation}
    assert [r["seq"] for r in seen] == sorted(r["seq"] for r in seen)  # nothing twice
    assert seen[0]["seq"] > 1  # only what came after it started

    cluster.run_ok("kill", learner)
    for record in stream:
        if record["incarnation"] != incarnation:
            assert record["seq"] == 1, "a restarted agent is read from its first record"
            break
    else:
        raise AssertionError(f"follow gave no record of {learner}'s next incarnation")


def test_a_replica_records_the_messages_it_sends_itself(make_cluster):
    cluster = make_cluster("replicas")
    slot = _decided_slot(cluster, "to-myself")

    def accepts():
        recs = _records(cluster)
        mine = [(n, r) for n in cluster.agent_names for r in recs[n] if r["peer"] == n
                and r["kind"] == "accept" and r["slots"] == [slot, slot]]
        return mine if len(mine) >= 2 else None

    mine = clusters.wait_until(accepts, 10, f"a replica's Accept to itself of slot {slot}")
    [leader] = {n for n, _ in mine}
    assert [r["dir"] for _, r in mine][:2] == ["send", "recv"]
    assert all(r["link"] is None and r["agent"] == leader for _, r in mine)
