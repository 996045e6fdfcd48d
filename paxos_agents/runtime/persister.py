"""How an agent's persists reach the disk: committed at once, or grouped over loop turns.

The agent loop (agent.py) hands each `Ready`'s persist here with the
messages that must not leave before it is durable (`send_after_persist`)
and sends what comes back. Two paths:

- A persist another process waits for (a promise, a vote, a compaction
  point, a ballot round, a floor: a proposer waits for the Promise or
  Accepted that depends on it) is one transaction, committed at once (one
  fsync), and what waited for it may go. Before the fsync the transport
  is flushed: what needs no persist goes out while the disk works.
- A persist only this agent waits for (a learner's decisions, applied
  prefix, request index, retention, history) is written at once but
  committed up to `GROUP_COMMIT_SECONDS` later, with the turns that follow
  (group commit): under load one fsync covers that long of loop turns
  instead of one each. What depends on it (a `Stored` report, which lets
  acceptors delete votes) is held until that COMMIT. A crash loses at most
  that window of the learner's own progress, which it learns again from
  the acceptors: their votes stay until a `Stored` report, sent only after
  the COMMIT, lets them go. Clients are answered before a learner
  persists anyway (the decision is durable at a majority of acceptors).

It also keeps the persist-latency histogram the heartbeat reports.
"""

from __future__ import annotations

from typing import Callable

from ..core.ready import Persist
from .report import Histogram
from .storage import Storage

#: How long a learner's written slots may wait for their COMMIT (see above).
GROUP_COMMIT_SECONDS = 0.01
#: Upper bounds (seconds) of the persist-latency histogram buckets.
PERSIST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Persister:
    """An agent's writes to its `Storage`, and the messages held until they are durable.

    `flush_sends` sends what is queued on the transport (called before an
    fsync); `clock` is the agent's. A `StorageError` from the store goes
    to the caller, and whatever was held stays unsent: the agent stops and
    never announces what may not be on disk.
    """

    def __init__(self, storage: Storage, clock: Callable[[], float],
                 flush_sends: Callable[[], None]) -> None:
        self._storage = storage
        self._clock = clock
        self._flush_sends = flush_sends
        #: Since when written persists wait for their COMMIT (None: none waits).
        self.pending_since: float | None = None
        #: The messages that wait for that COMMIT, in the order they came.
        self._held: list = []
        self._buckets = [0] * (len(PERSIST_BUCKETS) + 1)
        self._count = 0
        self._sum = 0.0

    def persist(self, persist: Persist, after: list, *, may_wait: bool = True) -> list:
        """Make `persist` durable, or write it to commit with later turns if
        it and the caller allow (`may_wait`: False when `after` holds a
        message the agent steps itself, which must see its own persist
        done). Returns the messages that may be sent now: those a COMMIT
        just released, then `after` unless it is held."""
        if may_wait and _may_wait(persist):
            if persist:
                self._storage.write(persist)
                if self.pending_since is None:
                    self.pending_since = self._clock()
            if self.pending_since is not None:
                self._held.extend(after)  # e.g. a Stored report: after the COMMIT
                return []
            return after
        released: list = []
        if persist or self.pending_since is not None:
            self._flush_sends()  # what needs no persist goes out during the fsync
            self._storage.save(persist)  # commits what was pending too
            released = self._committed()
        return released + after if released else after

    def due(self) -> float | None:
        """When the waiting persists must be committed (None: none waits)."""
        return None if self.pending_since is None else self.pending_since + GROUP_COMMIT_SECONDS

    def commit_if_due(self, now: float) -> list:
        """`commit` if the oldest waiting persist has waited its time, else nothing."""
        due = self.due()
        return self.commit() if due is not None and now >= due else []

    def commit(self) -> list:
        """COMMIT what was written and waits; the messages that waited for it."""
        if self.pending_since is None:
            return []
        self._flush_sends()  # what needs no persist goes out during the fsync
        self._storage.commit()
        return self._committed()

    def histogram(self) -> Histogram:
        """The persist latencies so far (one per COMMIT), for the heartbeat."""
        return Histogram(count=self._count, sum=self._sum, buckets=tuple(self._buckets))

    def _committed(self) -> list:
        self._observe(self._storage.persist_seconds)
        self.pending_since = None
        held, self._held = self._held, []
        return held

    def _observe(self, seconds: float) -> None:
        self._count += 1
        self._sum += seconds
        for i, bound in enumerate(PERSIST_BUCKETS):
            if seconds <= bound:
                self._buckets[i] += 1
                return
        self._buckets[-1] += 1


def _may_wait(persist: Persist) -> bool:
    """Whether `persist`'s COMMIT may wait for later turns' (group commit):
    only a learner's part of it (decisions, applied prefix, request index,
    retention, history), which no other process waits for."""
    return (persist.promised is None and not persist.votes and persist.compacted is None
            and persist.round is None and persist.floor is None)
