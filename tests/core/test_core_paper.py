"""The rules of Paxos Made Simple (Lamport, 2001), one table test per rule.

Each test drives the pure core (`Node.step` / `propose` / `tick`, then
`ready()`) by hand: no network, no clock, no randomness beyond a seeded
`random.Random`. Section numbers refer to the paper.
"""

from __future__ import annotations

import random

import pytest

from paxos_agents.core import (
    NOOP,
    ZERO_BALLOT,
    Accept,
    Accepted,
    Applied,
    Ballot,
    Command,
    Decide,
    LogEntry,
    Membership,
    Nack,
    Node,
    Phase,
    Prepare,
    Promise,
    Ready,
    Record,
    Settings,
    Value,
    Vote,
)

MEMBERS = Membership(proposers=("p1", "p2"), acceptors=("a1", "a2", "a3"), learners=("l1", "l2"))

X = Value.of([Command("rx", b"x")])
Y = Value.of([Command("ry", b"y")])
Z = Value.of([Command("rz", b"z")])


def B(round_: int, node: str = "p1") -> Ballot:
    return Ballot(round_, node)


def acceptor(record: Record | None = None) -> Node:
    return Node("a1", MEMBERS, Settings(), record or Record(), random.Random(0))


def acceptor_promised(ballot: Ballot, votes: dict[int, Vote] | None = None) -> Node:
    """An acceptor rebuilt from a record that promised `ballot` (and holds `votes`)."""
    return acceptor(Record(promised=ballot, votes=dict(votes or {})))


def prepare(ballot: Ballot, first_slot: int = 0, src: str = "p1") -> Prepare:
    return Prepare(src=src, dst="a1", ballot=ballot, first_slot=first_slot)


def accept(ballot: Ballot, slot: int = 0, value=X, src: str = "p1") -> Accept:
    return Accept(src=src, dst="a1", ballot=ballot, slot=slot, value=value)


def step(node: Node, msg) -> Ready:
    node.step(msg)
    return node.ready()


def messages(ready: Ready, kind: type) -> list:
    return [m for m in (*ready.send_after_persist, *ready.send) if isinstance(m, kind)]


# ------------------------------------------------------------------ acceptor


PREPARE_CASES = [
    # (promised before, incoming prepare ballot, promised after it, answered with)
    (ZERO_BALLOT, B(1), B(1), Promise),
    (B(2), B(3), B(3), Promise),
    (B(2, "p1"), B(2, "p2"), B(2, "p2"), Promise),  # same round, higher node id
    (B(2), B(2), B(2), Nack),  # equal: not strictly higher
    (B(2), B(1), B(2), Nack),  # lower round
    (B(2, "p2"), B(2, "p1"), B(2, "p2"), Nack),  # same round, lower node id
]


# Paxos Made Simple §2.2, P1a / phase 1(b): an acceptor promises a prepare request
# numbered n only if n is greater than that of any prepare request it has
# already responded to. The Nack (§2.3's "inform the proposer") carries the promise.
@pytest.mark.parametrize(
    "before,incoming,after,answer",
    PREPARE_CASES,
    ids=["fresh-promises", "higher-round-promises", "higher-node-promises",
         "equal-nacked", "lower-round-nacked", "lower-node-nacked"],
)
def test_acceptor_promises_only_strictly_higher_ballot(before, incoming, after, answer):
    node = acceptor_promised(before)
    ready = step(node, prepare(incoming))
    (reply,) = messages(ready, (Promise, Nack))
    assert type(reply) is answer
    assert reply.ballot == incoming
    assert node.acceptor.promised == after
    if answer is Nack:
        assert reply.promised == before
        assert node.acceptor.prepares_rejected == 1


ACCEPT_CASES = [
    # (promised before, accept ballot, accepted?, promise after)
    (ZERO_BALLOT, B(1), True, B(1)),  # no promise yet: accept, promise raised to it
    (B(2), B(2), True, B(2)),  # equal to the promise
    (B(2), B(3), True, B(3)),  # above the promise: raises it
    (B(2, "p1"), B(2, "p2"), True, B(2, "p2")),
    (B(2), B(1), False, B(2)),  # below the promise
    (B(2, "p2"), B(2, "p1"), False, B(2, "p2")),
]


