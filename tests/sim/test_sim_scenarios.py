"""Scripted scenarios on the simulated cluster, each on both topologies where
it makes sense (SEPARATE: proposers, acceptors and learners apart; COLLAPSED:
three replicas playing every role).

Everything is tick-driven and seeded. Every wait is `sim.run(bound, until=...)`
and the test asserts that `until` became true within the bound. The cluster's
`Checker` raises `Violation` during any step that breaks agreement, validity,
integrity or the common-prefix property, so every scenario also checks safety.
"""

from __future__ import annotations

from typing import Callable

import pytest

from paxos_agents.core import (
    NOOP,
    Accept,
    Accepted,
    Ballot,
    Chunk,
    Command,
    Decide,
    Fetch,
    Message,
    Nack,
    Prepare,
    Promise,
    Retry,
    Settings,
    Stored,
    Value,
)
from paxos_agents.sim import COLLAPSED, SEPARATE, SimCluster, Topology

TOPOLOGIES = [SEPARATE, COLLAPSED]
TOPOLOGY_IDS = ["separate", "collapsed"]
BOUND = 400  # ticks any single wait below may take at most


def cluster(topology: Topology, seed: int = 1, **settings) -> SimCluster:
    # One command per slot so that slot numbers are predictable.
    settings.setdefault("batch", 1)
    return SimCluster(topology.membership(), seed, Settings(**settings))


def commands(n: int, prefix: str = "c") -> list[Command]:
    return [Command(f"{prefix}{i}", f"v-{prefix}{i}".encode()) for i in range(n)]


def wait(sim: SimCluster, cond: Callable[[], bool], bound: int = BOUND) -> None:
    assert sim.run(bound, until=cond), f"not reached within {bound} ticks (now {sim.now})"


def elect(sim: SimCluster) -> str:
    """Run until one proposer leads and every other live proposer follows it."""

    def settled() -> bool:
        ls = leaders(sim)
        if len(ls) != 1:
            return False
        return all(sim.nodes[p].proposer.leader == ls[0]
                   for p in sim.membership.proposers if sim.nodes[p] is not None)

    wait(sim, settled)
    return sim.leader()


def spy(sim: SimCluster) -> list[Message]:
    """Record every message the cluster puts on the network from now on."""
    sent: list[Message] = []
    original = sim.send

    def send(msg: Message) -> None:
        sent.append(msg)
        original(msg)

    sim.send = send  # the cluster calls self.send for every outgoing message
    return sent


def leaders(sim: SimCluster) -> list[str]:
    return [n for n in sim.membership.proposers if sim.nodes[n] and sim.nodes[n].is_leader]


def with_client_retries(sim: SimCluster, cmds: list[Command], bound: int, every: int = 30) -> bool:
    """Run until every command is applied by every learner, resubmitting the
    unacknowledged ones every `every` ticks like a client would (to the leader
    if there is one, else to the proposers in turn)."""
    rids = [c.request_id for c in cmds]
    done = lambda: sim.applied_everywhere(rids)  # noqa: E731
    turn = 0
    for _ in range(0, bound, every):
        if sim.run(every, until=done):
            return True
        for c in cmds:
            if c.request_id not in sim.checker.acked:
                target = sim.leader()
                if target is None:
                    up = [p for p in sim.membership.proposers if sim.nodes[p] is not None]
                    turn += 1
                    target = up[turn % len(up)]
                sim.submit(target, c)
    return done()


def assert_logs_sound(sim: SimCluster, cmds: list[Command]) -> None:
    """Every learner applied every command exactly once, and the logs agree."""
    logs = []
    for node in sim.learners():
        rids = [e.request_id for e in node.learner.log if not e.noop]
        assert len(rids) == len(set(rids)), f"{node.node_id} applied a request twice: {rids}"
        assert set(rids) >= {c.request_id for c in cmds}
        logs.append(node.learner.log)
    shortest = min(len(log) for log in logs)
    assert all(log[:shortest] == logs[0][:shortest] for log in logs)


# --------------------------------------------------------------- dueling


def majority_side(sim: SimCluster, leader: str) -> tuple[list[str], list[str]]:
    """Split the cluster: the old leader with a minority of acceptors, the rest."""
    m = sim.membership
    if leader in m.acceptors:  # a replica: alone is a minority
        minority = [leader]
    else:
        minority = [leader, m.acceptors[0], m.learners[0]]
    return minority, [n for n in sim.ids if n not in minority]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("topology", TOPOLOGIES, ids=TOPOLOGY_IDS)
