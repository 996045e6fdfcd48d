"""Log lines that a peer or client cannot flood, and untrusted text made safe to log.

An agent logs a warning for each connection it refuses, each malformed
message and each client error. Anyone who can connect can cause those at
the rate they connect, so each *kind* of warning is written at most once
per `interval` seconds; the next line of that kind says how many were
suppressed in between. A run of suppressed lines that is never followed
by another of its kind is not reported (the counters in the heartbeat
are: `paxos_connections_refused_total`, `paxos_messages_dropped_total`).

`clip` makes a value that came off the wire safe for a log line or a
REFUSE text: escaped (no newlines or terminal escapes) and cut short.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

#: Seconds between two lines of one kind, at most one line per kind.
INTERVAL = 5.0
#: Characters of an untrusted value kept by `clip`.
CLIP_CHARS = 64


def clip(value: object, limit: int = CLIP_CHARS) -> str:
    """`value` as an escaped, one-line repr of at most about `limit` characters."""
    if isinstance(value, (bytes, bytearray)):
        head = bytes(value[:limit])
        total = len(value)
    elif isinstance(value, str):
        head = value[:limit]
        total = len(value)
    else:  # a number or a structure: its repr, itself cut short
        text = repr(value) if not isinstance(value, int) or value.bit_length() < 256 \
            else f"<an int of {value.bit_length()} bits>"
        head = text[:limit]
        total = len(text)
        return head if total <= limit else f"{head}... ({total} chars)"
    text = repr(head)
    return text if total <= limit else f"{text}... ({total} in all)"


class RateLimitedLog:
    """Writes at most one line per kind per `interval` to `logger`."""

    def __init__(self, logger: logging.Logger, interval: float = INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._interval = interval
        self._clock = clock
        #: kind -> (when its last line was written, lines suppressed since).
        self._kinds: dict[str, tuple[float, int]] = {}

    def log(self, level: int, kind: str, message: str, *args: object,
            extra: dict | None = None) -> bool:
        """Log `message % args` unless a line of `kind` was written less than
        `interval` ago; True if it was written. `extra` goes to the record
        (`records.event(...)` makes it one of the agent's events)."""
        now = self._clock()
        last = self._kinds.get(kind)
        if last is not None and now - last[0] < self._interval:
            self._kinds[kind] = (last[0], last[1] + 1)
            return False
        suppressed = last[1] if last is not None else 0
        self._kinds[kind] = (now, 0)
        if suppressed:
            message += f" ({suppressed} more like this suppressed in the last %.0f s)"
            args = (*args, now - last[0])  # type: ignore[index]
        self._log.log(level, message, *args, extra=extra)
        return True

    def warning(self, kind: str, message: str, *args: object, extra: dict | None = None) -> bool:
        return self.log(logging.WARNING, kind, message, *args, extra=extra)