# Paxos Made Simple §2.2, P1a / phase 2(b): an acceptor accepts a proposal numbered n
# unless it has responded to a prepare request having a number greater than n.
# Accepting n also means never accepting (or promising) anything below n again.
@pytest.mark.parametrize(
    "before,ballot,accepted,after",
    ACCEPT_CASES,
    ids=["fresh-accepts", "equal-accepts", "higher-accepts-raises-promise",
         "higher-node-accepts-raises-promise", "lower-nacked", "lower-node-nacked"],
)
def test_acceptor_accepts_at_or_above_promise_and_raises_it(before, ballot, accepted, after):
    node = acceptor_promised(before)
    ready = step(node, accept(ballot, slot=4, value=Y))
    assert node.acceptor.promised == after
    if accepted:
        assert node.acceptor.vote_at(4) == Vote(4, ballot, Y)
        assert not messages(ready, Nack)
        # To the proposer and to every learner.
        assert {m.dst for m in messages(ready, Accepted)} == {"p1", "l1", "l2"}
        assert all((m.ballot, m.slot, m.value) == (ballot, 4, Y) for m in messages(ready, Accepted))
        # A promise raised by an Accept is durable like one raised by a Prepare.
        assert ready.persist.promised == (ballot if ballot > before else None)
    else:
        (nack,) = messages(ready, Nack)
        assert (nack.ballot, nack.promised, nack.dst) == (ballot, before, "p1")
        assert node.acceptor.vote_at(4) is None
        assert not messages(ready, Accepted)
        assert node.acceptor.accepts_rejected == 1


VOTES = {
    0: Vote(0, B(1), X),
    1: Vote(1, B(2), Y),
    2: Vote(2, B(1), Z),
    5: Vote(5, B(3), X),
}


# Paxos Made Simple §3 (Multi-Paxos) with §2.2 phase 1(b): one Prepare covers every
# slot >= first_slot, and the Promise reports the acceptor's vote in each of those
# slots (the highest-numbered proposal it accepted there), and no other.
@pytest.mark.parametrize(
    "first_slot,slots",
    [(0, [0, 1, 2, 5]), (2, [2, 5]), (3, [5]), (5, [5]), (6, [])],
    ids=["from-0-all", "from-2", "from-hole-3", "from-last", "past-end-none"],
)
def test_promise_carries_votes_from_first_slot_only(first_slot, slots):
    node = acceptor_promised(B(3), VOTES)
    ready = step(node, prepare(B(4), first_slot=first_slot))
    (promise,) = messages(ready, Promise)
    assert promise.first_slot == first_slot
    assert promise.votes == tuple(VOTES[s] for s in slots)


# Paxos Made Simple §2.5: an acceptor records its intended response in stable
# storage before sending it. Promise and Accepted wait for the persist; a Nack
# changes nothing durable and may go at once.
@pytest.mark.parametrize(
    "msg,reply_kind,durable",
    [
        (prepare(B(5)), Promise, {"promised": B(5)}),
        (accept(B(4), slot=7, value=Z), Accepted, {"votes": (Vote(7, B(4), Z),)}),
        (accept(B(5), slot=7, value=Z), Accepted,
         {"promised": B(5), "votes": (Vote(7, B(5), Z),)}),
        (prepare(B(3)), Nack, {}),
        (accept(B(3), slot=7, value=Z), Nack, {}),
    ],
    ids=["promise-after-persisting-promise", "accepted-after-persisting-vote",
         "accepted-above-promise-persists-both", "prepare-nack-sent-now-nothing-persisted",
         "accept-nack-sent-now-nothing-persisted"],
)
def test_replies_wait_for_their_durable_change(msg, reply_kind, durable):
    node = acceptor_promised(B(4))
    ready = step(node, msg)
    if reply_kind is Nack:
        assert not ready.persist
        assert not ready.send_after_persist
        assert [type(m) for m in ready.send] == [Nack]
    else:
        assert not ready.send  # nothing may overtake the persist
        assert ready.send_after_persist
        assert all(type(m) is reply_kind for m in ready.send_after_persist)
        assert ready.persist.promised == durable.get("promised")
        assert ready.persist.votes == durable.get("votes", ())
        assert not ready.persist.decisions and ready.persist.round is None


