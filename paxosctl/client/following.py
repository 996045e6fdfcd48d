"""Which learner a client follows, which it tries next, and when it has stalled.

A client reads every answer from one learner at a time (`DataClient`).
`Learners` holds that choice and nothing else: the order the learners are
tried in (one that closed, cut this client off or stalled goes last), the
one followed now (the first with a connection), and the stall rule. It
opens no socket (the client does, into each `Endpoint`) and reads no
clock: times are passed in.

The stall rule: a learner can be alive and answering yet learn nothing
(cut off from the other agents: a partition acts between agents, not
between a client and an agent), so it streams no slot again. When the
learner followed has shown no learning (connected, SUBSCRIBED, a SLOT) for
`stall_seconds` while something waits on it (a command proposed at least
that long ago, or a reader waiting for the next slot), another learner
is followed. Only SLOT counts as learning: a learner cut off still
answers WATCH and LOOKUP from its index.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

from paxos_agents.runtime.transport import Connection


class Endpoint:
    """One agent the client talks to, and its connection when up."""

    __slots__ = ("name", "conn", "retry_at", "info", "connected_at")

    def __init__(self, name: str) -> None:
        self.name = name
        self.conn: Connection | None = None
        #: When a new connection may be tried (monotonic seconds).
        self.retry_at = 0.0
        #: Its WELCOME (and "subscribed" once its SUBSCRIBED came).
        self.info: dict[str, Any] = {}
        self.connected_at = 0.0


class Learners:
    """The learners a client may follow, in the order it tries them."""

    def __init__(self, names: Sequence[str], *, stall_seconds: float, now: float) -> None:
        self.stall_seconds = stall_seconds
        self._order = [Endpoint(n) for n in names]
        #: When the learner followed last showed it learns.
        self._learned_at = now

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(self._order)

    def __contains__(self, endpoint: object) -> bool:
        return endpoint in self._order

    def followed(self) -> Endpoint | None:
        """The learner followed: the first, in order, with a connection."""
        for endpoint in self._order:
            if endpoint.conn is not None:
                return endpoint
        return None

    def to_try(self, now: float) -> list[Endpoint]:
        """The learners to try a connection to, in order (none while one is
        followed): those whose `retry_at` has come."""
        if self.followed() is not None:
            return []
        return [e for e in self._order if now >= e.retry_at]

    def demote(self, endpoint: Endpoint) -> None:
        """`endpoint` closed, cut this client off or stalled: try it last from now on."""
        self._order.remove(endpoint)
        self._order.append(endpoint)

    def learned(self, now: float) -> None:
        """The learner followed showed it learns (or is new: a whole stall period)."""
        self._learned_at = now

    def stalled(self, now: float, waits: Callable[[float], bool]) -> bool:
        """The learner followed showed no learning for `stall_seconds` and
        `waits(since)`: something it should have answered waits since `since`
        or earlier. Never with one learner: there is no other to follow."""
        if now - self._learned_at < self.stall_seconds or len(self._order) < 2:
            return False
        return waits(now - self.stall_seconds)
