"""paxos_agents.trace on hand-built records: causal order against the clocks,
and what went wrong made visible (drops, losses, resends, gaps)."""

from __future__ import annotations

from paxos_agents.trace import Ring, render, slot_life


def rec(agent, seq, dir, kind, peer=None, link=None, at=0.0, inc=1, **extra):
    slots = extra.pop("slots", [5, 5])
    return {"seq": seq, "agent": agent, "incarnation": inc, "dir": dir, "kind": kind,
            "peer": peer, "ballot": extra.pop("ballot", "1.p"), "slots": slots,
            "link": link, "mono": at, "at": at, **extra}


def test_a_receipt_is_drawn_after_its_send_whatever_the_clocks_say():
    # a's clock is 100 s ahead: its receipt is labelled before p's send.
    link = ["p", 1, "a", 1, 1]
    back = ["a", 1, "p", 3, 1]
    records = [
        rec("a", 1, "recv", "accept", "p", link, at=5.0, value="v"),
        rec("a", 2, "send", "accepted", "p", back, at=6.0, value="v"),
        rec("p", 7, "send", "accept", "a", link, at=105.0, value="v"),
        rec("p", 8, "recv", "accepted", "a", back, at=106.0, value="v"),
    ]
    life = slot_life(records, 5)
    assert [(s.kind, s.src, s.dst, s.status) for s in life.steps] == [
        ("accept", "p", "a", "delivered"), ("accepted", "a", "p", "delivered")]


def test_drops_losses_resends_and_missing_sends_are_marked():
    records = [
        rec("p", 1, "send", "accept", "a", ["p", 1, "a", 1, 1], value="v", dropped="chaos"),
        rec("p", 2, "send", "accept", "a", ["p", 1, "a", 1, 2], value="v"),  # resent, lost
        rec("p", 3, "send", "accept", "b", ["p", 1, "b", 1, 1], value="v"),
        rec("b", 4, "recv", "accept", "p", ["p", 1, "b", 1, 1], value="v"),
        rec("b", 5, "recv", "accept", "p", ["p", 1, "b", 1, 1], value="v"),  # duplicated
        rec("c", 9, "recv", "accepted", "q", ["q", 2, "c", 1, 40], at=9.0, value="v"),
    ]
    life = slot_life(records, 5, {"q": Ring(2, first=50, missed=True), "a": Ring(1)})
    got = [(s.src, s.dst, s.status, s.resend, s.duplicates) for s in life.steps]
    assert got == [("p", "a", "dropped", False, 0), ("p", "a", "lost", True, 0),
                   ("p", "b", "delivered", False, 1), ("q", "c", "send-missing", False, 0)]
    assert [(g.agent, g.first) for g in life.gaps] == [("q", 50)]
    text = "\n".join(render(life, 80))
    assert "DROPPED (chaos)" in text and "(resend) LOST" in text and "(send not in ring)" in text
    assert "! q: records of this slot left its ring (it keeps records from seq 50)" in text


def test_phase_one_is_drawn_only_for_the_slots_ballots_or_inside_its_life():
    records = [
        rec("q", 1, "send", "prepare", "a", ["q", 1, "a", 1, 1], ballot="1.q", slots=[0, None]),
        rec("p", 1, "send", "prepare", "a", ["p", 1, "a", 1, 1], ballot="2.p", slots=[0, None]),
        rec("p", 2, "send", "prepare", "a", ["p", 1, "a", 1, 2], ballot="3.p", slots=[9, None]),
        rec("p", 3, "send", "accept", "a", ["p", 1, "a", 1, 3], ballot="2.p", value="v"),
    ]
    life = slot_life(records, 5)
    assert [(s.kind, s.ballot) for s in life.steps] == [("prepare", "2.p"), ("accept", "2.p")]
    assert slot_life(records, 6) is None  # nothing is about slot 6 itself


def test_seven_agents_fit_eighty_columns_and_use_a_wider_terminal():
    agents = [f"proposer-{i}" for i in range(2)] + [f"acceptor-{i}" for i in range(3)] + \
        [f"learner-{i}" for i in range(2)]
    records = [rec("proposer-0", i + 1, "send", "accept", a, ["proposer-0", 1, a, 1, 1],
                   ballot="12.proposer-0", value="9f3a01c2") for i, a in enumerate(agents[2:])]
    life = slot_life(records, 5)
    narrow = render(life, 80, order=agents)
    assert max(map(len, narrow)) <= 80 and "a2=acceptor-2" in narrow[1]
    assert "Accept 12.p0 s5 9f3a01c2 LOST" in "\n".join(narrow)
    wide = render(life, 160, order=agents)
    assert max(map(len, wide)) <= 160 and "acceptor-2" in wide[1]  # full names, no legend
    assert "Accept 12.proposer-0 s5 9f3a01c2 LOST" in "\n".join(wide)


