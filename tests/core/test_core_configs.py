"""Reconfiguration in the pure core: the alpha approach (Lamport, Malkhi, Zhou,
"Reconfiguring a State Machine", 2010, section 4; Paxos Made Simple, end of
section 3). One test per rule: the history (configs.py), how learners and
proposers judge a slot by config(slot), phase 1 across configurations, the
alpha bound, the no-op run-up, refusals, and what is persisted.
"""

from __future__ import annotations

import random

import pytest

from paxos_agents.core import (
    NOOP,
    Accept,
    Accepted,
    Ballot,
    ClientRequest,
    Command,
    Decide,
    Membership,
    Nack,
    Node,
    Prepare,
    Promise,
    Ready,
    Record,
    Settings,
    Stored,
    Value,
    Vote,
)
from paxos_agents.core.configs import (
    CONFIG_PREFIX,
    Config,
    ConfigError,
    History,
    config_command,
    parse_config,
)

OLD = ("a1", "a2", "a3")
NEW = ("a3", "a4", "a5")
MEMBERS = Membership(proposers=("p1", "p2"), acceptors=OLD, learners=("l1", "l2"))
ALPHA = 4


def change(epoch: int, acceptors) -> Value:
    return Value.of([config_command(epoch, acceptors)])


def node(name: str, record: Record | None = None, **settings) -> Node:
    settings = {"window": 4, "alpha": ALPHA, **settings}
    return Node(name, MEMBERS, Settings(**settings), record or Record(), random.Random(0))


def step(n: Node, *msgs) -> Ready:
    for m in msgs:
        n.step(m)
    return n.ready()


def sent(ready: Ready, kind: type) -> list:
    return [m for m in (*ready.send_after_persist, *ready.send) if isinstance(m, kind)]


# ------------------------------------------------------------------ history


def test_a_change_decided_in_slot_i_governs_from_i_plus_alpha():
    h = History.initial(ALPHA, OLD)
    for slot in range(3):
        h = h.fed(slot, NOOP)
    assert h.config_for(6).acceptors == OLD and h.config_for(7) is None  # 7 >= known + alpha
    h = h.fed(3, change(1, NEW))
    assert h.latest == Config(1, 3 + ALPHA, NEW)
    assert [h.config_for(s).epoch for s in range(3, 8)] == [0, 0, 0, 0, 1]
    assert h.configs_from(5) == (h.configs[0], h.configs[1])
    assert h.acceptors_from(5) == ("a1", "a2", "a3", "a4", "a5")


@pytest.mark.parametrize(
    "value",
    [change(2, NEW),  # skips an epoch
     change(0, NEW),  # stale
     Value.of([Command(CONFIG_PREFIX + "1:x", b"not json")]),
     Value.of([Command(CONFIG_PREFIX + "1:x", b'{"v":1,"epoch":1,"acceptors":[]}')]),
     Value.of([Command(CONFIG_PREFIX + "1:x", b'{"v":2,"epoch":1,"acceptors":["a"]}')]),
     Value.of([Command("1:x", config_command(1, NEW).payload)])],  # not the prefix
    ids=["skipped-epoch", "stale-epoch", "not-json", "no-acceptors", "unknown-version",
         "client-request-id"],
)
def test_any_other_config_command_is_skipped_by_everyone(value):
    h = History.initial(ALPHA, OLD).fed(0, value)
    assert h.configs == (Config(0, 0, OLD),) and h.known == 1


def test_the_first_change_for_an_epoch_wins_and_at_most_one_per_slot():
    both = Value.of([config_command(1, NEW), config_command(2, OLD)])
    h = History.initial(ALPHA, OLD).fed(0, both)
    assert [c.epoch for c in h.configs] == [0, 1]
    h = h.fed(1, change(1, ("a9",)))  # a second epoch 1, in a later slot
    assert h.latest.acceptors == NEW


def test_feeding_out_of_order_changes_nothing():
    h = History.initial(ALPHA, OLD)
    assert h.fed(1, change(1, NEW)) is h


def test_json_round_trip_and_bad_input():
    h = History.initial(ALPHA, OLD).fed(0, change(1, NEW))
    assert History.from_json(h.to_json()) == h
    for bad in (None, [], [9, 4, 0, [[0, 0, ["a"]]]], [1, 0, 0, [[0, 0, ["a"]]]],
                [1, 4, 0, []], [1, 4, 0, [[1, 0, ["a"]]]], [1, 4, 0, [[0, 0, []]]]):
        with pytest.raises(ConfigError):
            History.from_json(bad)


