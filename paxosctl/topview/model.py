"""What `paxosctl top` shows, computed without a terminal: pure functions.

A `Sample` is one agent at one instant: what the supervisor says of it
(state, restarts; `None` without a supervisor) merged with what the agent
says of itself (its own view, paxos_agents.runtime.selfview: counters,
ballot, the persist histogram, the slots it applied and knows decided).
A `Snapshot` is every agent's sample taken in one pass. `rows(before,
now)` turns two snapshots into the table: the rates are the deltas of the
counters the agents already report, divided by the time between the two
passes; a counter that went down (the agent restarted: counts are per
incarnation) gives no rate for that interval rather than a negative one.

The columns:

- CMD/S: commands per second: at a learner the commands it applied
  (`applied_commands`), else at a proposer the commands its clients gave it
  (`client_commands`); an acceptor sees values, not commands: `-`;
- SLOT/S: slots per second: at a learner the slots it learned decided
  (`decided`), else at a proposer the slots it led to a decision
  (`proposer_decisions`), else at an acceptor the Accepts it voted on
  (`received["Accept"]`: one slot each);
- PERSIST99: the 99th percentile of the agent's persists over the interval
  (one SQLite transaction, fsync included: `persist` in the heartbeat
  report, the `paxos_acceptor_persist_duration_seconds` histogram), as
  the upper bound of the bucket it falls in ("<2.5ms"); `-` when it made
  no persist in the interval. The agents keep no per-fsync timing of
  their own: this histogram is the finest there is;
- LAG: at a learner, the slots between the highest slot any agent knows
  decided and the highest it applied with no gap below;
- RESTARTS: the supervisor's count; without a supervisor, the restarts
  top saw itself (the incarnation changed between two passes).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from paxos_agents.runtime.persister import PERSIST_BUCKETS

#: Upper bounds (seconds) of the persist histogram's buckets, as the agents
#: keep them; the last bucket counts what is above every bound.
PERSIST_BOUNDS: tuple[float, ...] = PERSIST_BUCKETS


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One agent at one instant."""

    name: str
    role: str                   # as the manifest says, or its roles joined by "," (no supervisor)
    state: str                  # the supervisor's state, or "answered" / "silent"
    answered: bool              # the agent answered its own view
    leader: bool = False
    ballot: str | None = None   # "round.node"
    incarnation: int | None = None
    restarts: int | None = None  # the supervisor's count (None: no supervisor)
    learner: bool = False
    applied: int | None = None          # highest slot applied with no gap below
    highest_decided: int | None = None  # highest slot it knows decided
    counters: Mapping[str, float] = field(default_factory=dict)
    persist: tuple[int, ...] = ()       # the persist histogram's buckets (not cumulative)


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """Every agent's sample from one pass, at `mono` (time.monotonic())."""

    mono: float
    cluster: str
    source: str                 # "supervisor" or "agents"
    leader: str | None
    agents: tuple[Sample, ...]

    @property
    def reached(self) -> bool:
        """Whether anyone answered: the supervisor, or at least one agent."""
        return self.source == "supervisor" or any(a.answered for a in self.agents)


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table; None is shown as "-"."""

    name: str
    state: str
    role: str
    leader: bool
    ballot: str | None
    commands_s: float | None
    slots_s: float | None
    persist_p99: float | None   # seconds; math.inf: above every bound
    lag: int | None
    restarts: int | None


class SortKey(enum.Enum):
    """The table's order; `s` steps through them in this order."""

    NAME = "name"
    RATE = "rate"   # commands/s then slots/s, highest first
    LAG = "lag"     # most behind first

    def next(self) -> SortKey:
        keys = list(SortKey)
        return keys[(keys.index(self) + 1) % len(keys)]


def commands(sample: Sample) -> float | None:
    """The counter CMD/S is the rate of (see the module docstring)."""
    c = sample.counters
    if "applied_commands" in c:
        return c["applied_commands"]
    if "proposer_decisions" in c:
        return c.get("client_commands")
    return None


def slots(sample: Sample) -> float | None:
    """The counter SLOT/S is the rate of (see the module docstring)."""
    c = sample.counters
    for key in ("decided", "proposer_decisions", "accepts_received"):
        if key in c:
            return c[key]
    return None


def rate(before: float | None, now: float | None, seconds: float) -> float | None:
    """(now - before) / seconds; None without both values, an interval, or
    when the counter went down (a restart started it again from zero)."""
    if before is None or now is None or seconds <= 0 or now < before:
        return None
    return (now - before) / seconds


def p99(before: Sequence[int], now: Sequence[int],
        bounds: Sequence[float] = PERSIST_BOUNDS) -> float | None:
    """The upper bound of the bucket holding the 99th percentile of the
    observations between two histograms (math.inf: above every bound);
    None when there were none, or when the histogram started again (a restart)."""
    if len(before) != len(now):
        before = [0] * len(now) if not before else before
        if len(before) != len(now):
            return None
    delta = [b - a for a, b in zip(before, now)]
    if any(d < 0 for d in delta):
        return None
    total = sum(delta)
    if total == 0:
        return None
    rank = math.ceil(0.99 * total)
    seen = 0
    for i, count in enumerate(delta):
        seen += count
        if seen >= rank:
            return bounds[i] if i < len(bounds) else math.inf
    return math.inf


