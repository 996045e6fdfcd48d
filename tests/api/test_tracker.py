"""The client's requests as state machines (paxosctl.client.tracker): tables, no sockets.

Each test builds a `Tracker`, brings requests to a state through its
public calls (`add`, `take`, the `on_*` answers, `learner_lost`, `expire`),
feeds it frames made by the learner's own encoders (clientwire) and time
as numbers, and reads what it sends (`take`'s frames, decoded) and what
it settles. Nothing here opens a socket or starts a thread.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest

from paxos_agents.core.commands import Command, Value
from paxos_agents.runtime import clientwire as wire
from paxosctl.errors import (ConnectionLost, Expired, NotRunning, ProposalTimeout,
                             RequestIdConflict, UsageError)
from paxosctl.client.results import Decision
from paxosctl.client.tracker import (STAMP_WAIT_SECONDS, TRANSITIONS, Event, LearnerLink, Outgoing,
                              Request, RequestState, Tracker, resolve)

S = RequestState
L = LearnerLink
RETRY = 1.0
#: A time well past the start's wait for the learner's SUBSCRIBED.
T0 = 10.0


def tracker(applied: int = 5) -> Tracker:
    t = Tracker(retry_seconds=RETRY, retain_slots=16, started=0.0)
    t.on_subscribed(applied)
    return t


def call(t: Tracker, rid: str, payload: bytes = b"mine", *, lookup: bool = False,
         issued: int | None = None, now: float = T0, timeout: float = 30.0) -> Future[Any]:
    """One `propose_async` as the I/O thread hands it over: the future of the call."""
    future: Future[Any] = Future()
    future.set_running_or_notify_cancel()
    request = Request(rid, payload, issued, now, now + timeout,
                      S.TO_LOOK_UP if lookup else S.QUEUED)
    resolve(t.add([(request, future)]))
    return future


def sent(out: Outgoing) -> dict[str, list[Any]]:
    """`take`'s frames, decoded: request ids per frame kind (PROPOSE: the commands)."""
    seen: dict[str, list[Any]] = {"lookup": [], "watch": [], "propose": []}
    for frame in out.to_learner:
        kind = {wire.LOOKUP: "lookup", wire.WATCH: "watch"}[frame[:1]]
        seen[kind] += wire.decode_ids(frame[1:])
    for frame in out.to_proposer:
        assert frame[:1] == wire.PROPOSE
        seen["propose"] += list(wire.decode_batch(frame[1:]).commands)
    return seen


def state(t: Tracker, rid: str) -> RequestState:
    request = t.get(rid)
    return request.state if request is not None else S.SETTLED


def outcome(future: Future[Any]) -> Any:
    try:
        return future.result(0)
    except Exception as e:  # noqa: BLE001 - the outcome under test
        return e


# Each starting state, reached through public calls only.
def queued(t: Tracker) -> None:
    call(t, "r")


def to_look_up(t: Tracker) -> None:
    call(t, "r", lookup=True)


def looking_up(t: Tracker) -> None:
    call(t, "r", lookup=True)
    t.take(T0, learner=L.SUBSCRIBED, proposer=True)


def sent_(t: Tracker) -> None:
    call(t, "r")
    t.take(T0, learner=L.SUBSCRIBED, proposer=True)


def waiting(t: Tracker) -> None:
    call(t, "r")
    t.take(T0, learner=L.NONE, proposer=True)


START = {S.QUEUED: queued, S.TO_LOOK_UP: to_look_up, S.LOOKING_UP: looking_up,
         S.SENT: sent_, S.WAITING: waiting}


def test_each_starting_state_is_reached_as_named() -> None:
    for expected, reach in START.items():
        t = tracker()
        reach(t)
        assert state(t, "r") is expected


# ------------------------------------------------------------ what is sent

# (state, learner, seconds after it was proposed) -> (what leaves, the state after).
SENDS = [
    (S.QUEUED, L.SUBSCRIBED, 0, {"propose": ["r"]}, S.SENT),
    (S.QUEUED, L.CONNECTED, 0, {"watch": ["r"], "propose": ["r"]}, S.SENT),
    (S.QUEUED, L.NONE, 0, {"propose": ["r"]}, S.WAITING),
    (S.TO_LOOK_UP, L.SUBSCRIBED, 0, {"lookup": ["r"]}, S.LOOKING_UP),
    (S.TO_LOOK_UP, L.NONE, 0, {}, S.TO_LOOK_UP),
    (S.LOOKING_UP, L.SUBSCRIBED, 5 * RETRY, {}, S.LOOKING_UP),
    (S.SENT, L.SUBSCRIBED, RETRY / 2, {}, S.SENT),
    (S.SENT, L.SUBSCRIBED, RETRY, {"propose": ["r"]}, S.SENT),
    (S.SENT, L.NONE, RETRY, {"propose": ["r"]}, S.WAITING),
    (S.WAITING, L.SUBSCRIBED, RETRY / 2, {}, S.WAITING),
    (S.WAITING, L.SUBSCRIBED, RETRY, {"watch": ["r"], "propose": ["r"]}, S.SENT),
    (S.WAITING, L.CONNECTED, RETRY, {"watch": ["r"], "propose": ["r"]}, S.SENT),
]


