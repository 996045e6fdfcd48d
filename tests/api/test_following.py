"""Which learner a client follows, and the stall rule (paxosctl.client.following): no sockets.

A learner "connected" here is an `Endpoint` whose `conn` is set to a
stand-in object: `Learners` only asks whether there is one.
"""

from __future__ import annotations

import pytest

from paxosctl.client.following import Learners

STALL = 2.0


def learners(*names: str, now: float = 0.0) -> Learners:
    return Learners(names, stall_seconds=STALL, now=now)


def connect(group: Learners, name: str) -> None:
    for endpoint in group:
        if endpoint.name == name:
            endpoint.conn = object()  # type: ignore[assignment]


def drop(group: Learners, name: str) -> None:
    for endpoint in group:
        if endpoint.name == name:
            endpoint.conn = None


def test_the_first_connected_learner_in_order_is_followed() -> None:
    group = learners("l1", "l2", "l3")
    assert group.followed() is None
    assert [e.name for e in group.to_try(0.0)] == ["l1", "l2", "l3"]
    connect(group, "l2")
    connect(group, "l3")
    assert group.followed().name == "l2"
    assert group.to_try(0.0) == []  # one is followed: no other connection is tried


def test_a_demoted_learner_is_tried_last() -> None:
    """One that closed, cut this client off or stalled."""
    group = learners("l1", "l2", "l3")
    [l1] = [e for e in group if e.name == "l1"]
    group.demote(l1)
    assert [e.name for e in group.to_try(0.0)] == ["l2", "l3", "l1"]


def test_a_learner_is_retried_only_when_its_retry_time_has_come() -> None:
    group = learners("l1", "l2")
    [l1, l2] = list(group)
    l1.retry_at = 5.0
    assert [e.name for e in group.to_try(4.9)] == ["l2"]
    assert [e.name for e in group.to_try(5.0)] == ["l1", "l2"]


# (learners, seconds since it last learned, something waits since) -> stalled?
STALLS = [
    (("l1", "l2"), STALL - 0.1, True, False),
    (("l1", "l2"), STALL, True, True),
    (("l1", "l2"), STALL * 10, False, False),
    (("l1",), STALL * 10, True, False),
]


@pytest.mark.parametrize(("names", "quiet", "waiting", "stalled"), STALLS, ids=[
    "within-the-stall-period", "quiet-a-whole-period-while-waited-on", "nothing-waits",
    "no-other-learner"])
def test_the_stall_rule(names, quiet, waiting, stalled) -> None:
    group = learners(*names, now=100.0)
    asked: list[float] = []

    def waits(since: float) -> bool:
        asked.append(since)
        return waiting

    assert group.stalled(100.0 + quiet, waits) is stalled
    if asked:  # "waits since": what was proposed a whole stall period ago or earlier
        assert asked == [100.0 + quiet - STALL]


def test_learning_restarts_the_stall_period() -> None:
    group = learners("l1", "l2", now=0.0)
    group.learned(STALL - 0.5)  # a SLOT, a SUBSCRIBED, or a new connection
    assert not group.stalled(STALL + 1.0, lambda since: True)
    assert group.stalled(2 * STALL - 0.5, lambda since: True)
