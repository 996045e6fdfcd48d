"""The protocol records' ring on its own (runtime/protocolrecords.py): rows
written in place, read back as the dicts `paxosctl trace` reads, and the
rules that let a copy of a value skip its hash. The live paths (the
transport's sends, the agent's receipts, INFO "protocol") are in
tests/observe."""

from __future__ import annotations

from paxos_agents.core.commands import Command, Value
from paxos_agents.core.ids import Ballot
from paxos_agents.core.messages import Accept, Accepted, Heartbeat, Nack, Promise, Vote
from paxos_agents.runtime import protocolrecords
from paxos_agents.runtime.protocolrecords import RECV, SEND, ProtocolRecords
from paxos_agents.trace import records

OLD, NEW = Ballot(2, "p0"), Ballot(3, "p1")
V = Value.of([Command("r1", b"x" * 16)])
W = Value.of([Command("r2", b"y" * 16)])  # the same length as V


def crc(value: Value) -> str:
    return records.digest(value)


def accept(ballot: Ballot, value: Value, slot: int = 4) -> Accept:
    return Accept(src=ballot.node_id, dst="a0", ballot=ballot, slot=slot, value=value)


def accepted(ballot: Ballot, value: Value, slot: int = 4, dst: str = "l0") -> Accepted:
    return Accepted(src="a0", dst=dst, ballot=ballot, slot=slot, value=value)


def test_rows_read_back_as_the_records_a_tool_reads():
    ring = ProtocolRecords("a0", 3, size=10)
    ring.now = 100.0
    ring.record(RECV, accept(OLD, V), "p0", 7, 2, 9)
    ring.record(SEND, accepted(OLD, V, dst="p0"), "p0", 0, 1, 11)
    ring.record(SEND, accepted(OLD, V), "l0", dropped="chaos")
    ring.record(SEND, Promise(src="a0", dst="p1", ballot=NEW, first_slot=0,
                              votes=(Vote(slot=4, ballot=OLD, value=V),)), "p1", 0, 1, 1)
    ring.record(SEND, Nack(src="a0", dst="p1", ballot=OLD, promised=NEW), "p1", 0, 1, 2)
    ring.decided(4)
    ring.record(SEND, accept(NEW, W), "a1", 0, 1, 3)
    page = ring.since(0, 10)
    assert (page.first, page.last, page.missed) == (1, 7, False)
    got = page.items
    # A value is named where it is first given (trace.records): not on a receipt...
    assert got[0] == {"seq": 1, "agent": "a0", "incarnation": 3, "dir": "recv",
                      "kind": "accept", "peer": "p0", "ballot": "2.p0", "slots": [4, 4],
                      "link": ["p0", 7, "a0", 2, 9], "mono": 100.0, "at": got[0]["at"]}
    assert got[1]["link"] == ["a0", 3, "p0", 1, 11] and "value" not in got[1]
    assert got[2]["dropped"] == "chaos" and got[2]["link"] is None
    assert got[3]["votes"] == [[4, "2.p0", crc(V)]] and got[3]["slots"] == [0, None]
    assert got[4]["promised"] == "3.p1" and got[4]["slots"] is None
    assert (got[5]["dir"], got[5]["kind"], got[5]["peer"], got[5]["ballot"],
            got[5]["slots"]) == ("local", "decided", None, None, [4, 4])
    assert "value" not in got[5]
    # ... but on an Accept sent, with the value's commands.
    assert (got[6]["value"], got[6]["commands"], got[6]["ballot"]) == (crc(W), 1, "3.p1")


def test_the_ring_keeps_the_newest_and_says_what_left():
    ring = ProtocolRecords("a0", 1, size=3)
    beat = Heartbeat(src="a0", dst="p0", ballot=OLD, highest_slot=1, decided_up_to=1)
    for n in range(1, 8):
        ring.record(SEND, beat, "p0", 0, 1, n)
    assert len(ring._rows) == 3 * protocolrecords.ROW.size  # one buffer, never regrown
    page = ring.since(0, 10)
    assert (page.first, page.last, page.missed) == (5, 7, True)
    assert [(r["seq"], r["link"][4]) for r in page.items] == [(5, 5), (6, 6), (7, 7)]
    assert ring.since(5, 1).items[0]["seq"] == 6 and not ring.since(5, 1).missed
    assert ring.since(9, 10).items == [] and ring.since(9, 10).last == 7  # a restarted reader


def test_a_promise_after_its_row_left_the_ring_leaves_no_votes_behind():
    ring = ProtocolRecords("a0", 1, size=2)
    ring.record(SEND, Nack(src="a0", dst="p1", ballot=OLD, promised=NEW), "p1", 0, 1, 1)
    for n in range(2, 6):
        ring.record(SEND, Nack(src="a0", dst="p1", ballot=OLD, promised=NEW), "p1", 0, 1, n)
    assert len(ring._extras) <= ring.size  # pruned as the ring turns


def test_an_accepts_copies_are_hashed_once(monkeypatch):
    hashed = []
    real = records.value_digest
    monkeypatch.setattr(records, "value_digest",
                        lambda slot, value: hashed.append(slot) or real(slot, value))
    ring = ProtocolRecords("p1", 1, size=10)
    for acceptor in ("a0", "a1", "a2"):  # one value object, sent to every acceptor
        ring.record(SEND, Accept(src="p1", dst=acceptor, ballot=NEW, slot=4, value=W), acceptor,
                    0, 1, 1)
    ring.record(SEND, Accept(src="p1", dst="a0", ballot=NEW, slot=5, value=V), "a0", 0, 1, 2)
    ring.record(RECV, accepted(NEW, W, dst="p1"), "a0", 1)
    assert hashed == [4, 5]
    assert [r.get("value") for r in ring.since(0, 10).items] == [crc(W)] * 3 + [crc(V), None]


def test_names_past_the_table_are_recorded_as_unknown(monkeypatch):
    monkeypatch.setattr(protocolrecords, "NAMES", 2)
    ring = ProtocolRecords("a0", 1, size=10)
    for peer in ("p0", "p1", "p2"):
        ring.record(SEND, Nack(src="a0", dst=peer, ballot=OLD, promised=NEW), peer, 0, 1, 1)
    # p0 (and its ballot's node, p0 too) and p1 fill the table; p2 is past it.
    assert [r["peer"] for r in ring.since(0, 10).items] == ["p0", "p1", "?"]


def test_a_ring_of_size_0_is_off():
    ring = ProtocolRecords("a0", 1, size=0)
    assert ring.active is None
    assert ring.since(0, 10).items == []