def test_a_message_a_replica_sends_itself_is_paired_with_its_receipt():
    # A replica's proposer to its own acceptor and back: no link, its own order.
    records = [
        rec("r", 1, "send", "accept", "r", value="v"),
        rec("r", 2, "send", "accept", "s", ["r", 1, "s", 1, 1], value="v"),
        rec("r", 3, "recv", "accept", "r", value="v"),
        rec("r", 4, "send", "accepted", "r", value="v"),
        rec("r", 5, "send", "accept", "r", value="v"),  # resent to itself, not yet stepped
        rec("r", 6, "recv", "accepted", "r", value="v"),
    ]
    life = slot_life(records, 5)
    assert [(s.kind, s.src, s.dst, s.status, s.resend) for s in life.steps] == [
        ("accept", "r", "r", "delivered", False), ("accept", "r", "s", "lost", False),
        ("accepted", "r", "r", "delivered", False), ("accept", "r", "r", "lost", True)]
    assert life.steps[0].recv["seq"] == 3 and life.steps[2].recv["seq"] == 6


def test_values_are_named_from_their_ballot_where_the_records_leave_them_out():
    # Agents name a value where it is given (an Accept sent, a promise's
    # votes): the receipts, the Accepteds and the decisions get it from
    # their ballot; a decision from the highest ballot its learner heard.
    old_accept = ["p", 1, "a", 1, 1]  # p's records are gone (killed): only a's receipt
    records = [
        rec("a", 1, "recv", "accept", "p", old_accept, ballot="1.p"),
        rec("a", 2, "send", "accepted", "l", ["a", 1, "l", 1, 1], ballot="1.p"),
        rec("l", 1, "recv", "accepted", "a", ["a", 1, "l", 1, 1], ballot="1.p"),
        rec("a", 3, "recv", "prepare", "q", ["q", 1, "a", 1, 1], ballot="2.q", slots=[0, None]),
        rec("a", 4, "send", "promise", "q", ["a", 1, "q", 1, 1], ballot="2.q", slots=[0, None],
            votes=[[5, "1.p", "old"]]),
        rec("q", 1, "send", "prepare", "a", ["q", 1, "a", 1, 1], ballot="2.q", slots=[0, None]),
        rec("q", 2, "recv", "promise", "a", ["a", 1, "q", 1, 1], ballot="2.q", slots=[0, None],
            votes=[[5, "1.p", "old"]]),
        rec("q", 3, "send", "accept", "a", ["q", 1, "a", 1, 2], ballot="2.q", value="new"),
        rec("a", 5, "recv", "accept", "q", ["q", 1, "a", 1, 2], ballot="2.q"),
        rec("a", 6, "send", "accepted", "l", ["a", 1, "l", 1, 2], ballot="2.q"),
        rec("l", 2, "recv", "accepted", "a", ["a", 1, "l", 1, 2], ballot="2.q"),
        rec("l", 3, "local", "decided", ballot=None),
        rec("m", 1, "local", "decided", ballot=None),  # heard no Accepted: nothing names it
    ]
    life = slot_life(records, 5)
    got = {(s.kind, s.ballot, s.field("value")) for s in life.steps
           if s.kind in ("accept", "accepted")}
    assert got == {("accept", "1.p", "old"), ("accepted", "1.p", "old"),
                   ("accept", "2.q", "new"), ("accepted", "2.q", "new")}
    assert life.decided == {"l": "new", "m": None}
    drawn = render(life, width=120)
    assert drawn[0] == "slot 5: decided ? / new by l, m"
    assert any(line.endswith("Accepted 1.p s5 old") for line in drawn)


def test_a_decision_learned_from_a_decide_or_a_chunk_is_not_named_by_an_older_accepted():
    # l heard one Accepted of the losing ballot 1.p, then the leader's Decide
    # of the value chosen in 2.q; m heard the same Accepted, then copied the
    # slot from a peer (Chunk): the highest Accepted each heard is 1.p's.
    records = [
        rec("p", 1, "send", "accept", "a", ["p", 1, "a", 1, 1], ballot="1.p", value="old"),
        rec("a", 1, "recv", "accept", "p", ["p", 1, "a", 1, 1], ballot="1.p"),
        rec("a", 2, "send", "accepted", "l", ["a", 1, "l", 1, 1], ballot="1.p"),
        rec("l", 1, "recv", "accepted", "a", ["a", 1, "l", 1, 1], ballot="1.p"),
        rec("a", 3, "send", "accepted", "m", ["a", 1, "m", 1, 1], ballot="1.p"),
        rec("m", 1, "recv", "accepted", "a", ["a", 1, "m", 1, 1], ballot="1.p"),
        rec("q", 1, "send", "decide", "l", ["q", 1, "l", 1, 1], ballot=None, value="new"),
        rec("l", 2, "recv", "decide", "q", ["q", 1, "l", 1, 1], ballot=None, value="new"),
        rec("l", 3, "local", "decided", ballot=None),
        rec("n", 1, "send", "chunk", "m", ["n", 1, "m", 1, 1], ballot=None, slots=[0, 9]),
        rec("m", 2, "recv", "chunk", "n", ["n", 1, "m", 1, 1], ballot=None, slots=[0, 9]),
        rec("m", 3, "local", "decided", ballot=None),
    ]
    assert slot_life(records, 5).decided == {"l": "new", "m": None}
