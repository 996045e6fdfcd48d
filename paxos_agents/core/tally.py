"""The learner's vote count: which value a majority accepted, slot by slot.

A value is chosen when a majority of acceptors accepted it under one
ballot (Paxos Made Simple, section 2.3), so votes are counted per slot
*and* per ballot: three acceptors that accepted in three different
ballots decided nothing. Slot s is judged by config(s) (configs.py): a
vote from an acceptor that is not a member of config(s) is not counted,
and a majority of config(s) decides. While config(s) is not known yet
(s is more than alpha beyond what the learner applied) the vote is kept,
and `decidable` judges the kept votes once the history reveals it.

A `Tally` holds undecided slots only: the learner `forget`s a slot once
it is decided, by votes or otherwise (a Decide, state transfer).
"""

from __future__ import annotations

from .commands import Value
from .configs import Config, History
from .ids import Ballot
from .messages import Accepted

__all__ = ["Tally"]


class Tally:
    """slot -> ballot -> (the acceptors that accepted it, the value), undecided slots only."""

    def __init__(self) -> None:
        self._slots: dict[int, dict[Ballot, tuple[set[str], Value]]] = {}

    def __bool__(self) -> bool:
        """Whether any undecided slot has votes."""
        return bool(self._slots)

    def vote(self, m: Accepted, config: Config | None) -> Value | None:
        """Count `m` for its slot, judged by `config` (config(m.slot), None
        while unknown); the value it decides, or None if the slot is not
        decided yet (or `m`'s sender is not a member of `config`)."""
        if config is not None and m.src not in config.acceptors:
            return None
        ballot = self._ballot(m)
        by_ballot = self._slots.setdefault(m.slot, {})
        voters, _ = by_ballot.get(ballot) or (set(), m.value)
        voters.add(m.src)
        by_ballot[ballot] = (voters, m.value)
        if config is not None and config.is_quorum(voters):
            return m.value
        return None

    def forget(self, slot: int) -> None:
        """`slot` is decided: its votes no longer matter."""
        self._slots.pop(slot, None)

    def decidable(self, history: History, first: int) -> list[tuple[int, Value]]:
        """The kept slots from `first` on that `history` now decides, with
        their values, in slot order: judged by their configuration, up to
        the first slot whose configuration `history` does not know."""
        ready = []
        for slot in sorted(s for s in self._slots if s >= first):
            config = history.config_for(slot)
            if config is None:
                break
            for voters, value in self._slots[slot].values():
                if config.is_quorum(voters):
                    ready.append((slot, value))
                    break
        return ready

    def _ballot(self, m: Accepted) -> Ballot:
        """The ballot a vote counts under: its own (votes of different ballots never add up)."""
        return m.ballot