def test_merge_keeps_the_history_fed_further_and_ignores_a_stranger():
    mine = History.initial(ALPHA, OLD).fed(0, NOOP)
    theirs = mine.fed(1, change(1, NEW)).fed(2, NOOP)
    assert mine.merged(theirs) == theirs and theirs.merged(mine) is theirs
    stranger = History.initial(ALPHA, ("x",)).with_known(9)
    assert mine.merged(stranger) is mine


def test_in_force_once_every_learner_stored_the_slots_before():
    h = History.initial(ALPHA, OLD).fed(0, change(1, NEW))
    assert h.in_force(ALPHA - 2).epoch == 0 and h.in_force(ALPHA - 1).epoch == 1


def test_parse_config():
    assert parse_config(config_command(3, NEW)) == (3, NEW)
    assert parse_config(Command("r", b"{}")) is None


def test_alpha_defaults_to_the_window_and_may_not_be_below_it():
    assert Settings(window=8).alpha == 8
    with pytest.raises(ValueError, match=r"alpha must be >= window \(8\), got 4"):
        Settings(window=8, alpha=4)


# ------------------------------------------------------------------ learner


def reconfigured_learner() -> Node:
    """A learner that decided a change to NEW in slot 0 (governs slots >= 4)."""
    le = node("l1")
    step(le, Decide(src="p1", dst="l1", slot=0, value=change(1, NEW)))
    assert le.learner.history.config_for(ALPHA).acceptors == NEW
    return le


def accepted(src: str, slot: int, value: Value = NOOP, ballot: Ballot = Ballot(1, "p1")):
    return Accepted(src=src, dst="l1", ballot=ballot, slot=slot, value=value)


def test_learner_ignores_a_vote_from_a_non_member_of_config_s():
    le = reconfigured_learner()
    step(le, accepted("a1", ALPHA), accepted("a2", ALPHA))  # a majority of OLD, not of NEW
    assert not le.learner.is_decided(ALPHA)
    step(le, accepted("a4", ALPHA))  # with a3 missing: a4 alone is no majority either
    assert not le.learner.is_decided(ALPHA)
    step(le, accepted("a5", ALPHA))
    assert le.learner.is_decided(ALPHA)


def test_learner_still_judges_slots_before_the_change_by_the_old_config():
    le = reconfigured_learner()
    step(le, accepted("a4", 1), accepted("a5", 1))
    assert not le.learner.is_decided(1)
    step(le, accepted("a1", 1), accepted("a2", 1))
    assert le.learner.is_decided(1)


def test_learner_keeps_votes_for_a_slot_whose_config_is_unknown_and_judges_them_later():
    le = node("l1")
    step(le, accepted("a4", 5), accepted("a5", 5))  # config(5) needs slot 1 decided
    assert not le.learner.is_decided(5)
    step(le, Decide(src="p1", dst="l1", slot=0, value=NOOP),
         Decide(src="p1", dst="l1", slot=1, value=change(1, NEW)))
    assert le.learner.history.config_for(5).acceptors == NEW
    assert le.learner.is_decided(5)


def test_a_learner_persists_the_history_with_the_applied_slot_and_restarts_with_it():
    le = node("l1", retain_slots=2)
    ready = step(le, Decide(src="p1", dst="l1", slot=0, value=change(1, NEW)))
    assert History.from_json(ready.persist.configs).latest.acceptors == NEW
    assert ready.persist.applied == 0
    for slot in range(1, 40):  # retention deletes slot 0 long before the end
        step(le, Decide(src="p1", dst="l1", slot=slot, value=NOOP))
    record = le._own_record
    assert 0 not in record.decisions
    again = Node("l1", MEMBERS, Settings(window=4, alpha=ALPHA, retain_slots=2), record.copy(),
                 random.Random(0))
    assert again.learner.history.latest == Config(1, ALPHA, NEW)
    assert again.learner.history.known == 40
    assert again.configuration().in_force.epoch == 0  # l2 never reported


# ----------------------------------------------------------------- proposer


