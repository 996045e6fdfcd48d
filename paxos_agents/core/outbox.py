"""The buffer a node's roles write into between two `Node.ready()` calls.

Roles never send or persist themselves; they record here what must become
durable and what to send, and `Node.ready()` hands it all to the runtime
as one `Ready` (see ready.py for the ordering contract).
"""

from __future__ import annotations

from .commands import Value
from .configs import History
from .ids import Ballot
from .messages import Message, Vote
from .ready import AppliedSlot, LogEntry, Persist, Ready


class Outbox:
    """Pending durable changes and messages of one node."""

    __slots__ = ("promised", "votes", "compacted", "decisions", "applied_upto", "requests", "request_keys",
                 "log_start", "round", "floor", "send_after_persist", "send", "applied", "logged",
                 "configs", "history_known", "id_filter")

    def __init__(self) -> None:
        #: `known` of the configuration history last handed out to persist
        #: (across drains): a role's history is persisted only if it knows more.
        self.history_known = -1
        self._reset()

    def note_history(self, history: History) -> None:
        """Persist `history` with this `Ready` unless one that knows as much was.

        A replica's proposer and learner keep one history each; both are
        prefixes of one, so the one fed further holds every change the
        other holds, and the stored one never goes back.
        """
        if history.known > self.history_known:
            self.history_known = history.known
            self.configs = history.to_json()

    def _reset(self) -> None:
        self.promised: Ballot | None = None
        self.votes: dict[int, Vote] = {}
        self.compacted: int | None = None
        self.decisions: dict[int, Value] = {}
        self.applied_upto: int | None = None
        self.requests: list[tuple[str, int]] = []
        #: Per slot, the keys of its `requests` and their positions (see `Persist`).
        self.request_keys: list[tuple[int, list[int], list[int] | None]] = []
        self.log_start: int | None = None
        self.round: int | None = None
        self.floor: int | None = None
        self.configs: list | None = None
        self.id_filter: tuple[int, bytes] | None = None
        # Named as in `Ready`, which hands them to the runtime.
        self.send_after_persist: list[Message] = []
        self.send: list[Message] = []
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
            request_keys=tuple(self.request_keys),
            log_start=self.log_start,
            round=self.round,
            floor=self.floor,
            configs=self.configs,
            id_filter=self.id_filter,
        )
        ready = Ready(persist, self.send_after_persist, self.send, self.applied, self.logged)
        self._reset()
        return ready
