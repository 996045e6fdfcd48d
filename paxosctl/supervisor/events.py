"""The supervisor's lifecycle events: what `paxosctl events` and `describe` show.

An event is one thing the supervisor saw or did to an agent (started,
running, exited, killed for missing heartbeats, stopped by the operator,
given up on) or to the cluster (its own loop stalled, chaos changed).
Each is logged once, where it is recorded, so the supervisor's log and
`paxosctl events` always tell the same story.

The log keeps the latest `CAPACITY` events in memory, numbered from 1
since the supervisor started: a reader asks for the events after the
last number it saw (`after`), as `kubectl get events -w` follows a
resource version. Like Kubernetes events they are not durable; the
supervisor's log file is.
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass
from typing import Any, Iterator

log = logging.getLogger("paxosctl.supervisor")

#: Events kept in memory; older ones remain only in the supervisor's log.
CAPACITY = 2000


@dataclass(frozen=True, slots=True)
class Event:
    """One lifecycle event. `agent` is None for an event of the whole
    cluster; `kind` is one word (started, running, exited, ...);
    `at` is the wall-clock time (seconds since the epoch)."""

    seq: int
    at: float
    agent: str | None
    kind: str
    message: str
    warning: bool

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": round(self.at, 3), "agent": self.agent,
                "kind": self.kind, "type": "Warning" if self.warning else "Normal",
                "message": self.message}


class EventLog:
    """The latest events, numbered; `record` also writes the log line."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._events: collections.deque[Event] = collections.deque(maxlen=capacity)
        self._seq = 0

    def record(self, agent: str | None, kind: str, message: str, *,
               warning: bool = False) -> Event:
        """Keep an event and log it (WARNING or INFO) as `agent: message`."""
        self._seq += 1
        event = Event(self._seq, time.time(), agent, kind, message, warning)
        self._events.append(event)
        log.log(logging.WARNING if warning else logging.INFO, "%s%s",
                f"{agent}: " if agent else "", message)
        return event

    @property
    def last_seq(self) -> int:
        return self._seq

    def after(self, seq: int, agent: str | None = None) -> Iterator[Event]:
        """Events numbered above `seq`, oldest first; only `agent`'s if given."""
        for event in self._events:
            if event.seq > seq and (agent is None or event.agent == agent):
                yield event

    def latest(self, agent: str, count: int) -> list[Event]:
        """`agent`'s latest `count` events, oldest first."""
        found = [e for e in self._events if e.agent == agent]
        return found[-count:]
