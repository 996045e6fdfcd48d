"""Planted bugs: known ways to break Paxos, for showing that the checks catch them.

Each is a subclass of a real role that overrides one rule; `Node` uses one
only when `Settings.plant` names it (the simulator's and the tests'
`--plant`). The real roles carry no planted branches of their own.
"""

from __future__ import annotations

from .acceptor import Acceptor
from .ids import Ballot


class AcceptWithoutPromiseAcceptor(Acceptor):
    """The 2012 demo's bug: accept any ballot and never raise the promise."""

    def _may_accept(self, ballot: Ballot) -> bool:
        return True

    def _raise_promise(self, ballot: Ballot) -> None:
        pass


class TruncateEarlyAcceptor(Acceptor):
    """TLA+ mutant TruncateEarly: compact below what *one* learner stored.

    The rule needs every configured learner; this drops votes that some
    learner may still need (and cannot then get from anyone).
    """

    def _point(self) -> int:
        return max(self._stored.values(), default=-1) + 1


#: planted bug -> the acceptor class that carries it.
ACCEPTORS: dict[str, type[Acceptor]] = {
    "accept-without-promise": AcceptWithoutPromiseAcceptor,
    "truncate-early": TruncateEarlyAcceptor,
}


def acceptor_class(plant: frozenset[str]) -> type[Acceptor]:
    """The acceptor class for the planted bugs in `plant` (the real one if none)."""
    chosen = [cls for bug, cls in ACCEPTORS.items() if bug in plant]
    if len(chosen) > 1:
        raise ValueError(f"at most one planted acceptor bug at a time, got {sorted(plant)}")
    return chosen[0] if chosen else Acceptor
