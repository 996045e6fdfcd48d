"""A leader's heartbeats: when it next says it leads, and to whom.

A leader heartbeats every proposer and learner of the membership but
itself every `heartbeat_ticks`, and at once when it becomes leader
(proposer.py). A heartbeat carries its ballot (followers follow the
highest), the highest slot it knows used (learners ask for the gaps below
it) and its decided prefix (followers need not run phase 1 below it).
"""

from __future__ import annotations

from .ids import Ballot
from .messages import Heartbeat
from .outbox import Outbox
from .settings import Membership


class Heartbeats:
    """The leader's heartbeat timer and the heartbeats it sends."""

    __slots__ = ("_node_id", "_out", "_every", "_next")

    def __init__(self, node_id: str, out: Outbox, every: int) -> None:
        self._node_id = node_id
        self._out = out
        self._every = every
        self._next = 0

    def due(self, now: int) -> bool:
        """Whether the next heartbeat is due at `now`."""
        return now >= self._next

    def send(self, now: int, membership: Membership, ballot: Ballot, highest_slot: int,
             decided_up_to: int) -> None:
        """Heartbeat every other proposer and learner of `membership` (each
        once, a replica being both); the next one is due `every` ticks on."""
        self._next = now + self._every
        targets = dict.fromkeys((*membership.proposers, *membership.learners))
        targets.pop(self._node_id, None)
        for dst in targets:
            self._out.send.append(Heartbeat(src=self._node_id, dst=dst, ballot=ballot,
                                            highest_slot=highest_slot,
                                            decided_up_to=decided_up_to))
