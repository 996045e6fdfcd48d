"""The learner's request index in memory: which request ids were applied, and where.

The index itself is on disk, written with each applied slot
(`Persist.requests`), keyed by `request_key(request_id)`: a 63-bit integer
from a stable hash (never Python's per-process salted `hash()`: the key
outlives the process), with the id's millisecond prefix in the high bits
so that new entries land at the end of the store's B-tree. A key only
narrows the search: two ids may share one, so the store confirms a key
hit by reading the slot it points at and comparing full ids
(`SqliteStorage.first_slots`), and every learner judges a duplicate by
the full id alone.

Memory holds what is not written yet (full ids: `unpersisted`, and the
last `Ready`'s, which the runtime may look up before writing them) and an
`IdFilter` of the keys of every id in the retained index; it no longer
keeps a cache of recent ids (up to 131,072 id strings, issue 24's RSS
target). A lookup answers from what this learner holds, never from what a
command says about itself: an id whose key the filter rules out was
certainly not applied (it is new); any other is looked up in memory, then
in the store, which has the final word. A command's stamp (`issued`) plays no
part here, so a stamp that lies (a retry stamped newer than its first
issue) cannot get a command applied twice. The stamp still decides expiry
(exactlyonce.py): whether a command is too old for the retained log to tell.

Starting without reading every key (issue 24). The learner saves its
filter now and then (`Persist.id_filter`, in the transaction of the
`applied` it covers: `ExactlyOnce.save_filter_if_due`), and `start_filter`
loads it and adds only the keys of the slots after the one it covers
(`DurableLog.request_keys_from`, a range read of the decisions). The saved
filter holds every key of every slot up to its slot (it is the filter
in memory when that slot was applied), so `maybe` still misses no id. It
is used only when it is whole and fits the store: it decodes
(`IdFilter.from_bytes`), covers no slot beyond the stored applied prefix,
starts inside the retained log (a log restarted above it by a state
transfer, or retention deleting everything it covered, leaves nothing
of it to use), and forgot nothing the store still holds (its floor is not
above the store's first retained slot). Otherwise: the full read, as before.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from .idfilter import IdFilter
from .requestkeys import request_key
from .store import DurableLog


def start_filter(store: DurableLog, applied: int, log_start: int) -> tuple[IdFilter, str]:
    """The filter a learner starts with (applied prefix `applied`, first
    retained slot `log_start`), and how it was made: "saved" (the saved
    filter and the keys after it) or why the full read was needed."""
    saved = store.saved_id_filter()
    if saved is None:
        why = "none saved"
    else:
        slot, blob = saved
        try:
            covers, restored = IdFilter.from_bytes(blob)
        except ValueError as exc:
            covers, restored, why = slot, None, str(exc)
        if restored is None:
            pass
        elif covers != slot:
            why = f"the blob says slot {covers}, its row {slot}"
        elif slot > applied:
            why = f"it covers slot {slot}, beyond the applied prefix {applied}"
        elif slot + 1 < log_start:
            why = f"it covers slot {slot}, below the retained log (from {log_start})"
        elif restored.floor > log_start:
            why = f"it forgot slots below {restored.floor}, the log starts at {log_start}"
        else:
            restored.add_all(store.request_keys_from(slot + 1))
            restored.added = 0
            return restored, "saved"
    full = IdFilter()
    full.add_all(store.request_keys())
    # Counted as added: the learner saves it at its first chance (at once if
    # it holds `Settings.filter_save_ids` ids or more, else on a clean stop).
    return full, why


class RequestIndex:
    """request id -> first slot: unpersisted entries in memory, the rest in the store."""

    def __init__(self, store: DurableLog, stored: Iterable[tuple[int, int]] = (),
                 id_filter: IdFilter | None = None) -> None:
        """`stored`: (key, first slot) of every entry of the store's index
        (`DurableLog.request_keys`), or `id_filter` holding them all
        (`start_filter`)."""
        self._store = store
        #: Applied since the last `drained()`: full ids, exact, never evicted.
        self.unpersisted: dict[str, int] = {}
        #: Those handed over at the last `drained()`: the runtime reads them
        #: back (watches.py) before it writes them, so they answer until the
        #: next one. Memory: one `Ready`'s ids.
        self._handed: dict[str, int] = {}
        #: The key of every id of the retained index and of `unpersisted`: rules out new ids.
        self.filter = id_filter if id_filter is not None else IdFilter()
        self.filter.add_all(stored)
        #: Ids the filter could not rule out that the store did not hold either.
        self.false_maybes = 0
        #: The ids of the last `lookup` and their keys (see `add_all`).
        self._last: tuple[Sequence[str] | None, list[int]] = (None, [])

    def lookup(self, request_ids: Sequence[str]) -> dict[str, int]:
        """The first slots of those of `request_ids` that were applied before
        (durably, or in a `Ready` not yet drained)."""
        keys = [request_key(rid) for rid in request_ids]
        # A slot's ids are looked up, then (the usual case: all new) added:
        # `add_all` of the same list reuses these keys (0.4 µs an id).
        self._last = (request_ids, keys)
        maybe = self.filter.maybe(keys)
        if not maybe:
            return {}  # all new: the usual case, no store read
        unpersisted, handed = self.unpersisted, self._handed
        found: dict[str, int] = {}
        ask = []
        for i in maybe:
            rid = request_ids[i]
            first = unpersisted.get(rid)
            if first is None:
                first = handed.get(rid)
            if first is None:
                ask.append(rid)
            else:
                found[rid] = first
        if ask:
            stored = self._store.first_slots(ask)
            self.false_maybes += len(ask) - len(stored)
            found.update(stored)
        return found

    def add(self, request_id: str, slot: int) -> int | None:
        """Record a new entry (the caller persists it, with the key returned);
        None if it is already pending."""
        if request_id in self.unpersisted:
            return None
        self.unpersisted[request_id] = slot
        key = request_key(request_id)
        self.filter.add(key, slot)
        return key

    def add_all(self, request_ids: list[str], slot: int) -> list[int]:
        """Record request ids all first decided at `slot`, none of them known;
        their keys (the caller persists both)."""
        self.unpersisted.update(dict.fromkeys(request_ids, slot))
        last_ids, keys = self._last
        if last_ids is not request_ids:
            keys = [request_key(rid) for rid in request_ids]
        self.filter.add_keys(keys, slot)
        return keys

    def known(self) -> dict[str, int]:
        """Everything in memory: the entries not yet written (tests and checks)."""
        return {**self._handed, **self.unpersisted}

    def __len__(self) -> int:
        return len(self._handed) + len(self.unpersisted)

    def drained(self) -> None:
        """What was added so far is written to the store before the next step
        (`Node.ready()` handed it over): it may be looked up there from then on."""
        if self.unpersisted or self._handed:
            self._handed, self.unpersisted = self.unpersisted, {}

    def forget_below(self, slot: int) -> None:
        """Retention deleted the entries first decided below `slot` from the store."""
        self.filter.forget_below(slot)
