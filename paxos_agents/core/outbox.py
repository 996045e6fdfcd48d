"""The buffer a node's roles write into between two `Node.ready()` calls.

Roles never send or persist themselves; they record here what must become
durable and what to send, and `Node.ready()` hands it all to the runtime
as one `Ready` (see ready.py for the ordering contract).
"""

from __future__ import annotations

from .commands import Value
from .ids import Ballot
from .messages import Message, Vote
from .ready import Applied, Persist, Ready


class Outbox:
    """Pending durable changes and messages of one node."""

    __slots__ = ("promised", "votes", "decisions", "round", "floor", "after_persist", "now",
                 "applied")

    def __init__(self) -> None:
        self.promised: Ballot | None = None
        self.votes: dict[int, Vote] = {}
        self.decisions: dict[int, Value] = {}
        self.round: int | None = None
        self.floor: int | None = None
        self.after_persist: list[Message] = []
        self.now: list[Message] = []
        self.applied: list[Applied] = []

    def drain(self) -> Ready:
        """Return everything recorded so far as a `Ready` and start empty."""
        persist = Persist(
            promised=self.promised,
            votes=tuple(self.votes.values()),
            decisions=tuple(self.decisions.items()),
            round=self.round,
            floor=self.floor,
        )
        ready = Ready(persist, self.after_persist, self.now, self.applied)
        self.promised = None
        self.votes = {}
        self.decisions = {}
        self.round = None
        self.floor = None
        self.after_persist = []
        self.now = []
        self.applied = []
        return ready