# Paxos Made Simple §2.3: messages can be lost, so a proposer may send the same
# Accept again; the acceptor answers it again (and has nothing new to persist).
@pytest.mark.parametrize("times", [2, 3], ids=["twice", "three-times"])
def test_duplicate_accept_is_answered_again(times):
    node = acceptor()
    first = step(node, accept(B(1), slot=2, value=X))
    assert first.persist.votes == (Vote(2, B(1), X),)
    for _ in range(times - 1):
        again = step(node, accept(B(1), slot=2, value=X))
        assert {m.dst for m in messages(again, Accepted)} == {"p1", "l1", "l2"}
        assert not again.persist  # the vote is already durable
        assert again.send_after_persist == first.send_after_persist


# Paxos Made Simple §2.2 (footnote on proposal numbers) and §2.3: proposal numbers
# must be totally ordered and distinct per proposer; here (round, node_id) tuples.
@pytest.mark.parametrize(
    "low,high",
    [
        (Ballot(1, "p9"), Ballot(2, "p1")),  # the round decides first
        (Ballot(3, "p1"), Ballot(3, "p2")),  # then the node id breaks the tie
        (ZERO_BALLOT, Ballot(1, "")),  # ZERO is below every real ballot
        (ZERO_BALLOT, Ballot(0, "p1")),
        (Ballot(9, "zz"), Ballot(10, "a")),  # numeric, not lexicographic, rounds
    ],
    ids=["round-first", "node-id-tiebreak", "zero-below-round-1", "zero-below-round-0-node",
         "rounds-numeric"],
)
def test_ballots_order_as_round_node_tuples(low, high):
    assert low < high and high > low and low != high
    assert (low.round, low.node_id) < (high.round, high.node_id)
    assert sorted([high, low]) == [low, high]
    assert Ballot(low.round, low.node_id) == low  # value equality, usable as a key


# ------------------------------------------------------------------ proposer


def candidate(record: Record | None = None, node_id: str = "p1") -> tuple[Node, Ready]:
    """A proposer ticked until it starts phase 1; returns it and the Ready with its Prepares."""
    node = Node(node_id, MEMBERS, Settings(), record or Record(), random.Random(7))
    for _ in range(100):
        node.tick()
        ready = node.ready()
        if messages(ready, Prepare):
            return node, ready
    raise AssertionError("proposer never ran for leader")


def promise(node: Node, src: str, *votes: Vote, first_slot: int = 0) -> Promise:
    return Promise(src=src, dst=node.node_id, ballot=node.proposer.ballot,
                   first_slot=first_slot, votes=tuple(votes))


# Paxos Made Simple §2.5: a proposer remembers the highest-numbered proposal it
# has tried to issue, in stable storage, so it never reuses a number after a crash.
@pytest.mark.parametrize("persisted_round", [0, 1, 41], ids=["fresh", "after-round-1", "after-round-41"])
def test_proposer_persists_round_before_prepare(persisted_round):
    node, ready = candidate(Record(round=persisted_round))
    ballot = Ballot(persisted_round + 1, "p1")
    assert node.proposer.ballot == ballot
    assert ready.persist.round == persisted_round + 1
    prepares = messages(ready, Prepare)
    assert {m.dst for m in prepares} == {"a1", "a2", "a3"}
    assert all(m.ballot == ballot for m in prepares)
    # All of them wait for the round to be durable.
    assert prepares == [m for m in ready.send_after_persist if isinstance(m, Prepare)]
    assert not any(isinstance(m, Prepare) for m in ready.send)


def cmd(name: str) -> Value:
    return Value.of([Command(f"r{name}", name.encode())])


P2C_CASES = [
    # promises from a1 and a2: {acceptor: votes}, expected Accept value per slot
    ({"a1": (), "a2": ()}, {}),
    ({"a1": (Vote(0, B(1, "p2"), X),), "a2": ()}, {0: X}),
    ({"a1": (Vote(0, B(1, "p2"), X),), "a2": (Vote(0, B(2, "p2"), Y),)}, {0: Y}),
    ({"a1": (Vote(0, B(3, "p2"), X),), "a2": (Vote(0, B(2, "p2"), Y),)}, {0: X}),
    ({"a1": (Vote(0, B(1, "p1"), X),), "a2": (Vote(0, B(1, "p2"), Y),)}, {0: Y}),
    ({"a1": (Vote(2, B(1, "p2"), Z),), "a2": ()}, {0: NOOP, 1: NOOP, 2: Z}),
    ({"a1": (Vote(0, B(1, "p2"), X), Vote(3, B(1, "p2"), Z)),
      "a2": (Vote(1, B(2, "p2"), Y),)}, {0: X, 1: Y, 2: NOOP, 3: Z}),
]