@pytest.mark.parametrize(("start", "learner", "later", "frames", "after"), SENDS, ids=[
    "queued-proposed-streamed", "queued-watched-before-subscribed", "queued-no-learner-waits",
    "lookup-asked", "lookup-waits-for-a-learner", "looking-up-not-resent",
    "sent-not-before-retry", "sent-resent-at-retry", "sent-resent-no-learner-waits",
    "waiting-not-before-retry", "waiting-asked-at-resend", "waiting-asked-before-subscribed"])
def test_what_take_sends_and_where_it_leaves_the_request(start, learner, later, frames,
                                                         after) -> None:
    t = tracker()
    START[start](t)
    out = t.take(T0 + later, learner=learner, proposer=True)
    got = sent(out)
    assert {k: [c.request_id if isinstance(c, Command) else c for c in v]
            for k, v in got.items() if v} == frames
    assert state(t, "r") is after


def test_without_a_proposer_nothing_is_proposed_and_a_queued_request_stays_queued() -> None:
    t = tracker()
    call(t, "r")
    assert sent(t.take(T0, learner=L.SUBSCRIBED, proposer=False))["propose"] == []
    assert state(t, "r") is S.QUEUED
    assert [c.request_id for c in sent(t.take(T0, learner=L.SUBSCRIBED,
                                              proposer=True))["propose"]] == ["r"]


def test_new_commands_wait_for_the_learners_subscription_for_a_while() -> None:
    """Its SUBSCRIBED stamps them; STAMP_WAIT_SECONDS after the start they go anyway."""
    t = Tracker(retry_seconds=RETRY, retain_slots=16, started=0.0)
    call(t, "r", now=0.1)
    assert sent(t.take(0.1, learner=L.CONNECTED, proposer=True)) == {
        "lookup": [], "watch": [], "propose": []}
    assert state(t, "r") is S.QUEUED
    late = sent(t.take(STAMP_WAIT_SECONDS, learner=L.CONNECTED, proposer=True))
    assert late["watch"] == ["r"] and [c.request_id for c in late["propose"]] == ["r"]


def test_a_proposal_is_stamped_with_the_slot_applied_when_it_first_leaves() -> None:
    t = tracker(applied=5)
    call(t, "mine")
    call(t, "retry", issued=2)  # a retry carries its first stamp
    t.on_slot(8, {}, b"")  # an empty slot streamed: applied now 8
    proposed = sent(t.take(T0, learner=L.SUBSCRIBED, proposer=True))["propose"]
    assert {c.request_id: c.issued for c in proposed} == {"mine": 8, "retry": 2}
    t.on_slot(9, {}, b"")
    again = sent(t.take(T0 + RETRY, learner=L.SUBSCRIBED, proposer=True))["propose"]
    assert {c.request_id: c.issued for c in again} == {"mine": 8, "retry": 2}


# ------------------------------------------------------------ what moves them

def test_the_table_never_leaves_settled_and_names_only_live_states() -> None:
    for event, moves in TRANSITIONS.items():
        assert S.SETTLED not in moves, event
    assert set(TRANSITIONS[Event.SETTLE]) == set(START)