def test_dueling_proposers_end_with_one_leader_and_every_command_once(topology, seed):
    """Guards agreement and integrity under competing leaders: the old leader,
    cut off with a minority, keeps believing it leads and keeps proposing while
    a second proposer runs phase 1 on the majority side and leads too. After
    healing, exactly one leader remains and every command is applied once."""
    sim = cluster(topology, seed)
    old = elect(sim)
    early = commands(2, "early")
    for c in early:
        sim.submit(old, c)
    wait(sim, lambda: sim.applied_everywhere([c.request_id for c in early]))

    minority, majority = majority_side(sim, old)
    sim.partition(minority)
    old_side, new_side = commands(3, "old"), commands(3, "new")
    other = next(p for p in sim.membership.proposers if p != old and p in majority)
    for c in old_side:
        sim.submit(old, c)  # proposed under the old ballot, cannot reach a majority
    for c in new_side:
        # `other` still follows the old leader: it forwards these across the
        # partition, where they are lost until the client retries.
        sim.submit(other, c)
    wait(sim, lambda: len(leaders(sim)) == 2)  # both ran phase 1 and both believe they lead
    new = next(p for p in leaders(sim) if p != old)
    assert sim.nodes[new].proposer.ballot > sim.nodes[old].proposer.ballot
    assert sim.nodes[old].proposer.stats.leader_changes >= 1
    assert sim.nodes[new].proposer.stats.leader_changes >= 1

    sim.heal()
    everything = early + old_side + new_side
    assert with_client_retries(sim, everything, bound=900)
    wait(sim, lambda: len(leaders(sim)) == 1)
    assert_logs_sound(sim, everything)
    # Stable: a while later still one leader, and nothing was applied again.
    sim.run(100)
    assert len(leaders(sim)) == 1
    assert_logs_sound(sim, everything)


# ---------------------------------------------------- leader dies in phase 2


DIES_CASES = [
    # (topology, who keeps the slot-0 vote, who is cut off while a new leader runs
    #  phase 1, what slot 0 must decide)
    (SEPARATE, "acceptor-0", "acceptor-2", "command"),  # the vote is in the new quorum
    (SEPARATE, "acceptor-0", "acceptor-0", "noop"),  # the vote is out of the new quorum
    (COLLAPSED, "other-replica", None, "command"),  # a surviving replica holds the vote
    (COLLAPSED, "leader", None, "noop"),  # only the dead leader's own acceptor voted
]


@pytest.mark.parametrize(
    "topology,keeper,cut,slot0", DIES_CASES,
    ids=["separate-vote-found", "separate-vote-missed", "collapsed-vote-found",
         "collapsed-vote-missed"],
)
def test_leader_dies_between_phase2_messages(topology, keeper, cut, slot0):
    """Guards P2c across a leader crash: the leader sends the Accept for slot 0 to
    only one acceptor, gets slot 1 accepted by all, and dies. The next leader's
    phase 1 either finds the slot-0 vote and re-proposes that command, or finds
    nothing in slot 0 below a reported slot 1 and fills it with a no-op. Either
    way every command is applied eventually (a client retries), none twice."""
    sim = cluster(topology, seed=4)
    leader = elect(sim)
    m = sim.membership
    if keeper == "other-replica":
        keeper = next(a for a in m.acceptors if a != leader)
    elif keeper == "leader":
        keeper = leader
    c0, c1 = commands(2)
    sim.hold(lambda msg: isinstance(msg, Accept) and msg.src == leader
             and msg.slot == 0 and msg.dst != keeper)
    sim.submit(leader, c0)
    sim.submit(leader, c1)

    def slot1_accepted_by_all() -> bool:
        return all(sim.nodes[a].acceptor.vote_at(1) is not None for a in m.acceptors)

    wait(sim, lambda: sim.nodes[keeper].acceptor.vote_at(0) is not None
         and slot1_accepted_by_all())
    assert sim.nodes[keeper].acceptor.vote_at(0).value == Value.of([c0])
    assert [a for a in m.acceptors if sim.nodes[a].acceptor.vote_at(0) is not None] == [keeper]
    assert 0 not in sim.checker.chosen  # slot 0 is not decided: one vote only

    sim.crash(leader)
    sim.hold(None)  # the held Accepts died with the leader's buffers; they stay held
    if cut is not None:
        sim.isolate(cut)
    wait(sim, lambda: 0 in sim.checker.chosen and 1 in sim.checker.chosen)
    new_leader = sim.leader()
    assert new_leader is not None and new_leader != leader
    assert sim.checker.chosen[1][0] == Value.of([c1])
    if slot0 == "command":
        assert sim.checker.chosen[0][0] == Value.of([c0])  # found and re-proposed
    else:
        assert sim.checker.chosen[0][0] == NOOP  # a hole below slot 1: no-op

    sim.heal()
    sim.restart(leader)
    assert with_client_retries(sim, [c0, c1], bound=900)
    assert_logs_sound(sim, [c0, c1])
    first = sim.checker.first_slot
    assert first["c1"] == 1
    if slot0 == "command":
        assert first["c0"] == 0
    else:
        assert first["c0"] >= 2  # proposed again after the no-op, in a fresh slot