# Paxos Made Simple §2.2, P2c, and §3: with promises from a majority, the leader
# proposes in each slot the value of the highest-numbered proposal any of them
# reported; a slot below the highest reported one that nobody reported is a hole
# and gets a no-op (an empty batch, never None); above that the slots are free.
@pytest.mark.parametrize(
    "votes,expected",
    P2C_CASES,
    ids=["nothing-reported-nothing-proposed", "single-vote-reproposed",
         "higher-round-wins", "higher-round-wins-regardless-of-order",
         "node-id-breaks-round-tie", "holes-filled-with-noops", "mixed-slots-and-hole"],
)
def test_proposer_reproposes_highest_ballot_value_and_noops_holes(votes, expected):
    node, _ = candidate()
    for src, vs in votes.items():
        node.step(promise(node, src, *vs))
    assert node.is_leader
    ready = node.ready()
    accepts = messages(ready, Accept)
    proposed: dict[int, set] = {}
    for m in accepts:
        assert m.ballot == node.proposer.ballot
        assert m.value is not None and isinstance(m.value, Value)
        proposed.setdefault(m.slot, set()).add(m.value)
    assert proposed == {slot: {value} for slot, value in expected.items()}
    for slot in expected:  # to every acceptor
        assert {m.dst for m in accepts if m.slot == slot} == {"a1", "a2", "a3"}
    assert node.proposer.pipeline.next_slot == max(expected, default=-1) + 1


# Paxos Made Simple §2.2, phase 2(a): a proposer needs responses from a MAJORITY.
@pytest.mark.parametrize(
    "promisers,leads",
    [(("a1",), False), (("a1", "a1"), False), (("a1", "a2"), True), (("a3", "a1", "a2"), True)],
    ids=["one-of-three", "same-acceptor-twice", "two-of-three", "all-three"],
)
def test_proposer_leads_only_with_a_majority_of_promises(promisers, leads):
    node, _ = candidate()
    for src in promisers:
        node.step(promise(node, src))
    assert node.is_leader is leads
    assert node.proposer.phase is (Phase.LEADER if leads else Phase.CANDIDATE)


# ------------------------------------------------------------------- learner


def learner() -> Node:
    return Node("l1", MEMBERS, Settings(), Record(), random.Random(0))


def accepted(src: str, ballot: Ballot, value=X, slot: int = 0) -> Accepted:
    return Accepted(src=src, dst="l1", ballot=ballot, slot=slot, value=value)


LEARN_CASES = [
    ([accepted("a1", B(1)), accepted("a2", B(1))], X),
    ([accepted("a1", B(1)), accepted("a2", B(2)), accepted("a3", B(3))], None),
    ([accepted("a1", B(1), X), accepted("a2", B(2), Y), accepted("a3", B(3), Z)], None),
    ([accepted("a1", B(1)), accepted("a1", B(1))], None),
    ([accepted("a1", B(1)), accepted("a1", B(2))], None),
    ([accepted("a1", B(1, "p1"), X), accepted("a2", B(1, "p2"), X)], None),
    ([accepted("a1", B(1), X), accepted("a2", B(2), Y), accepted("a3", B(2), Y)], Y),
    ([accepted("a1", B(1), X)], None),
]


# Paxos Made Simple §2.3: a value is chosen when a majority of acceptors accepted
# it IN ONE PROPOSAL (one ballot). Votes spread over ballots choose nothing, even
# when they carry the same value.
@pytest.mark.parametrize(
    "votes,decided",
    LEARN_CASES,
    ids=["majority-one-ballot-decides", "three-ballots-same-value-nothing",
         "three-ballots-three-values-nothing", "same-acceptor-twice-nothing",
         "same-acceptor-two-ballots-nothing", "same-round-different-proposers-nothing",
         "later-ballot-majority-decides", "minority-nothing"],
)
def test_learner_decides_only_with_majority_in_one_ballot(votes, decided):
    node = learner()
    for m in votes:
        node.step(m)
    ready = node.ready()
    if decided is None:
        assert 0 not in node.learner.decided
        assert not ready.persist.decisions
    else:
        assert node.learner.decided[0] == decided
        assert ready.persist.decisions == ((0, decided),)


C1, C2, C3 = Command("r1", b"one"), Command("r2", b"two"), Command("r3", b"three")


