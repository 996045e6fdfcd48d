"""The learner's request index in memory: bounded, never wrong, and it reads
the store only for ids its filter cannot rule out. No stamp takes part.
Keys are stable (`request_key`), and only narrow: full ids decide."""

from __future__ import annotations

import random

from paxos_agents.core.idfilter import BITS_PER_ID, FIRST_CAPACITY, IdFilter
from paxos_agents.core.requestkeys import request_key
from paxos_agents.core.requests import RequestIndex


class Store:
    """The on-disk index, in a dict; counts the reads."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}
        self.reads = 0

    def first_slots(self, request_ids):
        self.reads += 1
        return {r: self.rows[r] for r in request_ids if r in self.rows}

    def request_keys(self):
        return [(request_key(r), s) for r, s in self.rows.items()]


def apply(index: RequestIndex, store: Store, slot: int, per_slot: int) -> None:
    for i in range(per_slot):
        rid = f"{slot}-{i}"
        index.add(rid, slot)
        store.rows[rid] = slot  # persisted with the slot
    index.drained()


def test_memory_holds_only_unwritten_ids_and_every_applied_id_is_still_found():
    store = Store()
    index = RequestIndex(store)
    per_slot = 1000
    slots = 400
    for slot in range(slots):
        apply(index, store, slot, per_slot)
        assert len(index.known()) <= per_slot  # the last slot handed over, no more
    sample = random.Random(1).sample(sorted(store.rows), 2000)
    assert index.lookup(sample) == {r: store.rows[r] for r in sample}


def test_an_id_applied_before_a_restart_is_found_whatever_the_command_says():
    """The probe's case: applied, the learner restarts (memory empty), and a
    retry comes with a stamp newer than anything: the store still answers."""
    store = Store()
    store.rows.update({"r1": 0, "other": 3})
    index = RequestIndex(store, store.request_keys())  # a restart: memory holds nothing
    assert index.known() == {}
    assert index.lookup(["r1"]) == {"r1": 0}
    assert index.lookup(["other", "new"]) == {"other": 3}


def test_new_ids_are_ruled_out_without_reading_the_store():
    store = Store()
    store.rows.update({f"old-{i}": i // 64 for i in range(20_000)})
    index = RequestIndex(store, store.request_keys())
    new = [f"new-{i}" for i in range(20_000)]
    found = index.lookup(new)
    assert found == {}
    # Each lookup reads the store once at most, and only for the few the
    # filter could not rule out (about 1.4% at capacity).
    assert store.reads <= 1
    assert index.false_maybes < 0.03 * len(new)


def test_unwritten_entries_answer_before_the_store_and_written_ones_from_it():
    store = Store()
    index = RequestIndex(store)
    apply(index, store, 5, 3)
    apply(index, store, 6, 3)  # slot 5's ids are now only in the store
    index.add("pending", 7)  # applied this turn, not written yet
    reads = store.reads
    assert index.lookup(["pending", "6-0"]) == {"pending": 7, "6-0": 6}  # the last handed over too
    assert store.reads == reads
    assert index.lookup(["5-1", "pending"]) == {"5-1": 5, "pending": 7}
    assert store.reads == reads + 1  # one read, for the written one only


def test_filter_never_misses_an_added_id_and_forgets_whole_segments_only():
    f = IdFilter()
    ids = [request_key(f"id-{i}") for i in range(5 * FIRST_CAPACITY)]
    for i, key in enumerate(ids):
        f.add(key, i // 100)  # slot = i // 100
    assert f.maybe(ids) == list(range(len(ids)))
    segments = len(f._segments)
    assert segments > 1
    f.forget_below((FIRST_CAPACITY - 1) // 100 + 1)  # the first segment's ids are all below
    assert len(f._segments) == segments - 1
    assert f.maybe(ids[FIRST_CAPACITY:]) == list(range(len(ids) - FIRST_CAPACITY))
    f.forget_below(10**9)  # the newest segment always stays
    assert len(f._segments) == 1 and f.count


def test_segments_stay_sized_to_what_retention_keeps():
    """With retention deleting as fast as slots are applied, memory stops
    growing: a few segments of two to four times the retained ids, whatever
    the number of ids ever added (2 bytes each without retention)."""
    f = IdFilter()
    window = 50  # slots retained
    per_slot = 1000
    slots = 1000
    for slot in range(slots):
        for i in range(per_slot):
            f.add(request_key(f"{slot}-{i}"), slot)
        f.forget_below(slot - window)
        if slot >= 200:
            assert f.nbytes <= 3 * (4 * 65536 * BITS_PER_ID // 8), (slot, f.nbytes)
    assert f.nbytes < slots * per_slot * BITS_PER_ID // 8 // 2