# (state, what happens) -> the state after ("settled": its future resolved).
LOOKED_UP = {
    "not-decided": lambda t: t.on_looked_up(7, [wire.Outcome("r", wire.UNKNOWN, 0, 0, b"")]),
    "watching": lambda t: t.on_looked_up(7, [wire.Outcome("r", wire.WATCHING, 0, 0, b"")]),
    "decided-before": lambda t: t.on_looked_up(7, [wire.Outcome("r", wire.DECIDED, 3, 0,
                                                                wire.digest(b"mine"))]),
}
EVENTS = [
    (S.LOOKING_UP, "not-decided", S.QUEUED),
    (S.LOOKING_UP, "watching", S.LOOKING_UP),
    (S.LOOKING_UP, "decided-before", S.SETTLED),
    (S.TO_LOOK_UP, "not-decided", S.QUEUED),
    (S.SENT, "not-decided", S.SENT),  # a lookup answer for a request proposed here: ignored
    (S.QUEUED, "learner-lost", S.QUEUED),
    (S.TO_LOOK_UP, "learner-lost", S.TO_LOOK_UP),
    (S.LOOKING_UP, "learner-lost", S.TO_LOOK_UP),
    (S.SENT, "learner-lost", S.WAITING),
    (S.WAITING, "learner-lost", S.WAITING),
    (S.SENT, "proposer-lost", S.SENT),
    (S.QUEUED, "deadline", S.SETTLED),
    (S.LOOKING_UP, "deadline", S.SETTLED),
    (S.WAITING, "deadline", S.SETTLED),
    (S.QUEUED, "answered", S.SETTLED),
    (S.LOOKING_UP, "answered", S.SETTLED),
    (S.SENT, "answered", S.SETTLED),
    (S.WAITING, "answered", S.SETTLED),
]
HAPPENS = {
    **LOOKED_UP,
    "learner-lost": lambda t: t.learner_lost(T0),
    "proposer-lost": lambda t: t.resend_now(T0),
    "deadline": lambda t: t.expire(T0 + 30),
    "answered": lambda t: t.on_outcomes([wire.Outcome("r", wire.DECIDED, 6, 0,
                                                      wire.digest(b"mine"))]),
}


@pytest.mark.parametrize(("start", "event", "after"), EVENTS,
                         ids=[f"{s.name.lower()}-{e}" for s, e, _ in EVENTS])
def test_transition(start, event, after) -> None:
    t = tracker()
    START[start](t)
    HAPPENS[event](t)
    assert state(t, "r") is after


def test_a_lookup_not_decided_is_proposed_at_once_stamped_by_the_learner() -> None:
    t = tracker(applied=5)
    looking_up(t)
    t.on_looked_up(7, [wire.Outcome("r", wire.UNKNOWN, 0, 0, b"")])
    [command] = sent(t.take(T0, learner=L.SUBSCRIBED, proposer=True, due=False))["propose"]
    assert (command.request_id, command.issued) == ("r", 7)


def test_after_the_learner_is_lost_everything_in_flight_is_asked_of_the_next_at_once() -> None:
    """Proposed ones are WATCHed and proposed again; lookups are asked again."""
    t = tracker()
    call(t, "p")
    call(t, "k", lookup=True)
    t.take(T0, learner=L.SUBSCRIBED, proposer=True)
    t.learner_lost(T0 + 0.1)
    out = sent(t.take(T0 + 0.1, learner=L.SUBSCRIBED, proposer=True))
    assert (out["lookup"], out["watch"], [c.request_id for c in out["propose"]]) == (
        ["k"], ["p"], ["p"])
    assert (state(t, "p"), state(t, "k")) == (S.SENT, S.LOOKING_UP)


def test_a_second_call_joins_the_first_or_conflicts_at_once() -> None:
    t = tracker()
    first = call(t, "r", b"mine", timeout=1)
    same = call(t, "r", b"mine", timeout=60)
    other = call(t, "r", b"theirs")
    assert isinstance(outcome(other), RequestIdConflict)
    assert "is being proposed with another value" in str(outcome(other))
    t.take(T0, learner=L.SUBSCRIBED, proposer=True)
    resolve(t.expire(T0 + 2))  # the later deadline holds for both
    assert not first.done()
    resolve(t.on_outcomes([wire.Outcome("r", wire.DECIDED, 6, 1, wire.digest(b"mine"))]))
    assert outcome(first) == outcome(same) and outcome(first).position == "6.1"


@pytest.mark.parametrize(("proposed", "error"), [(True, ConnectionLost), (False, NotRunning)],
                         ids=["proposed-may-be-decided", "never-sent"])
def test_when_the_cluster_goes_away(proposed, error) -> None:
    t = tracker()
    future = call(t, "r", lookup=not proposed)
    t.take(T0, learner=L.SUBSCRIBED, proposer=True)
    resolve(t.cluster_gone("c.toml"))
    assert isinstance(outcome(future), error) and len(t) == 0


def test_the_deadline_and_closing_fail_with_what_the_caller_may_retry() -> None:
    t = tracker()
    late = call(t, "late", timeout=1)
    left = call(t, "left", timeout=60)
    t.take(T0, learner=L.SUBSCRIBED, proposer=True)
    resolve(t.expire(T0 + 1))
    assert isinstance(outcome(late), ProposalTimeout) and "--issued 5" in outcome(late).hint
    assert not left.done()
    resolve(t.close())
    assert isinstance(outcome(left), ConnectionLost)


