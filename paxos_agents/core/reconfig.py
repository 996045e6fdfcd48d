"""A proposer's side of reconfiguration (configs.py, the alpha approach).

What a proposer must do because slot s belongs to config(s), kept apart
from the Multi-Paxos rules in proposer.py, which composes one
`Reconfiguration`:

- the history, fed with decisions in slot order and persisted when it
  gains a change (`feed`, `set_history`), or told more by a learner's
  `Stored` report (`merged`);
- phase 1 per configuration: which acceptors this ballot's Prepare went
  to, asking the members of each known configuration that governs a slot
  >= the first slot (`prepare_missing`), and when a leader began waiting
  for new members' promises (`waiting_since`); `Promises` (promises.py)
  holds what they answered;
- the alpha bound: a leader sends Accept for s only once config(s) is
  known and a majority of it promised (`usable`);
- what learners reported durable, hence whether a change is in force
  (`stored_by_all`, `pending_change`), and building a config command
  (`config_command`).

It sends only Prepares, into the proposer's outbox, after the persist of
the ballot's round (the proposer persisted that round before its first
Prepare under it).
"""

from __future__ import annotations

from typing import Callable, Collection, Iterable, Mapping

from .commands import Command, Value
from .configs import Config, ConfigError, History, config_command, is_config_request
from .ids import Ballot
from .messages import Prepare
from .outbox import Outbox
from .promises import Promises


class Reconfiguration:
    """The configurations as one proposer knows them, and its phase 1 across them."""

    __slots__ = ("node_id", "history", "stored", "_out", "_adopt", "_asked", "_waiting_since")

    def __init__(self, node_id: str, out: Outbox, history: History,
                 adopt: Callable[[History], History]) -> None:
        """`adopt` turns a history into the one this proposer keeps (a planted
        bug reads it otherwise); it is applied to `history` and every merged one."""
        self.node_id = node_id
        self._out = out
        self._adopt = adopt
        #: The configurations, fed with decisions in slot order (configs.py).
        self.history: History = adopt(history)
        #: learner -> the highest slot it reported durable (`Stored`).
        self.stored: dict[str, int] = {}
        #: Acceptors sent the current ballot's Prepare.
        self._asked: set[str] = set()
        #: When, as leader, we last prepared the new members of a configuration.
        self._waiting_since: int | None = None

    # -------------------------------------------------- phase 1 per configuration

    def new_ballot(self) -> None:
        """A new phase 1: nobody has been asked under it yet."""
        self._asked = set()
        self._waiting_since = None

    def prepare_missing(self, ballot: Ballot, first_slot: int, now: int, leader: bool) -> None:
        """Send `ballot`'s Prepare to every member of a known configuration
        governing a slot >= `first_slot` that has not been asked yet (from that
        configuration's first slot, if later). A leader asking new members
        starts waiting for them (`waiting_since`)."""
        for config in self.history.configs_from(first_slot):
            first = max(first_slot, config.first_slot)
            for acceptor in config.acceptors:
                if acceptor not in self._asked:
                    self._asked.add(acceptor)
                    if leader and self._waiting_since is None:
                        self._waiting_since = now
                    self._out.after_persist.append(Prepare(
                        src=self.node_id, dst=acceptor, ballot=ballot, first_slot=first))

    def prepared(self, promises: Promises, first_slot: int) -> bool:
        """Whether a majority of each known configuration from `first_slot` promised."""
        return all(promises.covers(c) for c in self.history.configs_from(first_slot))

    @property
    def waiting_since(self) -> int | None:
        """When a leader began waiting for new members' promises (None: not waiting)."""
        return self._waiting_since

    def stop_waiting(self) -> None:
        """Every new member we need promised, or we no longer lead."""
        self._waiting_since = None

    def usable(self, config: Config, promises: Promises, ballot: Ballot, first_slot: int,
               now: int) -> bool:
        """Whether a leader may send Accepts of `config`'s slots: a majority of
        it promised `ballot`. If not, its members are asked first (those asked
        already, whose promises were lost, are not asked again: a second
        Prepare under one ballot is refused; the proposer runs phase 1 again
        once it waited `election_ticks`)."""
        if promises.covers(config):
            return True
        self.prepare_missing(ballot, first_slot, now, leader=True)
        if self._waiting_since is None:
            self._waiting_since = now
        return False

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
        return self.history.merged(self._adopt(other))

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
