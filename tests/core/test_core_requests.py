"""The learner's request index in memory: bounded, and sure of its misses above `floor`."""

from __future__ import annotations

from paxos_agents.core.requests import RECENT_REQUESTS, RequestIndex


class Store:
    """The on-disk index, in a dict; counts the reads."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}
        self.reads = 0

    def first_slots(self, request_ids):
        self.reads += 1
        return {r: self.rows[r] for r in request_ids if r in self.rows}


def apply(index: RequestIndex, store: Store, slot: int, per_slot: int) -> None:
    for i in range(per_slot):
        rid = f"{slot}-{i}"
        index.add(rid, slot)
        store.rows[rid] = slot  # persisted with the slot
    index.drained(slot + 1)


def test_every_request_id_applied_at_or_above_the_floor_is_in_memory():
    store = Store()
    index = RequestIndex(store, next_apply=0)
    per_slot = 1000
    slots = 3 * (2 * RECENT_REQUESTS) // per_slot  # several trims
    for slot in range(slots):
        apply(index, store, slot, per_slot)
        known = index.known()
        assert len(known) <= 2 * RECENT_REQUESTS
        missing = [r for r, s in store.rows.items() if s >= index.floor and r not in known]
        assert not missing, (index.floor, missing[:3])
    assert index.floor > 0  # it moved with the trims, and not past what memory holds
    assert index.floor <= slots - RECENT_REQUESTS // per_slot


def test_a_miss_above_the_floor_reads_nothing_and_below_it_reads_the_store():
    store = Store()
    index = RequestIndex(store, next_apply=5)  # slots 0..4 applied before (on disk only)
    store.rows["old"] = 2
    apply(index, store, 5, 3)
    reads = store.reads
    assert index.lookup(["new"], issued=4) == {}  # issued after slot 4: cannot be in 0..4
    assert store.reads == reads
    assert index.lookup(["5-1"], issued=4) == {"5-1": 5}  # memory
    assert index.lookup(["old"], issued=1) == {"old": 2}  # might be older: the store says
    assert store.reads == reads + 1
    assert index.lookup(["old"], issued=-1) == {"old": 2}