def test_a_command_that_cannot_be_encoded_fails_alone() -> None:
    """`check_proposal` should stop it first; if not, only its own future fails."""
    t = tracker()
    good = [call(t, f"ok{i}") for i in range(3)]
    bad = call(t, "bad\ud800")
    out = t.take(T0, learner=L.SUBSCRIBED, proposer=True)
    resolve(out.settled)
    assert isinstance(outcome(bad), UsageError) and "cannot be sent" in str(outcome(bad))
    assert [c.request_id for c in sent(out)["propose"]] == ["ok0", "ok1", "ok2"]
    assert not any(f.done() for f in good) and state(t, "bad\ud800") is S.SETTLED


# ------------------------------------------------------------ answers

MINE, THEIRS = b"mine", b"theirs"
# (the learner's answer, the value it names when it sends it) -> what the call ends with.
ANSWERS = [
    (wire.Outcome("r", wire.DECIDED, 7, 2, b""), MINE, Decision, "7.2"),
    (wire.Outcome("r", wire.DECIDED, 7, 2, b""), THEIRS, RequestIdConflict, 7),
    (wire.Outcome("r", wire.DECIDED, 1, 0, wire.digest(MINE)), None, Decision, "1.0"),
    (wire.Outcome("r", wire.DECIDED, 1, 0, wire.digest(THEIRS)), None, RequestIdConflict, 1),
    (wire.Outcome("r", wire.EXPIRED, 9, 0, b""), None, Expired, None),
    (wire.Outcome("r", wire.NOT_RETAINED, 0, 0, b""), None, Expired, None),
    (wire.Outcome("r", wire.TOO_LARGE, 100, 0, b""), None, UsageError, None),
    (wire.Outcome("r", wire.CONFLICT, 0, 0, b""), None, RequestIdConflict, None),
]


def answer(out: wire.Outcome, value: bytes | None) -> Any:
    """What a call for "r" with value MINE ends with, given the learner's `out`:
    with the value itself (a SLOT frame) when `value` is given, else by digest."""
    t = tracker()
    future = call(t, "r", MINE)
    t.take(T0, learner=L.SUBSCRIBED, proposer=True)
    if value is not None:
        resolve(t.on_slot(out.slot, {}, Value.of((Command("x", b"0"), Command("y", b"1"),
                                                  Command("r", value))).data))
    else:
        resolve(t.on_outcomes([out]))
    return outcome(future)


@pytest.mark.parametrize(("out", "value", "kind", "where"), ANSWERS, ids=[
    "same-value-in-slot", "other-value-in-slot", "same-digest", "other-digest", "expired",
    "not-retained", "too-large", "conflict-in-flight"])
def test_the_client_acknowledges_only_its_own_value(out, value, kind, where) -> None:
    """Moved from tests/runtime/test_client_answers.py, which wrote DataClient's
    private state: a request id is decided with one value only, and only that
    value's caller gets a `Decision`; another value's gets a conflict."""
    got = answer(out, value)
    assert isinstance(got, kind), got
    if kind is Decision:
        assert (got.position, got.value) == (where, MINE)
    elif where is not None:
        assert got.slot == where and "with another value" in str(got)


# The guard the issue asks for: a SLOT frame carries one of our request ids,
# but the learner marks it skipped there, as decided earlier (a retry of a
# command already decided): the call's outcome is that first position.
SKIPPED = [
    (wire.Skipped(wire.DECIDED, 4, 2, wire.digest(MINE)), Decision, "4.2"),
    (wire.Skipped(wire.DECIDED, 4, 2, wire.digest(THEIRS)), RequestIdConflict, 4),
    (wire.Skipped(wire.EXPIRED, 4, 0, b""), Expired, None),
    (wire.Skipped(wire.NOT_RETAINED, 0, 0, b""), Expired, None),
]


@pytest.mark.parametrize(("skip", "kind", "where"), SKIPPED, ids=[
    "decided-earlier-same-value", "decided-earlier-other-value", "expired", "not-retained"])
def test_a_slot_where_our_id_is_skipped_as_decided_earlier(skip, kind, where) -> None:
    t = tracker()
    future = call(t, "r", MINE)
    t.take(T0, learner=L.SUBSCRIBED, proposer=True)
    data = Value.of((Command("x", b"0"), Command("r", MINE))).data
    resolve(t.on_slot(9, {1: skip}, data))
    got = outcome(future)
    assert isinstance(got, kind), got
    if kind is Decision:
        assert got.position == where  # the first position, not this slot's 9.1
    elif where is not None:
        assert got.slot == where


