"""`paxosctl.tools.history.check` on hand-made histories and logs: each anomaly
is found (lost, duplicated, misplaced, unproposed, reordered in real
time, an unknown outcome applied twice), a clean history passes, and
hypothesis-generated valid histories (sequential, and concurrent but
linearizable) always pass, while breaking one of them is always caught.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from paxosctl.tools.history import Operation, Report, check


def entry(slot: int, rid: str | None, value: str | None = None) -> dict[str, Any]:
    if rid is None:
        return {"slot": slot, "value": None, "request_id": None, "noop": True}
    return {"slot": slot, "value": value if value is not None else f"v-{rid}",
            "request_id": rid, "noop": False}


def op(rid: str, invoked: float, acked: float | None = None, slot: int | None = None,
       value: str | None = None) -> Operation:
    return Operation(rid, value if value is not None else f"v-{rid}", invoked, acked, slot)


def only(report: Report, kind: str) -> list[str]:
    """The anomalies of `kind`, asserting there are no others."""
    kinds = ("lost", "duplicated", "misplaced", "unproposed", "reordered")
    others = {k: getattr(report, k) for k in kinds if k != kind and getattr(report, k)}
    assert not others, others
    assert not report.ok and not report.linearizable
    return getattr(report, kind)


# ------------------------------------------------------------------ by hand


def test_clean_history_passes() -> None:
    history = [op("a", 0, 1, 0), op("b", 2, 3, 1), op("c", 2.5, 3.5, 1), op("d", 4, None)]
    log = [entry(0, "a"), entry(1, "b"), entry(1, "c"), entry(2, None), entry(3, "d")]
    report = check(history, log)
    assert report.ok and report.linearizable
    assert report.problems() == []
    assert (report.acknowledged, report.unknown) == (3, 1)
    assert report.summary() == ("proposals acknowledged: 3, lost: 0, duplicated: 0, "
                                "linearizable: yes")


def test_empty_history_and_log_pass() -> None:
    assert check([], []).ok
    assert check([], [entry(0, None), entry(1, None)]).ok


def test_acknowledged_but_missing_is_lost() -> None:
    history = [op("a", 0, 1, 0), op("b", 2, 3, 1)]
    lost = only(check(history, [entry(0, "a"), entry(1, None)]), "lost")
    assert len(lost) == 1 and lost[0].startswith("b ") and "slot 1" in lost[0]
    assert "lost: 1" in check(history, [entry(0, "a")]).summary()


def test_lost_everything() -> None:
    report = check([op("a", 0, 1, 0), op("b", 0, 1, 1)], [])
    assert len(only(report, "lost")) == 2
    assert report.summary().endswith("lost: 2, duplicated: 0, linearizable: no")


def test_request_id_applied_twice_is_duplicated() -> None:
    history = [op("a", 0, 1, 0), op("b", 2, 3, 1)]
    log = [entry(0, "a"), entry(1, "b"), entry(2, "a")]
    duplicated = only(check(history, log), "duplicated")
    assert duplicated == ["a in slots 0 and 2"]


def test_duplicated_within_one_slot() -> None:
    history = [op("a", 0, 1, 0)]
    duplicated = only(check(history, [entry(0, "a"), entry(0, "a")]), "duplicated")
    assert len(duplicated) == 1


def test_unknown_outcome_applied_twice_counts_as_duplicated() -> None:
    history = [op("a", 0, 1, 0), op("u", 2, None)]
    log = [entry(0, "a"), entry(1, "u"), entry(2, "u")]
    report = check(history, log)
    assert only(report, "duplicated") == ["u in slots 1 and 2"]
    assert report.unknown == 1
    assert "duplicated: 1" in report.summary()


def test_unknown_outcome_applied_once_or_never_is_fine() -> None:
    history = [op("a", 0, 1, 0), op("u", 2, None), op("w", 2, None)]
    report = check(history, [entry(0, "a"), entry(1, "u")])
    assert report.ok and report.unknown == 2 and report.acknowledged == 1


def test_acknowledged_at_another_slot_is_misplaced() -> None:
    history = [op("a", 0, 1, 0)]
    misplaced = only(check(history, [entry(0, None), entry(1, "a")]), "misplaced")
    assert misplaced == ["a acknowledged at slot 0, in the log at slot 1"]


def test_acknowledged_at_another_index_of_the_slot_is_misplaced() -> None:
    """Two commands decided in one slot have distinct positions (slot, index)."""
    a, b = op("a", 0, 1, 0), op("b", 0, 1, 0)
    a.index, b.index = 0, 1
    log = [{**entry(0, "a"), "index": 0}, {**entry(0, "b"), "index": 1}]
    assert check([a, b], log).ok
    b.index = 0  # acknowledged at a's position
    misplaced = only(check([a, b], log), "misplaced")
    assert misplaced == ["b acknowledged at 0.0, in the log at 0.1"]


def test_value_nobody_proposed_is_unproposed() -> None:
    history = [op("a", 0, 1, 0)]
    log = [entry(0, "a"), entry(1, "stranger")]
    unproposed = only(check(history, log), "unproposed")
    assert len(unproposed) == 1 and "stranger" in unproposed[0] and "slot 1" in unproposed[0]
    # Proposed by someone outside this history: not reported.
    assert check(history, log, others=frozenset({"stranger"})).ok


def test_other_value_under_a_known_request_id_is_unproposed() -> None:
    history = [op("a", 0, 1, 0, value="mine")]
    unproposed = only(check(history, [entry(0, "a", value="forged")]), "unproposed")
    assert "'forged'" in unproposed[0] and "'mine'" in unproposed[0]


def test_real_time_order_broken_is_reordered() -> None:
    # a was acknowledged (t=1) before b was sent (t=2), yet b comes first in the log.
    history = [op("a", 0, 1, 1), op("b", 2, 3, 0)]
    reordered = only(check(history, [entry(0, "b"), entry(1, "a")]), "reordered")
    assert len(reordered) == 1 and reordered[0].startswith("b (slot 0)") and "a (slot 1)" in reordered[0]


def test_unknown_outcome_sent_after_an_ack_cannot_come_before_it() -> None:
    history = [op("a", 0, 1, 1), op("u", 2, None)]
    reordered = only(check(history, [entry(0, "u"), entry(1, "a")]), "reordered")
    assert reordered[0].startswith("u (slot 0)")


def test_concurrent_operations_may_go_either_way() -> None:
    # Overlapping in time: a linearization exists in both orders.
    history = [op("a", 0, 3, 1), op("b", 1, 2, 0)]
    assert check(history, [entry(0, "b"), entry(1, "a")]).ok
    history = [op("a", 0, 3, 0), op("b", 1, 2, 1)]
    assert check(history, [entry(0, "a"), entry(1, "b")]).ok


def test_acknowledged_exactly_when_the_next_was_sent_is_concurrent() -> None:
    # "acknowledged before sent" is strict: equal times overlap.
    history = [op("a", 0, 2, 1), op("b", 2, 3, 0)]
    assert check(history, [entry(0, "b"), entry(1, "a")]).ok


def test_every_anomaly_at_once() -> None:
    history = [op("lost", 0, 1, 0), op("dup", 0, 1, 1), op("moved", 0, 1, 2),
               op("early", 5, 6, 3), op("late", 0, 2, 9)]
    log = [entry(0, None), entry(1, "dup"), entry(2, "dup"), entry(3, "early"),
           entry(4, "moved"), entry(5, "who"), entry(9, "late")]
    report = check(history, log)
    assert len(report.lost) == 1 and len(report.duplicated) == 1
    assert len(report.misplaced) == 1 and len(report.unproposed) == 1
    # early was sent (t=5) after late was acknowledged (t=2), yet comes before it.
    assert len(report.reordered) == 1 and report.reordered[0].startswith("early (slot 3)")
    assert len(report.problems()) == (len(report.lost) + len(report.duplicated) + len(report.misplaced)
                                      + len(report.unproposed) + len(report.reordered))
    assert {p.split(":")[0] for p in report.problems()} == {"lost", "duplicated", "misplaced",
                                                            "unproposed", "reordered"}


# --------------------------------------------------------------- generated


@st.composite
def sequential(draw) -> tuple[list[Operation], list[dict]]:
    """One client: each proposal sent after the previous one answered, each
    in its own slot; no-op slots come between; unknown outcomes are applied
    (once) or not at all."""
    count = draw(st.integers(0, 40))
    history: list[Operation] = []
    log: list[dict] = []
    slot = 0
    now = 0.0
    for i in range(count):
        rid = f"r{i}"
        now += draw(st.floats(0.001, 1.0))
        invoked = now
        now += draw(st.floats(0.001, 1.0))
        outcome = draw(st.sampled_from(["acked", "acked", "acked", "unknown-applied", "unknown-lost"]))
        while draw(st.integers(0, 5)) == 0:
            log.append(entry(slot, None))
            slot += 1
        at = None
        if outcome != "unknown-lost":
            log.append(entry(slot, rid))
            at = slot
            slot += 1
        acked = outcome == "acked"
        history.append(op(rid, invoked, now if acked else None, at if acked else None))
    return history, log


@st.composite
def linearizable(draw) -> tuple[list[Operation], list[dict]]:
    """Many clients at once: each operation takes effect at a point between
    its invocation and its response; the log is in the order of those points."""
    count = draw(st.integers(0, 40))
    points = []
    history = []
    for i in range(count):
        invoked = draw(st.floats(0, 100))
        point = invoked + draw(st.floats(0.001, 5))
        response = point + draw(st.floats(0.001, 5))
        outcome = draw(st.sampled_from(["acked", "acked", "unknown-applied", "unknown-lost"]))
        o = op(f"c{i}", invoked, response if outcome == "acked" else None)
        history.append(o)
        if outcome != "unknown-lost":
            points.append((point, o))
    log = []
    slot = -1
    for _, o in sorted(points, key=lambda p: p[0]):
        if slot < 0 or draw(st.integers(0, 2)) > 0:
            slot += 1  # a new slot; otherwise it joins the previous slot's batch
        log.append(entry(slot, o.request_id))
        if o.acked is not None:
            o.slot = slot
    return history, log


@settings(max_examples=100, deadline=None)
@given(sequential())
def test_generated_sequential_histories_pass(case) -> None:
    history, log = case
    report = check(history, log)
    assert report.ok, report.problems()
    assert report.acknowledged == sum(1 for o in history if o.acked is not None)
    assert report.unknown == len(history) - report.acknowledged


@settings(max_examples=100, deadline=None)
@given(linearizable())
def test_generated_linearizable_histories_pass(case) -> None:
    history, log = case
    report = check(history, log)
    assert report.ok, report.problems()


@settings(max_examples=100, deadline=None)
@given(sequential(), st.data())
def test_breaking_a_valid_history_is_caught(case, data) -> None:
    history, log = case
    acked = [o for o in history if o.acked is not None]
    applied = [e for e in log if not e["noop"]]
    if not acked or not applied:
        return
    how = data.draw(st.sampled_from(["drop", "repeat", "move", "swap", "stranger"]))
    victim = data.draw(st.sampled_from(acked))
    broken = [dict(e) for e in log]
    kind = {"drop": "lost", "repeat": "duplicated", "move": "misplaced",
            "stranger": "unproposed", "swap": "reordered"}[how]
    if how == "drop":
        broken = [e for e in broken if e["request_id"] != victim.request_id]
    elif how == "repeat":
        broken.append(entry(broken[-1]["slot"] + 1, victim.request_id))
    elif how == "move":
        for e in broken:
            if e["request_id"] == victim.request_id:
                e["slot"] += 1000
    elif how == "stranger":
        broken.insert(0, entry(0, "nobody-sent-this"))
    else:  # swap the first and last acknowledged: sequential, so real time forbids it
        first, last = acked[0], acked[-1]
        if first is last:
            return
        positions = {e["request_id"]: i for i, e in enumerate(broken)}
        i, j = positions[first.request_id], positions[last.request_id]
        broken[i], broken[j] = ({**broken[j], "slot": broken[i]["slot"]},
                                {**broken[i], "slot": broken[j]["slot"]})
        # The slots moved with the swap, so the acknowledged slots are wrong too.
        report = check(history, broken)
        assert report.reordered, report.problems()
        return
    report = check(history, broken)
    assert getattr(report, kind), (how, report.problems())
    assert not report.ok