# ------------------------------------------------------- gap at the log end


@pytest.mark.parametrize("topology", TOPOLOGIES, ids=TOPOLOGY_IDS)
def test_learner_learns_missing_last_slot_through_heartbeat_and_retry(topology):
    """Guards learner liveness for the LAST slot: a learner that never receives
    the Accepteds of the last slot has no later decision to reveal the gap; the
    leader's heartbeat (highest_slot) does, and a Retry brings the decision.
    (Its peer learners are kept out of reach: one that has stored the slot
    would be copied from instead, see the next test.)"""
    sim = cluster(topology, seed=5)
    leader = elect(sim)
    victim = next(l for l in sim.membership.learners if l != leader)
    cmds = commands(3)
    last = len(cmds) - 1
    sim.hold(lambda msg: msg.dst == victim and (
        (isinstance(msg, Accepted) and msg.slot == last) or isinstance(msg, (Stored, Chunk))))
    sent = spy(sim)
    for c in cmds:
        sim.submit(leader, c)
    others = [n for n in sim.learners() if n.node_id != victim]
    wait(sim, lambda: all(n.learner.decided_up_to == last for n in others))
    node = sim.nodes[victim]
    assert last not in node.learner.decided  # its Accepteds are held back

    wait(sim, lambda: node.learner.decided_up_to == last)
    assert node.learner.highest_known == last
    assert node.learner.retries_sent >= 1
    retries = [m for m in sent if isinstance(m, Retry) and m.src == victim]
    assert retries and all(m.slot == last for m in retries)
    assert any(isinstance(m, Decide) and m.dst == victim and m.slot == last for m in sent)
    assert [e.request_id for e in node.learner.log] == [c.request_id for c in cmds]


def test_learner_copies_a_missing_slot_from_a_peer_that_stored_it():
    """Guards state transfer as the first resort: a learner that misses the
    Accepteds of a slot its peer learner has stored fetches it from the peer
    (Fetch/Chunk), without asking a proposer for a retry."""
    sim = cluster(SEPARATE, seed=5)
    leader = elect(sim)
    victim, peer = sim.membership.learners
    cmds = commands(3)
    sim.hold(lambda msg: isinstance(msg, Accepted) and msg.dst == victim and msg.slot == 1)
    sent = spy(sim)
    for c in cmds:
        sim.submit(leader, c)
    node = sim.nodes[victim]
    wait(sim, lambda: node.learner.decided_up_to == 2)
    assert node.learner.installed >= 1
    assert any(isinstance(m, Fetch) and m.src == victim and m.dst == peer for m in sent)
    assert not [m for m in sent if isinstance(m, Retry) and m.src == victim]
    assert [e.request_id for e in node.learner.log] == [c.request_id for c in cmds]


# ------------------------------------------------------------- retry cooldown


