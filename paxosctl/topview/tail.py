"""The last protocol records of each agent, for the pane under top's table.

Read over the data path with paxosctl.observe.records.collect (the INFO op
"protocol"), from where the last pass left each agent (`since` = the last
seq it gave), so a pass fetches only what is new. The first pass asks each
agent for its newest seq and then reads back `BACKLOG` records from there,
not its whole ring (8000 by default). An agent that restarted (another
incarnation) numbers from 1 again: its tail starts over, read from 0.

The pane leaves out the periodic traffic (`PERIODIC`: a leader's
heartbeats, the learners' Stored reports), which would fill it many
times a second on an idle cluster; `paxosctl trace` shows everything.
Records of all agents are listed by their wall time: a label, good enough
to read a tail on one host (the trace orders by causality, never clocks).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Iterable, Mapping

from ..endpoints import Endpoints
from ..observe.records import collect

#: Records kept per agent (the pane shows the newest that fit).
KEEP = 200

#: Records read back at the first pass: enough to find the last few that
#: are not periodic on an idle cluster (a leader records some 200
#: heartbeats a second).
BACKLOG = 2000

#: Kinds of records the pane leaves out: sent and received every few
#: milliseconds whatever the load.
PERIODIC = frozenset({"heartbeat", "stored"})

#: A seq beyond any agent's: `collect` after it returns no record, only the newest seq.
_NEWEST = 1 << 62


class RecordsTail:
    """Each agent's newest `KEEP` records other than the periodic ones."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self.tails: dict[str, deque[dict[str, Any]]] = {}
        self._since: dict[str, int] = {}
        self._incarnation: dict[str, Any] = {}

    def update(self, endpoints: Endpoints, names: Iterable[str]) -> None:
        """Read what each of `names` recorded since the last update; an agent
        that does not answer keeps its tail and is asked again next time."""
        names = list(dict.fromkeys(names))
        new = [n for n in names if n not in self._since]
        if new:
            for name, got in collect(endpoints, new, _NEWEST).items():
                if not got.error:
                    self._since[name] = max(got.last - BACKLOG, 0)
                    self._incarnation[name] = got.incarnation
        known = [n for n in names if n in self._since]
        if not known:
            return
        restarted = []
        for name, got in collect(endpoints, known, dict(self._since)).items():
            if got.error:
                continue
            if got.incarnation != self._incarnation.get(name):
                restarted.append(name)
                continue
            self._add(name, got.records)
            self._since[name] = got.last
        if restarted:  # a new life numbers from 1: read it whole (it is young)
            for name, got in collect(endpoints, restarted, 0).items():
                if not got.error:
                    self.tails.pop(name, None)
                    self._incarnation[name] = got.incarnation
                    self._add(name, got.records)
                    self._since[name] = got.last

    def _add(self, name: str, records: list[dict[str, Any]]) -> None:
        tail = self.tails.setdefault(name, deque(maxlen=self.keep))
        tail.extend(r for r in records if r.get("kind") not in PERIODIC)

    def lines(self, agent: str | None, count: int) -> list[str]:
        """The newest `count` records of `agent` (None: of every agent,
        by wall time), one line each, oldest first."""
        if count <= 0:
            return []
        if agent is not None:
            chosen = list(self.tails.get(agent, ()))
        else:
            chosen = sorted((r for tail in self.tails.values() for r in tail),
                            key=lambda r: r.get("at") or 0.0)
        return ([record_line(r, with_agent=agent is None) for r in chosen[-count:]]
                or ["(no records yet)"])


def record_line(r: Mapping[str, Any], *, with_agent: bool = True) -> str:
    """One record as a line: who (unless `with_agent` is false: the pane
    shows one agent's), its number, what and with whom, the ballot, the
    slots, the value's digest and its number of commands:

        proposer-0 #812 send accept -> acceptor-1 b3.proposer-0 slot 41 v9f3a01c2 x12
    """
    direction = r.get("dir")
    peer = r.get("peer")
    arrow = {"send": "->", "recv": "<-"}.get(direction or "", "")
    parts = [str(r.get("agent", "?"))] if with_agent else []
    parts += [f"#{r.get('seq', '?')}", str(direction or "?"), str(r.get("kind", "?"))]
    if peer:
        parts += [arrow, str(peer)]
    if r.get("ballot"):
        parts.append(f"b{r['ballot']}")
    slots = r.get("slots")
    if isinstance(slots, list) and len(slots) == 2:
        lo, hi = slots
        parts.append(f"slot {lo}" if lo == hi else f"slots {lo}.." + ("" if hi is None else str(hi)))
    if r.get("value"):
        parts.append(f"v{r['value']}")
    if r.get("commands") is not None:
        parts.append(f"x{r['commands']}")
    if r.get("promised"):
        parts.append(f"promised {r['promised']}")
    if r.get("votes"):
        parts.append(f"votes {len(r['votes'])}")
    if r.get("dropped"):
        parts.append(f"DROPPED ({r['dropped']})")
    return " ".join(parts)
