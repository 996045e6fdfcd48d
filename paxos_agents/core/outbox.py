"""The buffer a node's roles write into between two `Node.ready()` calls.

Roles never send or persist themselves; they record here what must become
durable and what to send, and `Node.ready()` hands it all to the runtime
as one `Ready` (see ready.py for the ordering contract).
"""

from __future__ import annotations

from .commands import Value
from .ids import Ballot
from .messages import Message, Vote
from .ready import AppliedSlot, LogEntry, Persist, Ready


class Outbox:
    """Pending durable changes and messages of one node."""

    __slots__ = ("promised", "votes", "compacted", "decisions", "applied_upto", "requests",
                 "log_start", "round", "floor", "after_persist", "now", "applied", "logged")

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.promised: Ballot | None = None
        self.votes: dict[int, Vote] = {}
        self.compacted: int | None = None
        self.decisions: dict[int, Value] = {}
        self.applied_upto: int | None = None
        self.requests: list[tuple[str, int]] = []
        self.log_start: int | None = None
        self.round: int | None = None
        self.floor: int | None = None
        self.after_persist: list[Message] = []
        self.now: list[Message] = []
        self.applied: list[AppliedSlot] = []
        self.logged: list[LogEntry] = []

    def drain(self) -> Ready:
        """Return everything recorded so far as a `Ready` and start empty."""
        persist = Persist(
            promised=self.promised,
            votes=tuple(self.votes.values()),
            compacted=self.compacted,
            decisions=tuple(self.decisions.items()),
            applied=self.applied_upto,
            requests=tuple(self.requests),
            log_start=self.log_start,
            round=self.round,
            floor=self.floor,
        )
        ready = Ready(persist, self.after_persist, self.now, self.applied, self.logged)
        self._reset()
        return ready
