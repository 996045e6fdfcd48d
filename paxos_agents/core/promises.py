"""Phase 1 across configurations: the promises one ballot collected.

With reconfiguration (configs.py) a slot's quorum is a majority of
config(slot), not of one fixed set. A candidate's Prepare covers every
slot from its first one, so it needs, for EACH configuration governing
some slot >= first that it knows of, a majority of that configuration
promising; and for slot s it adopts the highest-ballot vote reported by
members of config(s) only (a non-member's vote there proves nothing: it
was never counted, and counting it could resurrect a value no quorum of
config(s) accepted). Lamport, Malkhi, Zhou, "Reconfiguring a State
Machine" (2010), section 4.
"""

from __future__ import annotations

from .configs import Config
from .messages import Promise, Vote


class Promises:
    """Promises for one ballot, by acceptor, with their votes indexed by slot."""

    __slots__ = ("first_slot", "by_src", "_votes", "highest_reported")

    def __init__(self, first_slot: int) -> None:
        self.first_slot = first_slot
        #: acceptor -> the first slot its promise covers.
        self.by_src: dict[str, int] = {}
        #: slot -> (acceptor, vote) reported there.
        self._votes: dict[int, list[tuple[str, Vote]]] = {}
        #: The highest slot any promise reported a vote in (-1 for none).
        self.highest_reported = -1

    def add(self, m: Promise) -> None:
        """Note `m` (for our ballot); a second promise from one acceptor is ignored."""
        if m.src in self.by_src:
            return
        self.by_src[m.src] = m.first_slot
        for vote in m.votes:
            if vote.slot >= m.first_slot:
                self._votes.setdefault(vote.slot, []).append((m.src, vote))
                if vote.slot > self.highest_reported:
                    self.highest_reported = vote.slot

    def covers(self, config: Config) -> bool:
        """Whether a majority of `config` promised for all of its slots >= first_slot."""
        start = max(self.first_slot, config.first_slot)
        promised = [a for a in config.acceptors if self.by_src.get(a, start + 1) <= start]
        return len(promised) >= config.majority

    def missing(self, config: Config) -> list[str]:
        """Members of `config` that have not promised."""
        return [a for a in config.acceptors if a not in self.by_src]

    def highest(self, slot: int, config: Config) -> Vote | None:
        """The highest-ballot vote that members of `config` reported in `slot`."""
        best = None
        for src, vote in self._votes.get(slot, ()):
            if src in config.acceptors and (best is None or vote.ballot > best.ballot):
                best = vote
        return best

    def forget_below(self, slot: int) -> None:
        """Drop the reported votes of slots below `slot` (decided, or proposed again)."""
        for s in [s for s in self._votes if s < slot]:
            del self._votes[s]
