"""The learner's request index in memory: which request ids were applied, and where.

The index itself (request id -> the slot where it was first decided) is on
disk, written with each applied slot (`Persist.requests`). Memory holds
what is not durable yet, a bounded cache of recent ids, and an `IdFilter`
of every id in the retained index, so a learner's memory does not hold
the ids themselves and a lookup reads the store only when it must.

A lookup answers from what this learner holds, never from what a command
says about itself: an id the filter rules out was certainly not applied
(it is new); an id the filter may hold is looked up in memory, then in
the store, which has the final word. A command's stamp (`issued`) plays
no part here, so a stamp that lies (a retry stamped newer than its first
issue) cannot get a command applied twice. The stamp still decides
expiry (see `Learner`): whether a command is too old for the retained
log to tell.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from .idfilter import IdFilter
from .store import DurableLog

#: Request ids kept in memory (beyond the on-disk index) for quick duplicate checks.
RECENT_REQUESTS = 65536


class RequestIndex:
    """request id -> first slot: unpersisted entries, recent ones, then the store."""

    def __init__(self, store: DurableLog, stored: Iterable[tuple[str, int]] = ()) -> None:
        """`stored`: every entry of the store's index (`DurableLog.request_index`)."""
        self._store = store
        #: Applied since the last `drained()`: not durable yet, so never evicted.
        self.unpersisted: dict[str, int] = {}
        self._recent: dict[str, int] = {}
        #: Every id of the retained index and of `unpersisted`: rules out new ids.
        self.filter = IdFilter()
        self.filter.add_all(stored)
        #: Ids the filter could not rule out that the store did not hold either.
        self.false_maybes = 0

    def lookup(self, request_ids: Sequence[str]) -> dict[str, int]:
        """The first slots of those of `request_ids` that were applied before
        (durably, or in a `Ready` not yet drained)."""
        maybe = self.filter.maybe(request_ids)
        if not maybe:
            return {}  # all new: the usual case, no store read
        unpersisted, recent = self.unpersisted, self._recent
        found: dict[str, int] = {}
        ask = []
        for rid in maybe:
            first = unpersisted.get(rid)
            if first is None:
                first = recent.get(rid)
            if first is None:
                ask.append(rid)
            else:
                found[rid] = first
        if ask:
            stored = self._store.first_slots(ask)
            self.false_maybes += len(ask) - len(stored)
            found.update(stored)
        return found

    def add(self, request_id: str, slot: int) -> bool:
        """Record a new entry (the caller persists it); False if it is already pending."""
        if request_id in self.unpersisted:
            return False
        self.unpersisted[request_id] = slot
        self.filter.add(request_id, slot)
        return True

    def add_all(self, request_ids: list[str], slot: int) -> None:
        """Record request ids all first decided at `slot`, none of them known."""
        self.unpersisted.update(dict.fromkeys(request_ids, slot))
        add = self.filter.add
        for rid in request_ids:
            add(rid, slot)

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

    def forget_below(self, slot: int) -> None:
        """Retention deleted the entries first decided below `slot` from the store."""
        self.filter.forget_below(slot)
