"""Ballots: the proposal numbers of Paxos Made Simple, section 2.2.

Ballots are `(round, node_id)` pairs compared as tuples. The node id makes
two proposers' ballots distinct without relying on process ids, which the
operating system reuses across restarts (the 2012 demo seeded its numbers
with PIDs; that is unsafe).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class Ballot:
    """A proposal number. Field order gives the `(round, node_id)` ordering."""

    round: int
    node_id: str

    def __str__(self) -> str:
        return f"{self.round}.{self.node_id}"


#: Below every real ballot: what an acceptor has promised before any Prepare.
ZERO_BALLOT = Ballot(0, "")
