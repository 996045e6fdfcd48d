"""A proposer that restarts with no memory cannot get a second value accepted
under a ballot it used before.

Paxos Made Simple §2.5 asks a proposer to remember its highest proposal
number, and this core persists it (`Persist.round`). These tests wipe the
proposer's record on purpose and drive every message by hand, with no
Promise of the old incarnation still in flight: fresh Prepares under the
reused ballot are refused, since acceptors promise only strictly higher
ballots and any majority includes one that promised it. (With a stale
Promise in flight a memoryless restart is NOT safe; the TLA+ mutant
`LoseRound` in tests/tla finds it. That is why the round is persisted
before the Prepare goes out.)

The invariant: for every (slot, ballot), every acceptor ever holds at most
one value, and all acceptors agree on it (one proposer, one proposal per
ballot and slot). With the planted bug "reuse-ballot" (a Nack counted as a
promise) it breaks, and so does agreement.
"""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from paxos_agents.core import (
    Accept,
    Accepted,
    Ballot,
    Command,
    Membership,
    Message,
    Nack,
    Node,
    Prepare,
    Promise,
    Record,
    Settings,
    Value,
)
from paxos_agents.sim import Checker, Violation

MEMBERS = Membership(proposers=("p1", "p2"), acceptors=("a1", "a2", "a3"), learners=("l1", "l2"))
X = Command("rx", b"x")
Y = Command("ry", b"y")