def elect(p: Node, promisers=OLD, first_slot: int = 0, votes=()) -> Ready:
    """Tick p until it runs for leader, then deliver promises from `promisers`."""
    for _ in range(40):
        p.tick()
        ready = p.ready()
        if sent(ready, Prepare):
            break
    else:
        raise AssertionError("never ran")
    ballot = p.proposer.ballot
    return step(p, *[Promise(src=a, dst=p.node_id, ballot=ballot, first_slot=first_slot,
                             votes=tuple(v for v in votes if v.slot >= first_slot))
                     for a in promisers])


def decide_slots(p: Node, values: dict[int, Value]) -> Ready:
    return step(p, *[Decide(src="l1", dst="p1", slot=s, value=v) for s, v in values.items()])


def test_phase_1_needs_a_majority_of_each_config_from_its_first_slot():
    p = node("p1")
    decide_slots(p, {0: change(1, NEW)})  # governs slots >= 4; phase 1 starts at 1
    for _ in range(40):
        p.tick()
        ready = p.ready()
        if sent(ready, Prepare):
            break
    prepares = sent(ready, Prepare)
    assert {m.dst for m in prepares} == {"a1", "a2", "a3", "a4", "a5"}
    assert {(m.dst, m.first_slot) for m in prepares if m.dst in ("a4", "a5")} == {
        ("a4", 4), ("a5", 4)}
    ballot = p.proposer.ballot
    step(p, *[Promise(src=a, dst="p1", ballot=ballot, first_slot=1, votes=()) for a in OLD[:2]])
    assert not p.is_leader  # a majority of OLD only
    step(p, Promise(src="a4", dst="p1", ballot=ballot, first_slot=4, votes=()))
    assert not p.is_leader  # a4 alone is no majority of NEW
    step(p, Promise(src="a5", dst="p1", ballot=ballot, first_slot=4, votes=()))
    assert p.is_leader


def test_phase_1_is_not_won_by_a_majority_of_the_newest_config_alone():
    """The same rule, fed the other way round: a majority of NEW promises
    first. Phase 1 from slot 1 spans OLD (slots 1..3) and NEW (from 4), so
    NEW alone wins nothing: no leadership and no Accept below the change
    (a rule "a majority of the newest configuration" would lead here and
    propose slots 1..3 that only OLD may decide)."""
    p = node("p1")
    decide_slots(p, {0: change(1, NEW)})  # governs slots >= 4; phase 1 starts at 1
    for _ in range(40):
        p.tick()
        if sent(p.ready(), Prepare):
            break
    ballot = p.proposer.ballot
    p.propose(Command("c1", b"1"))
    ready = step(p, *[Promise(src=a, dst="p1", ballot=ballot, first_slot=4, votes=())
                      for a in ("a4", "a5")])
    assert not p.is_leader
    assert not sent(ready, Accept)
    ready = step(p, *[Promise(src=a, dst="p1", ballot=ballot, first_slot=1, votes=())
                      for a in ("a1", "a2")])
    assert p.is_leader
    first = [m for m in sent(ready, Accept) if m.slot == 1]
    assert {m.dst for m in first} == set(OLD) and first[0].value == Value.of([Command("c1", b"1")])


def test_phase_1_adopts_per_slot_only_votes_of_config_s_members():
    p = node("p1")
    decide_slots(p, {0: change(1, NEW), 1: NOOP, 2: NOOP})  # configs known below 3 + alpha
    stray = Vote(4, Ballot(9, "p2"), Value.of([Command("stray", b"s")]))  # a1 is no member at 4
    good = Vote(5, Ballot(2, "p2"), Value.of([Command("good", b"g")]))
    for _ in range(40):
        p.tick()
        if sent(p.ready(), Prepare):
            break
    ballot = p.proposer.ballot
    ready = step(p,
                 Promise(src="a1", dst="p1", ballot=ballot, first_slot=3, votes=(stray,)),
                 Promise(src="a2", dst="p1", ballot=ballot, first_slot=3, votes=()),
                 Promise(src="a4", dst="p1", ballot=ballot, first_slot=4, votes=(good,)),
                 Promise(src="a5", dst="p1", ballot=ballot, first_slot=4, votes=()))
    accepts = {m.slot: m.value for m in sent(ready, Accept)}
    assert accepts[4] == NOOP and accepts[5] == good.value


