"""The learner's request index in memory: which request ids were applied, and where.

The index itself (request id -> the slot where it was first decided) is on
disk, written with each applied slot (`Persist.requests`). Memory holds
what is not durable yet and a bounded cache of recent ids, so a learner's
memory does not grow with the number of commands it ever applied; a miss
is one batched read of the store per slot.
"""

from __future__ import annotations

from typing import Iterable

from .store import DurableLog

#: Request ids kept in memory (beyond the on-disk index) for quick duplicate checks.
RECENT_REQUESTS = 4096


class RequestIndex:
    """request id -> first slot: unpersisted entries, recent ones, then the store."""

    def __init__(self, store: DurableLog) -> None:
        self._store = store
        #: Applied since the last `drained()`: not durable yet, so never evicted.
        self.unpersisted: dict[str, int] = {}
        self._recent: dict[str, int] = {}

    def lookup(self, request_ids: Iterable[str]) -> dict[str, int]:
        """The first slots of those of `request_ids` that were applied before."""
        found: dict[str, int] = {}
        missing = []
        unpersisted, recent = self.unpersisted, self._recent
        for rid in request_ids:
            first = unpersisted.get(rid)
            if first is None:
                first = recent.get(rid)
            if first is None:
                missing.append(rid)
            else:
                found[rid] = first
        if missing:
            found.update(self._store.first_slots(missing))
        return found

    def add(self, request_id: str, slot: int) -> bool:
        """Record a new entry (the caller persists it); False if it is already pending."""
        if request_id in self.unpersisted:
            return False
        self.unpersisted[request_id] = slot
        return True

    def known(self) -> dict[str, int]:
        """Everything in memory (tests and checks)."""
        return {**self._recent, **self.unpersisted}

    def __len__(self) -> int:
        return len(self._recent) + len(self.unpersisted)

    def drained(self) -> None:
        """What was added so far is being made durable before the next step:
        it may now be looked up on disk, and the cache can shrink."""
        if self.unpersisted:
            self._recent.update(self.unpersisted)
            self.unpersisted = {}
            if len(self._recent) > 2 * RECENT_REQUESTS:
                # Keep the newest half (dicts keep insertion order): amortised O(1).
                self._recent = dict(list(self._recent.items())[-RECENT_REQUESTS:])
