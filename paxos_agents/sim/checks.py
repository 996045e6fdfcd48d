"""The invariants the simulator checks after every step.

- Agreement: no two learners ever decide different values for one slot.
- Validity: only submitted commands (or no-ops) are decided.
- Integrity: a request id is applied at most once, and every learner
  names the same slot as where it was first decided.
- Prefix: every learner's applied log is a prefix of one common log.
"""

from __future__ import annotations

from ..core.commands import Value
from ..core.learner import Learner, LogEntry
from ..core.ready import Applied


class Violation(Exception):
    """A safety property broke. The message says which and where."""


class Checker:
    """Accumulates what learners decided and applied; raises `Violation`."""

    def __init__(self) -> None:
        #: request id -> payload, for every command a client submitted.
        self.submitted: dict[str, str] = {}
        #: slot -> (value, the learner that decided it first).
        self.chosen: dict[int, tuple[Value, str]] = {}
        #: request id -> slot where it was first decided.
        self.first_slot: dict[str, int] = {}
        #: The one log every learner's log must be a prefix of.
        self.log: list[LogEntry] = []
        self._checked: dict[str, int] = {}
        self._log_rids: set[str] = set()
        #: request id -> slot reported to the client (first acknowledgement).
        self.acked: dict[str, int] = {}

    def submit(self, request_id: str, payload: str) -> None:
        self.submitted[request_id] = payload

    def decided(self, learner: str, slot: int, value: Value) -> None:
        """A learner decided `value` in `slot` (agreement and validity)."""
        seen = self.chosen.get(slot)
        if seen is None:
            for command in value:
                if self.submitted.get(command.request_id) != command.payload:
                    raise Violation(
                        f"validity: slot {slot} decided at {learner} holds "
                        f"{command.request_id}={command.payload!r}, which nobody submitted"
                    )
            self.chosen[slot] = (value, learner)
        elif seen[0] != value:
            raise Violation(
                f"agreement: slot {slot} decided {_show(seen[0])} at {seen[1]} "
                f"and {_show(value)} at {learner}"
            )

    def applied(self, learner: str, event: Applied) -> None:
        """A learner applied (or answered a duplicate of) a command."""
        rid = event.command.request_id
        first = self.first_slot.setdefault(rid, event.first_slot)
        if first != event.first_slot:
            raise Violation(
                f"integrity: {rid} first decided in slot {first} per one learner "
                f"and slot {event.first_slot} per {learner}"
            )
        self.acked.setdefault(rid, event.first_slot)

    def learner_log(self, learner: Learner, *, rebuilt: bool = False) -> None:
        """Check the entries `learner` applied since the last call (prefix, integrity)."""
        start = 0 if rebuilt else self._checked.get(learner.node_id, 0)
        log = learner.log
        for i in range(start, len(log)):
            entry = log[i]
            if i < len(self.log):
                if self.log[i] != entry:
                    raise Violation(
                        f"prefix: entry {i} of {learner.node_id}'s log is {entry} "
                        f"but another learner has {self.log[i]}"
                    )
            else:
                if entry.request_id is not None:
                    if entry.request_id in self._log_rids:
                        raise Violation(
                            f"integrity: {entry.request_id} applied twice "
                            f"(again in slot {entry.slot} at {learner.node_id})"
                        )
                    self._log_rids.add(entry.request_id)
                self.log.append(entry)
        self._checked[learner.node_id] = len(log)


def _show(value: Value) -> str:
    if not value:
        return "no-op"
    return "[" + ", ".join(f"{c.request_id}={c.payload!r}" for c in value) + "]"