@pytest.mark.parametrize(
    "gap,performed",
    [(1, False), (19, False), (20, True), (25, True)],
    ids=["next-tick-suppressed", "last-tick-of-cooldown-suppressed",
         "cooldown-over-performed", "well-after-performed"],
)
@pytest.mark.parametrize("topology", TOPOLOGIES, ids=TOPOLOGY_IDS)
def test_retry_inside_cooldown_is_suppressed(topology, gap, performed):
    """Guards against retry storms: a proposer retries one slot at most once per
    retry_cooldown_ticks (20); a Retry inside the cooldown only counts as
    suppressed, one after it is performed (here: the Accepts are resent)."""
    # Learners never retry on their own here; only the injected Retries count.
    sim = cluster(topology, seed=6, gap_ticks=10_000, retry_cooldown_ticks=20)
    leader = elect(sim)
    learner = next(l for l in sim.membership.learners if l != leader)
    sim.hold(lambda msg: isinstance(msg, Accept))  # slot 0 stays in flight
    sim.submit(leader, commands(1)[0])
    stats = sim.nodes[leader].proposer.stats

    def retry_now() -> None:
        sim.send(Retry(src=learner, dst=leader, slot=0))
        sim.step()

    retry_now()
    assert (stats.retries_performed, stats.retries_suppressed) == (1, 0)
    resends = stats.accept_resends
    sim.run(gap - 1)
    retry_now()
    assert sim.nodes[leader].is_leader
    if performed:
        assert (stats.retries_performed, stats.retries_suppressed) == (2, 0)
        assert stats.accept_resends > resends
    else:
        assert (stats.retries_performed, stats.retries_suppressed) == (1, 1)
    assert stats.retries_requested == 2


@pytest.mark.parametrize("topology", TOPOLOGIES, ids=TOPOLOGY_IDS)
def test_retry_of_decided_slot_resends_the_decision(topology):
    """Guards the Retry answer for a decided slot: the proposer sends a Decide
    with the decided value, every time (no cooldown, no new ballot)."""
    sim = cluster(topology, seed=7, gap_ticks=10_000)
    leader = elect(sim)
    learner = next(l for l in sim.membership.learners if l != leader)
    c = commands(1)[0]
    sim.submit(leader, c)
    proposer = sim.nodes[leader].proposer
    wait(sim, lambda: 0 in proposer.decisions.chosen)
    ballot, elections = proposer.ballot, proposer.stats.elections
    sent = spy(sim)
    for _ in range(3):
        sim.send(Retry(src=learner, dst=leader, slot=0))
        sim.step()
    decides = [m for m in sent if isinstance(m, Decide)]
    assert decides == [Decide(src=leader, dst=learner, slot=0, value=Value.of([c]))] * 3
    assert proposer.stats.retries_requested == 3
    assert (proposer.stats.retries_performed, proposer.stats.retries_suppressed) == (0, 0)
    assert (proposer.ballot, proposer.stats.elections) == (ballot, elections)


# ---------------------------------------------------- restarted acceptor


@pytest.mark.parametrize(
    "plant,answer",
    [(frozenset(), Nack), (frozenset({"forget-promise"}), Promise)],
    ids=["correct-nacks", "planted-forget-promise-promises"],
)
@pytest.mark.parametrize(
    "lower", ["equal", "same-round-lower-node", "lower-round"],
)
@pytest.mark.parametrize("topology", TOPOLOGIES, ids=TOPOLOGY_IDS)
def test_restarted_acceptor_keeps_its_promise(topology, lower, plant, answer):
    """Guards Paxos Made Simple §2.5 (stable storage): an acceptor that crashes
    and restarts still refuses any Prepare not above the ballot it promised
    before the crash. With the planted bug "forget-promise" it would promise."""
    sim = SimCluster(topology.membership(), 8, Settings(plant=plant))
    leader = elect(sim)
    sim.submit(leader, commands(1)[0])
    wait(sim, lambda: 0 in sim.checker.chosen)
    promised = sim.nodes[leader].proposer.ballot
    m = sim.membership
    acceptor = next(a for a in m.acceptors if a != leader)
    wait(sim, lambda: sim.nodes[acceptor].acceptor.promised == promised)

    sim.crash(acceptor)
    sim.run(5)
    sim.restart(acceptor)
    if not plant:
        assert sim.nodes[acceptor].acceptor.promised == promised
    src = next(p for p in m.proposers if p not in (leader, acceptor))
    ballot = {
        "equal": promised,
        "same-round-lower-node": Ballot(promised.round, ""),
        "lower-round": Ballot(promised.round - 1, "zzzz"),
    }[lower]
    assert ballot <= promised
    sent = spy(sim)
    sim.send(Prepare(src=src, dst=acceptor, ballot=ballot, first_slot=0))
    sim.step()
    replies = [msg for msg in sent if msg.src == acceptor and isinstance(msg, (Nack, Promise))]
    assert [type(r) for r in replies] == [answer]
    if answer is Nack:
        assert replies[0].promised == promised and replies[0].ballot == ballot