class Net:
    """Nodes, their durable records, and a bag of in-flight messages, all driven by hand."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.records = {n: Record() for n in ("p1", "p2", "a1", "a2", "a3", "l1", "l2")}
        self.nodes = {n: self._boot(n, Record()) for n in self.records}
        self.inbox: list[Message] = []
        self.checker = Checker()
        #: (slot, ballot) -> acceptor -> every value it ever accepted there.
        self.held: dict[tuple[int, Ballot], dict[str, set]] = defaultdict(lambda: defaultdict(set))

    def _boot(self, node_id: str, record: Record) -> Node:
        return Node(node_id, MEMBERS, self.settings, record, random.Random(node_id))

    def restart_without_memory(self, node_id: str) -> None:
        """Crash `node_id` and start it from an EMPTY record (its disk was lost)."""
        self.inbox = [m for m in self.inbox if m.src != node_id]  # unsent: gone
        self.records[node_id] = Record()
        self.nodes[node_id] = self._boot(node_id, Record())

    def drain(self, node_id: str) -> None:
        ready = self.nodes[node_id].ready()
        self.records[node_id].apply(ready.persist)
        for vote in ready.persist.votes:
            self.held[(vote.slot, vote.ballot)][node_id].add(vote.value)
        for slot, value in ready.persist.decisions:
            self.checker.decided(node_id, slot, value)  # raises Violation on disagreement
        self.inbox += ready.send_after_persist + ready.send

    def submit(self, node_id: str, command: Command) -> None:
        self.checker.submit(command.request_id, command.payload)
        self.nodes[node_id].propose(command)
        self.drain(node_id)

    def tick_until(self, node_id: str, kind: type, limit: int = 100) -> None:
        for _ in range(limit):
            self.nodes[node_id].tick()
            self.drain(node_id)
            if any(isinstance(m, kind) and m.src == node_id for m in self.inbox):
                return
        raise AssertionError(f"{node_id} sent no {kind.__name__} in {limit} ticks")

    def deliver(self, pred) -> list[Message]:
        """Deliver (once) every in-flight message matching `pred`; return them."""
        due = [m for m in self.inbox if pred(m)]
        self.inbox = [m for m in self.inbox if not pred(m)]
        for m in due:
            self.nodes[m.dst].step(m)
            self.drain(m.dst)
        return due

    def drop(self, pred) -> None:
        self.inbox = [m for m in self.inbox if not pred(m)]

    def two_values_for_one_ballot(self) -> list[str]:
        """Every (slot, ballot) some acceptor, or two acceptors, hold two values for."""
        bad = []
        for (slot, ballot), by_acceptor in self.held.items():
            values = set().union(*by_acceptor.values())
            if len(values) > 1:
                bad.append(f"slot {slot} ballot {ballot}: {dict(by_acceptor)}")
        return bad


def is_(kind, src=None, dst=None):
    def pred(m):
        return (isinstance(m, kind) and (src is None or m.src == src)
                and (dst is None or m.dst in ((dst,) if isinstance(dst, str) else dst)))
    return pred


def first_incarnation(net: Net, accepted_by: tuple[str, ...]) -> Ballot:
    """p1 gets ballot (1, p1) promised by a1 and a2 and X accepted by `accepted_by`.

    The Accepteds reach learner l1 only (l2 hears nothing yet). Returns the ballot.
    """
    net.tick_until("p1", Prepare)
    ballot = net.nodes["p1"].proposer.ballot
    assert ballot == Ballot(1, "p1")
    net.deliver(is_(Prepare, "p1", ("a1", "a2")))
    net.drop(is_(Prepare, "p1", "a3"))  # a3 never hears of it
    net.deliver(is_(Promise, dst="p1"))
    assert net.nodes["p1"].is_leader
    net.submit("p1", X)
    net.deliver(is_(Accept, "p1", accepted_by))
    net.drop(is_(Accept, "p1"))
    net.deliver(is_(Accepted, dst="l1"))
    net.drop(is_(Accepted))
    for a in accepted_by:
        assert net.nodes[a].acceptor.vote_at(0).value == Value.of([X])
    return ballot


def second_incarnation(net: Net) -> Ballot:
    """p1 restarts from an empty record, is asked for Y, and runs phase 1 again."""
    net.restart_without_memory("p1")
    net.submit("p1", Y)
    net.tick_until("p1", Prepare)
    return net.nodes["p1"].proposer.ballot


# Minority: X was accepted by a1 only (not chosen). Majority: by a1 and a2 (chosen, l1 knows).
CASES = [("a1",), ("a1", "a2")]
CASE_IDS = ["x-accepted-by-minority", "x-accepted-by-majority"]


@pytest.mark.parametrize("accepted_by", CASES, ids=CASE_IDS)
def test_memoryless_restart_reuses_ballot_but_is_nacked(accepted_by):
    """Guards ballot uniqueness: the restarted proposer's Prepare under its old
    ballot (1, p1) is refused by every acceptor that promised it, so it cannot
    lead under that ballot; it moves above it and re-proposes X (P2c)."""
    net = Net(Settings())
    old = first_incarnation(net, accepted_by)
    again = second_incarnation(net)
    assert again == old  # no memory: the same ballot comes out again

    net.deliver(is_(Prepare, "p1"))
    nacks = [m for m in net.inbox if isinstance(m, Nack) and m.dst == "p1"]
    assert {m.src for m in nacks} == {"a1", "a2"}  # they promised (1, p1) already
    assert all(m.ballot == old and m.promised == old for m in nacks)
    promises = [m for m in net.inbox if isinstance(m, Promise) and m.dst == "p1"]
    assert [m.src for m in promises] == ["a3"]
    net.deliver(lambda m: m.dst == "p1")
    assert not net.nodes["p1"].is_leader  # one promise is not a majority, and it was nacked
    assert not any(isinstance(m, Accept) and m.ballot == old for m in net.inbox)

    # Its next ballot is above the one it was nacked with; run everything to the end.
    net.tick_until("p1", Prepare)
    assert net.nodes["p1"].proposer.ballot > old
    for _ in range(50):
        if not net.inbox:
            break
        net.deliver(lambda m: True)
    assert net.nodes["p1"].is_leader
    assert net.two_values_for_one_ballot() == []
    # X was accepted under (1, p1) and must be what slot 0 decides; Y goes after it.
    for learner in ("l1", "l2"):
        assert net.nodes[learner].learner.decided.get(0) == Value.of([X])
        assert net.nodes[learner].learner.decided.get(1) == Value.of([Y])
    assert [e.request_id for e in net.nodes["l2"].learner.log] == ["rx", "ry"]


@pytest.mark.parametrize("seed", range(25), ids=lambda s: f"seed-{s}")
@pytest.mark.parametrize("accepted_by", CASES, ids=CASE_IDS)
def test_memoryless_restart_never_two_values_per_ballot_under_any_schedule(accepted_by, seed):
    """Guards the invariant "one value per (slot, ballot)" whatever happens after
    the memoryless restart: seeded random delivery, loss, duplication, ticks of
    every node (p2 competes too), and another memoryless restart of p1."""
    net = Net(Settings())
    first_incarnation(net, accepted_by)
    second_incarnation(net)
    rng = random.Random(seed)
    restarted_again = False
    for step in range(600):
        r = rng.random()
        if net.inbox and r < 0.6:
            m = net.inbox.pop(rng.randrange(len(net.inbox)))
            if rng.random() < 0.1:
                net.inbox.append(m)  # duplicated
            net.nodes[m.dst].step(m)
            net.drain(m.dst)
        elif net.inbox and r < 0.65:
            net.inbox.pop(rng.randrange(len(net.inbox)))  # lost
        else:
            node_id = rng.choice(sorted(net.nodes))
            net.nodes[node_id].tick()
            net.drain(node_id)
        if not restarted_again and step == 300:
            restarted_again = True
            net.restart_without_memory("p1")
        assert net.two_values_for_one_ballot() == [], f"step {step}"
    # Agreement was checked on every decision (Checker raises Violation).
    decided = [n.learner.decided for n in (net.nodes["l1"], net.nodes["l2"])]
    for slot in set(decided[0]) & set(decided[1]):
        assert decided[0][slot] == decided[1][slot]


@pytest.mark.parametrize("accepted_by", CASES, ids=CASE_IDS)
def test_planted_reuse_ballot_accepts_two_values_under_one_ballot(accepted_by):
    """The converse: with the planted bug "reuse-ballot" the restarted proposer
    counts the Nacks as promises, leads under (1, p1) again with no votes
    reported, and gets Y accepted in slot 0 under the ballot X was accepted
    under. When X had been chosen, a learner then decides Y: agreement breaks."""
    net = Net(Settings(plant=frozenset({"reuse-ballot"})))
    old = first_incarnation(net, accepted_by)
    assert second_incarnation(net) == old
    net.deliver(is_(Prepare, "p1"))
    net.deliver(lambda m: m.dst == "p1")  # two Nacks and a Promise
    assert net.nodes["p1"].is_leader and net.nodes["p1"].proposer.ballot == old
    accepts = [m for m in net.inbox if isinstance(m, Accept)]
    assert {(m.slot, m.ballot, m.value) for m in accepts} == {(0, old, Value.of([Y]))}

    net.deliver(is_(Accept, "p1", ("a1", "a3")))
    assert net.nodes["a1"].acceptor.vote_at(0).value == Value.of([Y])
    bad = net.two_values_for_one_ballot()
    assert len(bad) == 1 and bad[0].startswith("slot 0 ballot 1.p1")
    assert net.held[(0, old)]["a1"] == {Value.of([X]), Value.of([Y])}  # one acceptor, one ballot, two values

    # l2 never heard about X; it now sees a majority for Y under (1, p1).
    if accepted_by == ("a1", "a2"):
        with pytest.raises(Violation, match="agreement: slot 0"):
            net.deliver(is_(Accepted, dst="l2"))
    else:
        net.deliver(is_(Accepted, dst="l2"))
        assert net.nodes["l2"].learner.decided[0] == Value.of([Y])