def rows(before: Snapshot | None, now: Snapshot) -> list[Row]:
    """The table for `now`, with rates over the interval since `before`
    (none on the first pass: `before` is None), in `now`'s agent order."""
    seconds = now.mono - before.mono if before is not None else 0.0
    prior = {a.name: a for a in before.agents} if before is not None else {}
    highest = max((a.highest_decided for a in now.agents
                   if a.answered and a.highest_decided is not None), default=None)
    out = []
    for a in now.agents:
        was = prior.get(a.name)
        # Counters are per incarnation: across a restart there is no rate.
        if was is not None and (was.incarnation != a.incarnation or not a.answered):
            was = None
        lag = (highest - a.applied if a.learner and a.answered and highest is not None
               and a.applied is not None else None)
        out.append(Row(
            name=a.name, state=a.state, role=a.role,
            leader=a.leader or (now.leader == a.name), ballot=a.ballot,
            commands_s=rate(commands(was), commands(a), seconds) if was else None,
            slots_s=rate(slots(was), slots(a), seconds) if was else None,
            persist_p99=p99(was.persist, a.persist) if was else None,
            lag=max(lag, 0) if lag is not None else None,
            restarts=a.restarts))
    return out


def sort_rows(table: list[Row], key: SortKey) -> list[Row]:
    """`table` in the order `key` names; ties (and rows with no value) by name."""
    if key is SortKey.RATE:
        return sorted(table, key=lambda r: (-(r.commands_s or 0.0), -(r.slots_s or 0.0), r.name))
    if key is SortKey.LAG:
        return sorted(table, key=lambda r: (-(r.lag if r.lag is not None else -1), r.name))
    return sorted(table, key=lambda r: r.name)


def sample_from_view(name: str, view: Mapping[str, Any] | None, *, role: str | None = None,
                     state: str | None = None, restarts: int | None = None,
                     leader: bool | None = None) -> Sample:
    """A `Sample` from an agent's own view (the REPLY to an INFO `describe`:
    its heartbeat report and its WELCOME together; None: it did not
    answer), with what the supervisor says of it where it runs one."""
    if view is None:
        return Sample(name=name, role=role or "-", state=state or "silent", answered=False,
                      restarts=restarts, leader=bool(leader))
    roles = view.get("roles") or []
    ballot = view.get("ballot")
    stats = dict(view.get("stats") or {})
    received = view.get("received") or {}
    if "acceptor" in roles and "Accept" in received:
        stats["accepts_received"] = received["Accept"]
    own = view.get("leader")  # a proposer: whom it believes leads; else False
    persist = view.get("persist") or {}
    return Sample(
        name=name, role=role or ",".join(roles) or "-", state=state or "answered",
        answered=True,
        leader=leader if leader is not None else own == name,
        # [0, ""]: a proposer that has not started a round yet.
        ballot=(f"{ballot[0]}.{ballot[1]}" if isinstance(ballot, list) and len(ballot) == 2
                and ballot[1] else None),
        incarnation=view.get("incarnation"), restarts=restarts,
        learner="learner" in roles, applied=view.get("applied"),
        highest_decided=view.get("highest_decided"),
        counters=stats, persist=tuple(persist.get("buckets") or ()))


def format_rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def format_seconds(value: float | None) -> str:
    """A persist bound: "<2.5ms", "<1s", ">1s"; "-" when unknown."""
    if value is None:
        return "-"
    if math.isinf(value):
        return f">{PERSIST_BOUNDS[-1]:g}s"
    return f"<{value * 1000:g}ms" if value < 1 else f"<{value:g}s"


#: The table's columns: header, width, and how a row fills it.
COLUMNS: tuple[tuple[str, int, Any], ...] = (
    ("NAME", 11, lambda r: r.name),
    ("STATE", 9, lambda r: r.state),
    ("ROLE", 8, lambda r: r.role),
    ("L", 1, lambda r: "*" if r.leader else ""),
    ("BALLOT", 12, lambda r: r.ballot or "-"),
    ("CMD/S", 6, lambda r: format_rate(r.commands_s)),
    ("SLOT/S", 6, lambda r: format_rate(r.slots_s)),
    ("PERSIST99", 9, lambda r: format_seconds(r.persist_p99)),
    ("LAG", 5, lambda r: "-" if r.lag is None else str(r.lag)),
    ("RST", 3, lambda r: "-" if r.restarts is None else str(r.restarts)),
)

#: Columns right-aligned (numbers).
_RIGHT = {"CMD/S", "SLOT/S", "PERSIST99", "LAG", "RST"}


def table_lines(table: list[Row]) -> list[str]:
    """The header and one line per row, each at most 79 columns wide
    (an 80-column terminal; a name longer than its column is cut)."""
    def cell(header: str, width: int, text: str) -> str:
        text = text if len(text) <= width else text[:width - 1] + "~"
        return text.rjust(width) if header in _RIGHT else text.ljust(width)

    lines = [" ".join(cell(h, w, h) for h, w, _ in COLUMNS)]
    lines += [" ".join(cell(h, w, show(r)) for h, w, show in COLUMNS) for r in table]
    return [line.rstrip() for line in lines]
