"""A proposer's side of reconfiguration (configs.py, the alpha approach).

What a proposer must do because slot s belongs to config(s), kept apart
from the Multi-Paxos rules in proposer.py, which composes one
`Reconfiguration`:

- the history, fed with decisions in slot order and persisted when it
  gains a change (`feed`, `set_history`), or told more by a learner's
  `Stored` report (`merged`);
- what learners reported durable, hence whether a change is in force
  (`stored_by_all`, `pending_change`), and building a config command
  (`config_command`).

Phase 1 across the configurations (whom a ballot asked, whether a majority
of each promised) is the `Election`'s (election.py), which reads this
history; the alpha bound (config(s) must be known before an Accept for s)
is `History.config_for`. This room sends nothing; it persists the history
(`Outbox.note_history`) when it gains a change.
"""

from __future__ import annotations

from typing import Collection, Iterable, Mapping

from .commands import Command, Value
from .configs import Config, ConfigError, History, config_command, is_config_request
from .outbox import Outbox


class Reconfiguration:
    """The configurations as one proposer knows them, and the learners' reports."""

    __slots__ = ("history", "stored", "_out")

    def __init__(self, out: Outbox, history: History) -> None:
        """`history` is read through `adopt`, as is every one merged later."""
        self._out = out
        #: The configurations, fed with decisions in slot order (configs.py).
        self.history: History = self.adopt(history)
        #: learner -> the highest slot it reported durable (`Stored`).
        self.stored: dict[str, int] = {}

    def adopt(self, history: History) -> History:
        """The history this proposer keeps when told `history` (as told; the
        simulator's NaiveSwap bug reads it otherwise)."""
        return history

    # ------------------------------------------------------------------ history

    def feed(self, chosen: Mapping[int, Value]) -> History:
        """The history fed with the decided values in `chosen` from its `known` slot on."""
        history = self.history
        while history.known in chosen:
            history = history.fed(history.known, chosen[history.known])
        return history

    def merged(self, other: History | None) -> History:
        """The history after hearing `other` (a learner's, read as we read ours)."""
        if other is None or other.known <= self.history.known:
            return self.history
        return self.history.merged(self.adopt(other))

    def set_history(self, history: History) -> tuple[Config, ...]:
        """Adopt `history`; return the configurations it adds (then persisted with
        the next `Ready`: a change decided or learned)."""
        old = self.history
        self.history = history
        if len(history.configs) == len(old.configs):
            return ()
        self._out.note_history(history)
        return history.configs[len(old.configs):]

    # ------------------------------------------------- learners, changes in force

    def note_stored(self, learner: str, upto: int) -> None:
        """`learner` reported its log durable up to `upto`."""
        if upto > self.stored.get(learner, -1):
            self.stored[learner] = upto

    def stored_by_all(self, learners: Iterable[str]) -> int:
        """The lowest slot up to which every one of `learners` reported its log
        durable (-1: one has not reported)."""
        learners = tuple(learners)
        if any(learner not in self.stored for learner in learners):
            return -1
        return min(self.stored[learner] for learner in learners)

    def pending_change(self, learners: Iterable[str]) -> Config | None:
        """The latest configuration if it is decided but not yet in force (see configs.py)."""
        latest = self.history.latest
        return None if self.history.in_force(self.stored_by_all(learners)) is latest else latest

    def config_command(self, acceptors: tuple[str, ...], learners: Iterable[str],
                       outstanding: Collection[str], issued: int) -> Command:
        """The command "the next epoch has `acceptors`", stamped `issued`.

        Raises `ConfigError` for an empty set or a repeated name, while a
        change is pending (decided, not yet in force), or while one in
        `outstanding` (this proposer's undecided request ids) is not decided
        yet. Names never seen are fine: they are new acceptors (they start empty).
        """
        if not acceptors:
            raise ConfigError("a configuration needs at least one acceptor")
        if len(set(acceptors)) != len(acceptors) or not all(
                isinstance(n, str) and n for n in acceptors):
            raise ConfigError(f"acceptor names must be distinct, non-empty strings: {acceptors}")
        pending = self.pending_change(learners)
        if pending is not None:
            raise ConfigError(f"a change is in progress: epoch {pending.epoch} governs slots from "
                              f"{pending.first_slot}, not yet stored by every learner")
        if any(is_config_request(r) for r in outstanding):
            raise ConfigError("a configuration change proposed here is not decided yet")
        return config_command(self.history.latest.epoch + 1, acceptors, issued=issued)
