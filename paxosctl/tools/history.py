"""A checker for histories of proposals against the decided log.

A client history records, per proposal, when it was sent (`invoked`),
when and with which slot it was acknowledged (`acked`, `slot`), or that
its outcome is unknown (a timeout, a dropped connection). The checker
compares it with the decided log and reports every anomaly:

- an acknowledged proposal missing from the log (lost), or at another
  position (slot and index in the slot) than the one acknowledged;
- a request id applied more than once (duplicated);
- a value in the log that nobody proposed;
- a proposal with an unknown outcome applied more than once;
- real-time order broken: if A was acknowledged before B was sent, A must
  come before B in the log.

Linearizability of a log. In a Wing & Gong search each operation must be
placed at a point between its invocation and its response, in an order
the object's results agree with. Here every append returns its position,
so the only order the results allow is the log's own; the search has a
single candidate and reduces to checking that order against real time:
no operation may come after one that was invoked after it responded.
`check` does that in O(n log n) with a sweep over invocation times.
"""

from __future__ import annotations

from paxos_agents.core.configs import is_config_request

import base64
from dataclasses import dataclass, field


@dataclass(slots=True)
class Operation:
    """One proposal as the client saw it. Times are seconds on one monotonic clock."""

    request_id: str
    value: bytes | str  # a str stands for its UTF-8 bytes
    invoked: float
    acked: float | None = None  # None: outcome unknown
    slot: int | None = None
    #: The command's index in its slot's batch (None: not known, slot alone is checked).
    index: int | None = None


@dataclass(slots=True)
class Report:
    """What `check` found. `ok` when nothing was lost, duplicated or reordered."""

    acknowledged: int = 0
    unknown: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    misplaced: list[str] = field(default_factory=list)
    unproposed: list[str] = field(default_factory=list)
    reordered: list[str] = field(default_factory=list)

    @property
    def linearizable(self) -> bool:
        return not (self.lost or self.duplicated or self.misplaced or self.unproposed
                    or self.reordered)

    @property
    def ok(self) -> bool:
        return self.linearizable

    def summary(self) -> str:
        return (f"proposals acknowledged: {self.acknowledged}, lost: {len(self.lost)}, "
                f"duplicated: {len(self.duplicated)}, "
                f"linearizable: {'yes' if self.linearizable else 'no'}")

    def problems(self) -> list[str]:
        """One line per anomaly (empty when `ok`)."""
        lines = []
        for name in ("lost", "duplicated", "misplaced", "unproposed", "reordered"):
            for item in getattr(self, name):
                lines.append(f"{name}: {item}")
        return lines


def check(history: list[Operation], log: list[dict], *,
          others: frozenset[str] = frozenset()) -> Report:
    """Check `history` against `log`, the decided log (`paxosctl decided -o json`).

    `log` entries are dicts with slot, index, value (bytes, or text), request_id,
    noop, in log order. Entries whose request id is in `others` (proposed by someone
    outside this history) are not reported as unproposed, nor are the cluster's own
    configuration changes (`paxosctl scale`, `replace`: reserved request ids).
    """
    report = Report()
    by_id = {op.request_id: op for op in history}
    position: dict[str, int] = {}
    for index, entry in enumerate(log):
        if entry.get("noop"):
            continue
        rid = entry["request_id"]
        op = by_id.get(rid)
        if op is None:
            if rid not in others and not is_config_request(rid):
                report.unproposed.append(f"{rid}={entry['value']!r} in slot {entry['slot']}")
            continue
        if rid in position:
            report.duplicated.append(f"{rid} in slots {log[position[rid]]['slot']} "
                                     f"and {entry['slot']}")
            continue
        if _bytes(entry["value"]) != _bytes(op.value):
            report.unproposed.append(f"{rid} decided {entry['value']!r}, "
                                     f"proposed {op.value!r}")
        position[rid] = index

    for op in history:
        if op.acked is None:
            report.unknown += 1
            continue
        report.acknowledged += 1
        if op.request_id not in position:
            report.lost.append(f"{op.request_id} (acknowledged at slot {op.slot})")
        else:
            entry = log[position[op.request_id]]
            if entry["slot"] != op.slot or (op.index is not None
                                            and entry.get("index", op.index) != op.index):
                report.misplaced.append(
                    f"{op.request_id} acknowledged at {_at(op.slot, op.index)}, in the log at "
                    f"{_at(entry['slot'], entry.get('index') if op.index is not None else None)}")

    # Real time: sweep invocations in order, knowing the latest log position
    # of every operation acknowledged before each invocation.
    acks = sorted((op.acked, position[op.request_id], op.request_id) for op in history
                  if op.acked is not None and op.request_id in position)
    invocations = sorted((op.invoked, op.request_id) for op in history
                         if op.request_id in position)
    highest = -1
    highest_id = ""
    i = 0
    for invoked, rid in invocations:
        while i < len(acks) and acks[i][0] < invoked:
            if acks[i][1] > highest:
                highest, highest_id = acks[i][1], acks[i][2]
            i += 1
        if position[rid] < highest:
            report.reordered.append(
                f"{rid} (slot {log[position[rid]]['slot']}) was sent after {highest_id} "
                f"(slot {log[highest]['slot']}) was acknowledged, yet comes before it")
    return report


def _at(slot: int | None, index: int | None) -> str:
    """A position as text: "SLOT.INDEX", or "slot SLOT" when the index is not known."""
    return f"slot {slot}" if index is None else f"{slot}.{index}"


def _bytes(value: object) -> object:
    """A value as bytes, whichever way it was written down: bytes, text, or
    `decided -o json`'s {"base64": ...} for bytes that are not UTF-8."""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dict) and isinstance(value.get("base64"), str):
        return base64.b64decode(value["base64"])
    return value