def test_a_frame_settles_all_its_requests_the_first_answer_winning() -> None:
    t = tracker()
    futures = {rid: call(t, rid, rid.encode()) for rid in ("a", "b", "c")}
    t.take(T0, learner=L.SUBSCRIBED, proposer=True)
    data = Value.of((Command("a", b"a"), Command("b", b"b"), Command("a", b"a"),
                     Command("zz", b"not ours"))).data
    resolve(t.on_slot(12, {2: wire.Skipped(wire.DECIDED, 12, 0, wire.digest(b"a"))}, data))
    assert outcome(futures["a"]).position == "12.0" and outcome(futures["b"]).position == "12.1"
    assert not futures["c"].done() and len(t) == 1 and t.applied == 12


def test_what_the_stall_rule_waits_on_is_the_first_proposal_of_an_unanswered_request() -> None:
    """`proposed_by(when)`: a request first proposed at `when` or before is
    unanswered (paxosctl.client.following's stall rule); a resend does not restart it,
    a lookup or a request not yet proposed does not count."""
    t = tracker()
    call(t, "k", lookup=True)
    call(t, "r")
    t.take(T0, learner=L.SUBSCRIBED, proposer=True)
    t.take(T0 + RETRY, learner=L.SUBSCRIBED, proposer=True)  # "r" resent
    assert t.proposed_by(T0) and not t.proposed_by(T0 - 0.1)
    resolve(t.on_outcomes([wire.Outcome("r", wire.DECIDED, 6, 0, wire.digest(b"mine"))]))
    assert not t.proposed_by(T0 + 5)  # "k" was only looked up


# ------------------------------------------------- a propose_many call's values


def batch_of(t: Tracker, rids: list[str], *, now: float = T0, timeout: float = 30.0):
    """One `propose_many_async` as the I/O thread hands it over: its future."""
    from paxosctl.client.batch import BatchFuture

    payloads = [rid.encode() for rid in rids]
    batch = BatchFuture(rids, payloads)
    resolve(t.add_batch([Request(rid, payload, None, now, now + timeout, S.QUEUED, batch, i)
                         for i, (rid, payload) in enumerate(zip(rids, payloads))]))
    return batch


def test_a_batch_resolves_once_every_value_settled_in_its_order() -> None:
    """Its values are decided in another order (and slot) than given, one is
    never answered: the call's future resolves only at that one's deadline,
    with one result per value in the call's order, each with its request
    id: the decided ones their positions, the unanswered one
    `ProposalTimeout` (retryable by id), and nothing else of it settles."""
    t = tracker()
    batch = batch_of(t, ["a", "b", "c"])
    assert sent(t.take(T0, learner=L.SUBSCRIBED, proposer=True))["propose"] == [
        Command("a", b"a", 5), Command("b", b"b", 5), Command("c", b"c", 5)]
    resolve(t.on_slot(7, {}, Value.of((Command("c", b"c", 5), Command("zz", b"x"))).data))
    resolve(t.on_slot(8, {}, Value.of((Command("a", b"a", 5),)).data))
    assert not batch.done() and len(t) == 1
    resolve(t.expire(T0 + 30))
    results = batch.result(0)
    assert [p.request_id for p in results] == ["a", "b", "c"]
    assert [p.value for p in results] == [b"a", b"b", b"c"]
    assert results[0].result().position == "8.0" and results[2].result().position == "7.0"
    assert not results[1].ok and results[1].unknown
    assert isinstance(results[1].error, ProposalTimeout) and results[1].error.request_id == "b"
    assert len(t) == 0


def test_a_value_of_a_batch_under_an_id_in_flight_waits_for_the_same_answer() -> None:
    """A call's id that a batch's value then brings (the same value) is in
    flight once: one answer settles the call's future and the batch's place;
    with another value, the batch's place fails at once, alone."""
    t = tracker()
    future = call(t, "a", b"a")
    batch = batch_of(t, ["a", "b"])
    other = call(t, "b", b"not b")  # a call under the batch's id, another value
    assert isinstance(outcome(other), RequestIdConflict)
    t.take(T0, learner=L.SUBSCRIBED, proposer=True)
    resolve(t.on_slot(7, {}, Value.of((Command("a", b"a", 5), Command("b", b"b", 5))).data))
    assert outcome(future).position == "7.0"
    assert [p.result().position for p in batch.result(0)] == ["7.0", "7.1"]
