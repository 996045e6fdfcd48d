"""An agent's own recent records, kept in memory: its log lines and its events.

An agent on a host of its own has no supervisor keeping its log or its
lifecycle; `paxosctl logs` and `paxosctl events` ask the agent instead
(the INFO frame, queries.py). Both are fed by the agent's ordinary
logging, so nothing is recorded twice and nothing is on the per-command
path (the data path does not log per command):

- `LogRing`: the last `LOG_LINES` records, formatted as the agent's log
  line (the engine keeps the full log: stdout, the journal, the pod log);
- `EventRing`: the last `EVENTS` records that carry an event kind, i.e.
  that were logged with `extra=event("kind")`: started, admitted or
  refused, peers welcomed or refused (with the reason), the leader seen,
  the membership version changed, a configuration decided or in force,
  admin frames taken or refused. An event is {seq, at, type, kind,
  message}, the shape of the supervisor's events.

Each record gets a sequence number, counting from 1 in this incarnation;
a reader pages with `since(seq)`. Both rings are bounded: the oldest
records go first, and a reader learns it missed some when the first one
it gets is past the one it asked after (`Page.missed`).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

#: Log lines an agent keeps in memory (`paxosctl logs AGENT`): about 200 KiB.
LOG_LINES = 2000
#: Events an agent keeps in memory (`paxosctl events`).
EVENTS = 500
#: Records one page holds at most (a reply must fit a frame comfortably).
PAGE = 500

#: The attribute of a log record that makes it an event (see `event`).
EVENT_ATTR = "paxos_event"


def event(kind: str) -> dict[str, str]:
    """`extra=` for a log call that is also one of the agent's events."""
    return {EVENT_ATTR: kind}


@dataclass(frozen=True, slots=True)
class Page:
    """Records after a sequence number: `items`, the newest `last` seq, and
    whether records between the one asked after and the first given were
    dropped from the ring (`missed`)."""

    items: list[dict[str, Any]]
    last: int
    missed: bool


class _Ring(logging.Handler):
    """A bounded, numbered deque of records (thread-safe: the HTTP thread logs too)."""

    def __init__(self, size: int) -> None:
        super().__init__(logging.INFO)
        self._items: deque[dict[str, Any]] = deque(maxlen=size)
        self._seq = 0
        self._guard = threading.Lock()

    def keep(self, record: logging.LogRecord) -> dict[str, Any] | None:
        raise NotImplementedError

    def emit(self, record: logging.LogRecord) -> None:
        try:
            item = self.keep(record)
        except Exception:  # a record that cannot be formatted must not break the agent
            self.handleError(record)
            return
        if item is None:
            return
        with self._guard:
            self._seq += 1
            item["seq"] = self._seq
            self._items.append(item)

    def since(self, seq: int, limit: int = PAGE) -> Page:
        """Up to `limit` records numbered above `seq`, oldest first."""
        with self._guard:
            items = [i for i in self._items if i["seq"] > seq][:limit]
            last = self._seq
        first = items[0]["seq"] if items else last + 1
        # Empty: the newest number, which is below `seq` when the agent
        # restarted since (its numbers start again; the reader starts over).
        return Page(items, items[-1]["seq"] if items else last, first > seq + 1 and seq < last)


class LogRing(_Ring):
    """The agent's last log lines, formatted as its log handler formats them."""

    def keep(self, record: logging.LogRecord) -> dict[str, Any]:
        return {"at": record.created, "line": self.format(record)}


class EventRing(_Ring):
    """The agent's last events: the records logged with `extra=event(kind)`."""

    def keep(self, record: logging.LogRecord) -> dict[str, Any] | None:
        kind = getattr(record, EVENT_ATTR, None)
        if kind is None:
            return None
        return {"at": record.created, "kind": kind,
                "type": "Warning" if record.levelno >= logging.WARNING else "Normal",
                "message": record.getMessage()}


class Records:
    """Both rings of one agent process, installed on the root logger."""

    def __init__(self, name: str, log_lines: int = LOG_LINES, events: int = EVENTS) -> None:
        self.logs = LogRing(log_lines)
        self.logs.setFormatter(logging.Formatter(
            f"%(asctime)s {name}[%(process)d] %(levelname)s %(message)s"))
        self.events = EventRing(events)

    def install(self) -> "Records":
        root = logging.getLogger()
        for ring in (self.logs, self.events):
            if ring not in root.handlers:
                root.addHandler(ring)
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)
        return self