# Paxos Made Simple §3: the state machine executes the chosen commands in slot
# order. A command decided twice (a client retry, a re-proposal after a leader
# change) is executed once; the later slot reports where it was first decided.
@pytest.mark.parametrize(
    "order",
    [(0, 1, 2), (2, 1, 0), (1, 0, 2)],
    ids=["in-order", "reverse-order", "first-slot-late"],
)
def test_learner_applies_request_id_once_and_reports_first_slot(order):
    values = {0: Value.of([C1]), 1: Value.of([C2, C1]), 2: Value.of([C1, C3])}
    node = learner()
    applied: list[Applied] = []
    for slot in order:
        node.step(Decide(src="p1", dst="l1", slot=slot, value=values[slot]))
        applied += [a for s in node.ready().applied for a in s.commands()]
    assert applied == [
        Applied(0, C1, 0),
        Applied(1, C2, 1),
        Applied(1, C1, 0),
        Applied(2, C1, 0),
        Applied(2, C3, 2),
    ]
    assert [a.duplicate for a in applied] == [False, False, True, True, False]
    assert [e.request_id for e in node.learner.log] == ["r1", "r2", "r3"]
    assert node.learner.first_slot == {"r1": 0, "r2": 1, "r3": 2}


# Paxos Made Simple §3: commands are executed in slot order, a gap stops
# execution until it is filled (with a command or a no-op).
@pytest.mark.parametrize(
    "decisions,log,up_to",
    [
        ([], [], -1),
        ([(1, Value.of([C1]))], [], -1),
        ([(0, Value.of([C1, C2]))], [LogEntry(0, b"one", "r1", False), LogEntry(0, b"two", "r2", False)], 0),
        ([(0, NOOP), (1, Value.of([C3]))], [LogEntry(0, None, None, True), LogEntry(1, b"three", "r3", False)], 1),
        ([(0, Value.of([C1])), (2, Value.of([C3]))], [LogEntry(0, b"one", "r1", False)], 0),
        ([(2, Value.of([C3])), (0, Value.of([C1])), (1, NOOP)],
         [LogEntry(0, b"one", "r1", False), LogEntry(1, None, None, True),
          LogEntry(2, b"three", "r3", False)], 2),
    ],
    ids=["empty", "gap-at-0-applies-nothing", "batch-in-one-slot", "noop-then-command",
         "gap-at-1-stops-there", "gap-filled-by-noop-releases-all"],
)
def test_decided_log_entries_and_decided_up_to(decisions, log, up_to):
    node = learner()
    for slot, value in decisions:
        node.step(Decide(src="p1", dst="l1", slot=slot, value=value))
    assert node.learner.log == log
    assert node.learner.decided_up_to == up_to
    assert [(e.slot, e.payload, e.request_id, e.noop) for e in node.learner.log] == [
        (e.slot, e.payload, e.request_id, e.noop) for e in log
    ]


# ---------------------------------------------------------------- durability


# Paxos Made Simple §2.5: an acceptor must remember its promise and votes across
# a crash; a node rebuilt from its persisted Record behaves as before the crash.
@pytest.mark.parametrize(
    "msg,reply",
    [
        (prepare(B(5), src="p2"), Nack),  # equal ballot
        (prepare(B(4, "p2"), src="p2"), Nack),  # lower ballot
        (accept(B(4, "p2"), slot=1, value=Y, src="p2"), Nack),
        (accept(B(5), slot=1, value=Y), Accepted),  # the promised ballot itself still works
        (prepare(B(6, "p2"), src="p2"), Promise),
    ],
    ids=["equal-prepare-nacked", "lower-prepare-nacked", "lower-accept-nacked",
         "promised-accept-accepted", "higher-prepare-promised"],
)
def test_rebuilt_node_keeps_its_promise(msg, reply):
    record = Record()
    node = acceptor(record)
    for m in (prepare(B(5)), accept(B(5), slot=0, value=X)):
        ready = step(node, m)
        record.apply(ready.persist)
    rebuilt = acceptor(record.copy())
    assert rebuilt.acceptor.promised == B(5)
    assert rebuilt.acceptor.votes_from(0) == [Vote(0, B(5), X)]
    ready = step(rebuilt, msg)
    (answer,) = {type(m) for m in (*ready.send_after_persist, *ready.send)}
    assert answer is reply
    if reply is Nack:
        assert messages(ready, Nack)[0].promised == B(5)
    if reply is Promise:
        assert messages(ready, Promise)[0].votes == (Vote(0, B(5), X),)