def test_leader_sends_accept_for_s_to_config_s_and_counts_only_its_members():
    p = node("p1")
    elect(p)
    p.propose(Command("c0", b"0"))
    ready = p.ready()
    accept, = {m.slot for m in sent(ready, Accept)}
    assert {m.dst for m in sent(ready, Accept)} == set(OLD)
    step(p, Accepted(src="a9", dst="p1", ballot=p.proposer.ballot, slot=accept, value=NOOP))
    step(p, Accepted(src="a1", dst="p1", ballot=p.proposer.ballot, slot=accept,
                     value=Value.of([Command("c0", b"0")])))
    assert accept in p.proposer.pipeline.inflight  # a non-member's vote did not make a majority


def test_the_alpha_bound_holds_a_leader_back_until_decisions_are_known():
    p = node("p1", window=4, alpha=4, batch=1)
    elect(p)
    for i in range(4):
        p.propose(Command(f"c{i}", b"x"))
    ready = p.ready()
    assert sorted({m.slot for m in sent(ready, Accept)}) == [0, 1, 2, 3]
    # Slots 1..3 decided, slot 0 not: the window has room, but config(4) is unknown.
    for slot in (1, 2, 3):
        for a in OLD[:2]:
            p.step(Accepted(src=a, dst="p1", ballot=p.proposer.ballot, slot=slot,
                            value=p.proposer.pipeline.inflight[slot].value))
    p.propose(Command("c4", b"x"))
    ready = p.ready()
    assert not sent(ready, Accept) and len(p.proposer.pipeline.inflight) == 1
    assert p.proposer.stats.alpha_waits >= 1
    for a in OLD[:2]:
        p.step(Accepted(src=a, dst="p1", ballot=p.proposer.ballot, slot=0,
                        value=p.proposer.pipeline.inflight[0].value))
    assert {m.slot for m in sent(p.ready(), Accept)} == {4}


def test_after_a_change_is_decided_the_leader_prepares_new_members_and_fills_no_ops():
    p = node("p1", window=8, alpha=8)
    elect(p)
    command = p.propose_config(NEW)
    ready = p.ready()
    accept, = sent(ready, Accept)[:1]
    assert accept.slot == 0 and accept.value.commands == (command,)
    for a in OLD[:2]:
        p.step(Accepted(src=a, dst="p1", ballot=p.proposer.ballot, slot=0, value=accept.value))
    ready = p.ready()
    assert p.configuration().epoch == 1
    # New members are prepared from slot 0 + alpha; slots 1..7 are filled with no-ops.
    assert {(m.dst, m.first_slot) for m in sent(ready, Prepare)} == {("a4", 8), ("a5", 8)}
    assert {m.slot for m in sent(ready, Accept) if m.value == NOOP} == set(range(1, 8))
    # Nothing at slot 8 until a majority of NEW promised.
    for slot in range(1, 8):
        for a in OLD[:2]:
            p.step(Accepted(src=a, dst="p1", ballot=p.proposer.ballot, slot=slot, value=NOOP))
    p.propose(Command("after", b"x"))
    assert not sent(p.ready(), Accept)
    ready = step(p, Promise(src="a4", dst="p1", ballot=p.proposer.ballot, first_slot=8, votes=()))
    accepts = sent(ready, Accept)
    assert {m.slot for m in accepts} == {8} and {m.dst for m in accepts} == set(NEW)


def test_propose_config_refusals():
    p = node("p1")
    elect(p)
    with pytest.raises(ConfigError, match="at least one acceptor"):
        p.propose_config([])
    with pytest.raises(ConfigError, match="distinct"):
        p.propose_config(["a1", "a1"])
    p.propose_config(NEW)  # unknown names are fine: new acceptors
    with pytest.raises(ConfigError, match="not decided yet"):
        p.propose_config(OLD)
    accept = sent(p.ready(), Accept)[0]
    for a in OLD[:2]:
        p.step(Accepted(src=a, dst="p1", ballot=p.proposer.ballot, slot=0, value=accept.value))
    p.ready()
    with pytest.raises(ConfigError, match="a change is in progress: epoch 1"):
        p.propose_config(OLD)
    # Every learner stored every slot before the change: it is in force.
    for learner in ("l1", "l2"):
        p.step(Stored(src=learner, dst="p1", upto=ALPHA - 1))
    assert p.configuration().pending is None and p.configuration().in_force.epoch == 1
    p.propose_config(OLD)
    with pytest.raises(ValueError, match="not a proposer"):
        node("l1").propose_config(NEW)


