"""The invariants the simulator checks after every step.

- Agreement: no two learners ever decide different values for one slot.
- Validity: only submitted commands (or no-ops) are decided.
- Integrity: a request id is applied at most once, and every learner
  names the same slot as where it was first decided.
- Prefix: every learner's applied log agrees, slot by slot, with one common log.
- Compaction: an acceptor never compacts a slot that some learner has not
  yet stored durably (at some point; a learner may lose its disk later and
  copy the slot back from a peer).
- Quorum: every decided slot's value was accepted in one ballot by a
  majority of config(slot), the configuration the alpha rule gives for it
  (configs.py), computed here from the decided log itself. Checked once
  config(slot) is known (every slot <= slot - alpha decided somewhere).
"""

from __future__ import annotations

from ..core.commands import Value
from ..core.configs import History
from ..core.ids import Ballot
from ..core.messages import Vote
from ..core.ready import Applied, LogEntry


class Violation(Exception):
    """A safety property broke. The message says which and where."""


class Checker:
    """Accumulates what learners decided and applied; raises `Violation`."""

    def __init__(self, learners: tuple[str, ...] = (), acceptors: tuple[str, ...] = (),
                 alpha: int = 0) -> None:
        """`acceptors` and `alpha`: epoch 0 and the alpha rule, for the quorum
        check (skipped when `acceptors` is empty)."""
        #: request id -> payload, for every command a client submitted.
        self.submitted: dict[str, bytes] = {}
        #: slot -> (value, the learner that decided it first).
        self.chosen: dict[int, tuple[Value, str]] = {}
        #: request id -> slot where it was first decided.
        self.first_slot: dict[str, int] = {}
        #: slot -> the applied log's entries there, which every learner must agree on.
        self.log: dict[int, tuple[LogEntry, ...]] = {}
        #: request id -> the slot where the common log applied it.
        self._log_rids: dict[str, int] = {}
        self.learners = learners
        #: learner -> highest slot it ever stored durably (its applied prefix).
        self.stored_upto: dict[str, int] = {}
        #: request id -> slot reported to the client (first acknowledgement;
        #: EXPIRED if that was a refusal).
        self.acked: dict[str, int] = {}
        #: Request ids some try of which was refused as expired (retention).
        self.expired: set[str] = set()
        #: The true configuration history, fed with the decided prefix.
        self.history = History.initial(alpha, acceptors) if acceptors else None
        #: slot -> (ballot, value) -> acceptors that ever persisted that vote.
        self.votes: dict[int, dict[tuple[Ballot, Value], set[str]]] = {}
        #: Decided slots whose quorum is not checked yet (config unknown so far).
        self._unchecked: set[int] = set()

    def voted(self, acceptor: str, vote: Vote) -> None:
        """`acceptor` persisted `vote` (kept here even after it compacts it)."""
        if self.history is None:
            return
        by_ballot = self.votes.setdefault(vote.slot, {})
        by_ballot.setdefault((vote.ballot, vote.value), set()).add(acceptor)

    def _check_quorums(self) -> None:
        history = self.history
        while history.known in self.chosen:
            history = history.fed(history.known, self.chosen[history.known][0])
        self.history = history
        for slot in sorted(self._unchecked):
            config = history.config_for(slot)
            if config is None:
                break
            self._unchecked.discard(slot)
            value = self.chosen[slot][0]
            if not any(v == value and config.is_quorum(voters)
                       for (_, v), voters in self.votes.get(slot, {}).items()):
                raise Violation(
                    f"quorum: slot {slot} decided {_show(value)}, but no majority of its "
                    f"configuration (epoch {config.epoch}: {', '.join(config.acceptors)}) "
                    f"accepted it in one ballot")

    def submit(self, request_id: str, payload: bytes) -> None:
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
            if self.history is not None:
                self._unchecked.add(slot)
                self._check_quorums()
        elif seen[0] != value:
            raise Violation(
                f"agreement: slot {slot} decided {_show(seen[0])} at {seen[1]} "
                f"and {_show(value)} at {learner}"
            )

    def applied(self, learner: str, event: Applied) -> None:
        """A learner applied (or answered a duplicate of, or refused as
        expired) a command. An expired refusal applies nothing and says
        nothing of where the id was decided: the logs' agreement (`logged`)
        checks that every learner refused it alike."""
        rid = event.command.request_id
        if event.expired:
            self.expired.add(rid)
            self.acked.setdefault(rid, event.first_slot)  # answered: the client stops
            return
        first = self.first_slot.setdefault(rid, event.first_slot)
        if first != event.first_slot:
            raise Violation(
                f"integrity: {rid} first decided in slot {first} per one learner "
                f"and slot {event.first_slot} per {learner}"
            )
        self.acked.setdefault(rid, event.first_slot)

    def logged(self, learner: str, entries: list[LogEntry]) -> None:
        """`learner` appended `entries` to its applied log (prefix, integrity)."""
        by_slot: dict[int, list[LogEntry]] = {}
        for entry in entries:
            by_slot.setdefault(entry.slot, []).append(entry)
        for slot, mine in by_slot.items():
            theirs = self.log.get(slot)
            if theirs is None:
                for entry in mine:
                    rid = entry.request_id
                    if rid is not None:
                        if rid in self._log_rids and self._log_rids[rid] != slot:
                            raise Violation(
                                f"integrity: {rid} applied twice (slot {self._log_rids[rid]} "
                                f"and again in slot {slot} at {learner})"
                            )
                        self._log_rids[rid] = slot
                self.log[slot] = tuple(mine)
            elif theirs != tuple(mine):
                raise Violation(
                    f"prefix: slot {slot} of {learner}'s log is {mine} "
                    f"but another learner has {list(theirs)}"
                )

    def in_log(self, request_id: str) -> bool:
        """Whether the common applied log holds `request_id` (applied somewhere)."""
        return request_id in self._log_rids

    def stored(self, learner: str, upto: int) -> None:
        """`learner` made its applied prefix durable up to `upto`."""
        if upto > self.stored_upto.get(learner, -1):
            self.stored_upto[learner] = upto

    def compacted(self, acceptor: str, point: int) -> None:
        """`acceptor` deleted its votes below `point` (compaction)."""
        for learner in self.learners:
            if self.stored_upto.get(learner, -1) < point - 1:
                raise Violation(
                    f"compaction: {acceptor} dropped votes below slot {point} but "
                    f"{learner} has stored only up to {self.stored_upto.get(learner, -1)}"
                )

def _show(value: Value) -> str:
    if not value:
        return "no-op"
    return "[" + ", ".join(f"{c.request_id}={c.payload!r}" for c in value) + "]"
