"""The learner's request index in memory: which request ids were applied, and where.

The index itself (request id -> the slot where it was first decided) is on
disk, written with each applied slot (`Persist.requests`). Memory holds
what is not durable yet and a bounded cache of recent ids, so a learner's
memory does not grow with the number of commands it ever applied; a miss
is one batched read of the store per slot.

Most lookups need no read at all. `floor` is a slot such that every
request id applied at `floor` or later is in memory. A command stamped
`issued` (see `Command`) cannot have been decided at or below that slot,
so when `issued + 1 >= floor`, a miss in memory is a sure miss: the store
is not asked (`lookup(..., issued=...)`). Clients stamp new commands
with a slot applied moments ago, so in steady state the store is read
only for retries of old requests.
"""

from __future__ import annotations

from collections import deque
from typing import Sequence

from .store import DurableLog

#: Request ids kept in memory (beyond the on-disk index) for quick duplicate checks.
RECENT_REQUESTS = 65536


class RequestIndex:
    """request id -> first slot: unpersisted entries, recent ones, then the store."""

    def __init__(self, store: DurableLog, next_apply: int = 0) -> None:
        self._store = store
        #: Applied since the last `drained()`: not durable yet, so never evicted.
        self.unpersisted: dict[str, int] = {}
        self._recent: dict[str, int] = {}
        #: Every request id applied at this slot or later is in memory (above).
        self.floor = next_apply
        #: Entries ever added to `_recent`, and (that count, next slot to apply)
        #: at each `drained()`: tells how far back the kept entries reach.
        self._added = 0
        self._marks: deque[tuple[int, int]] = deque()
        self._last_next_apply = next_apply

    def lookup(self, request_ids: Sequence[str], issued: int = -1) -> dict[str, int]:
        """The first slots of those of `request_ids` that were applied before.

        `issued`: the lowest stamp of the commands asked about; when
        `issued + 1 >= floor`, memory alone answers (see the module doc).
        """
        unpersisted, recent = self.unpersisted, self._recent
        sure = issued + 1 >= self.floor
        if sure and unpersisted.keys().isdisjoint(request_ids) \
                and recent.keys().isdisjoint(request_ids):
            return {}  # all new (one C-level pass over each table)
        found: dict[str, int] = {}
        missing = []
        for rid in request_ids:
            first = unpersisted.get(rid)
            if first is None:
                first = recent.get(rid)
            if first is None:
                missing.append(rid)
            else:
                found[rid] = first
        if missing and not sure:
            found.update(self._store.first_slots(missing))
        return found

    def add(self, request_id: str, slot: int) -> bool:
        """Record a new entry (the caller persists it); False if it is already pending."""
        if request_id in self.unpersisted:
            return False
        self.unpersisted[request_id] = slot
        return True

    def add_all(self, request_ids: list[str], slot: int) -> None:
        """Record request ids all first decided at `slot`, none of them known."""
        self.unpersisted.update(dict.fromkeys(request_ids, slot))

    def known(self) -> dict[str, int]:
        """Everything in memory (tests and checks)."""
        return {**self._recent, **self.unpersisted}

    def __len__(self) -> int:
        return len(self._recent) + len(self.unpersisted)

    def drained(self, next_apply: int) -> None:
        """What was added so far is being made durable before the next step:
        it may now be looked up on disk, and the cache can shrink.
        `next_apply`: the learner's next slot to apply (all before it applied)."""
        if self.unpersisted:
            # These were applied since the last call, so at slots >= its next_apply.
            self._marks.append((self._added, self._last_next_apply))
            self._added += len(self.unpersisted)
            self._recent.update(self.unpersisted)
            self.unpersisted = {}
            if len(self._recent) > 2 * RECENT_REQUESTS:
                # Keep the newest half (dicts keep insertion order): amortised O(1).
                self._recent = dict(list(self._recent.items())[-RECENT_REQUESTS:])
                # Entries from the first kept one on are in memory; a mark at or
                # after it says from which slot on everything applied is kept.
                first_kept = self._added - RECENT_REQUESTS
                marks = self._marks
                while marks and marks[0][0] < first_kept:
                    marks.popleft()
                self.floor = max(self.floor, marks[0][1] if marks else next_apply)
        self._last_next_apply = next_apply