def test_a_client_cannot_send_a_config_command():
    p = node("p1")
    elect(p)
    forged = config_command(1, ("evil",))
    p.step(ClientRequest(src="client", dst="p1", command=forged))
    p.propose_batch((forged, Command("ok", b"1")))
    accepts = {m.slot: m.value for m in sent(p.ready(), Accept)}
    assert [c.request_id for v in accepts.values() for c in v] == ["ok"]
    assert p.proposer.stats.config_refused == 2


def test_a_proposer_whose_history_is_behind_the_compaction_point_waits_for_a_learner():
    p = node("p1")
    for _ in range(40):
        p.tick()
        if sent(p.ready(), Prepare):
            break
    ballot = p.proposer.ballot
    ready = step(p, Nack(src="a1", dst="p1", ballot=ballot, promised=ballot, compacted=40))
    assert not sent(ready, Prepare)  # config(40) is unknown: whom to ask?
    history = History.initial(ALPHA, OLD).fed(0, change(1, NEW)).with_known(41)
    p.step(Stored(src="l1", dst="p1", upto=40, history=history))
    for _ in range(40):
        p.tick()
        ready = p.ready()
        if sent(ready, Prepare):
            break
    assert {(m.dst, m.first_slot) for m in sent(ready, Prepare)} == {
        ("a3", 40), ("a4", 40), ("a5", 40)}


def test_set_membership_no_longer_refuses_other_acceptors():
    p = node("p1")
    p.set_membership(Membership(proposers=("p1", "p2"), acceptors=NEW, learners=("l1", "l2")))
    assert p.proposer.history.latest.acceptors == OLD  # quorums still come from the history


def test_a_node_with_nothing_new_persists_no_history():
    """No extra write per start: epoch 0 comes from the membership (or the
    seeded `Record.configs`) until a change is decided."""
    assert node("l1").ready().persist.configs is None
    seeded = Record(configs=History.initial(ALPHA, NEW).to_json())
    assert node("l1", seeded).learner.history.latest.acceptors == NEW


def test_buffered_votes_of_non_members_never_count_once_the_config_is_known():
    le = node("l1")
    step(le, accepted("a1", 5), accepted("a2", 5))  # OLD members, voting before the change is known
    step(le, Decide(src="p1", dst="l1", slot=0, value=NOOP),
         Decide(src="p1", dst="l1", slot=1, value=change(1, NEW)))
    assert not le.learner.is_decided(5)  # config(5) is NEW: a1 and a2 are no members
    step(le, accepted("a3", 5))
    assert not le.learner.is_decided(5)  # a3 alone is no majority of NEW


def test_a_change_names_its_request_id_one_payload_only():
    """Seeds 2930 and 5703 (--reconfig): a restarted proposer once reused a
    request id for another change, which broke validity and deduplication;
    seed 218: one request id with two stamps, applied twice."""
    assert config_command(1, NEW, issued=7) == config_command(1, NEW, issued=7)
    assert config_command(1, NEW).request_id != config_command(1, NEW, issued=7).request_id
    assert config_command(1, NEW).request_id != config_command(1, OLD).request_id
    assert config_command(1, NEW).request_id != config_command(2, NEW).request_id


def test_a_new_members_promise_above_slots_in_flight_releases_them():
    """Seed 6435 (--reconfig): a leader heard a new member's compaction point
    through its promise, above slots it still had in flight, and resent their
    Accepts forever (their only acceptor had compacted them)."""
    p = node("p1", batch=1)
    elect(p)
    p.propose_config(NEW)
    accept = sent(p.ready(), Accept)[0]
    for a in OLD[:2]:
        p.step(Accepted(src=a, dst="p1", ballot=p.proposer.ballot, slot=0, value=accept.value))
    p.ready()
    assert set(p.proposer.pipeline.inflight) == {1, 2, 3}  # the run-up to slot 4
    step(p, Promise(src="a4", dst="p1", ballot=p.proposer.ballot, first_slot=4, votes=(),
                    compacted=4))
    assert not p.proposer.pipeline.inflight and p.proposer.decided_up_to == 3
