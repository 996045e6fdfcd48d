"""A compact set of request ids that answers "certainly not here" or "maybe".

Why it exists. Exactly-once needs, for every command a learner applies,
the answer to "was this request id applied before?", and the true answer
is in the request index on disk (`DurableLog.first_slots`). Reading the
store for every slot costs a query per slot; the first version skipped
the read whenever the command's stamp (`Command.issued`) said the id was
newer than what memory covered. But the stamp is the client's word: a
retry stamped newer than its first issue (`--issued`, `fresh=True`) was
applied twice after a learner restart. Now the learner trusts only what
it holds: this filter has every request id of the retained index, and
only a "maybe" costs a store read, which confirms or refutes it. A wrong
stamp can no longer change whether a command is applied again.

It is a Bloom filter (B. H. Bloom, "Space/time trade-offs in hash coding
with allowable errors", CACM 1970) of the ids' index keys
(`requestkeys.request_key`, the integers the store is keyed by, so the
filter is filled from the store's keys at start without reading an id):
`BITS_PER_ID` bits per id and two bit positions per key, taken from the
two halves of the key times a 64-bit odd constant (Fibonacci hashing, to
spread the key's millisecond bits). At full capacity about 1.4% of new
ids answer "maybe" (one store read for the slot that holds them); none
that was added answers "no". The keys are stable, so a client could
craft ids that all answer "maybe": that costs store reads, never a wrong
outcome, which never depends on the filter; runs stay deterministic.

Memory follows the retained log, not the age of the cluster. Ids go into
segments filled in apply order (each sized for twice the power of two
above the ids the retained index holds when it starts, from `FIRST_CAPACITY` to
`MAX_CAPACITY`); each segment remembers the highest first slot it
holds, and once retention deletes every slot up to that one, the segment
goes (`forget_below`). With no retention (`retain_slots = 0`) the
learner keeps its whole index on disk and this filter keeps 2 bytes per
id ever applied: 2 MB per million commands.
"""

from __future__ import annotations

from itertools import groupby
from operator import itemgetter
from typing import Iterable, Sequence

#: Bits per id at a segment's capacity (two positions each: ~1.4% "maybe" for new ids).
BITS_PER_ID = 16
#: Fibonacci hashing's multiplier (2**64 / the golden ratio, odd).
_MIX = 0x9E3779B97F4A7C15
_WORD = (1 << 64) - 1
#: Ids the first segment holds; each next one holds twice as many, up to `MAX_CAPACITY`.
FIRST_CAPACITY = 1 << 16
MAX_CAPACITY = 1 << 24


class _Segment:
    """One Bloom filter of up to `capacity` ids, the highest slot among them."""

    __slots__ = ("bits", "mask", "capacity", "count", "first_slot", "last_slot")

    def __init__(self, capacity: int) -> None:
        size = capacity * BITS_PER_ID  # a power of two: positions are masked, not divided
        self.bits = bytearray(size >> 3)
        self.mask = size - 1
        self.capacity = capacity
        self.count = 0
        self.first_slot = -1
        self.last_slot = -1

    def live(self, floor: int) -> float:
        """About how many of its ids were first decided at `floor` or later
        (ids spread evenly over its slots)."""
        if self.count == 0 or self.last_slot < floor:
            return 0
        span = self.last_slot - self.first_slot + 1
        return self.count * min(1.0, (self.last_slot - max(floor, self.first_slot) + 1) / span)


class IdFilter:
    """Request ids added so far (minus forgotten segments): `maybe` never misses one."""

    def __init__(self) -> None:
        self._segments: list[_Segment] = [_Segment(FIRST_CAPACITY)]
        #: The highest `forget_below` slot: ids below it are no longer held.
        self._floor = 0

    def add(self, key: int, slot: int) -> None:
        """Remember the id of index key `key`, first decided at `slot`."""
        self.add_keys((key,), slot)

    def add_keys(self, keys: Iterable[int], slot: int) -> None:
        """Remember the ids of index keys `keys`, all first decided at `slot`."""
        segment = self._segments[-1]
        mask, bits = segment.mask, segment.bits
        added = 0
        for key in keys:
            if segment.count + added >= segment.capacity:
                self._count(segment, added, slot)
                added = 0
                segment = self._grow()
                mask, bits = segment.mask, segment.bits
            h = key * _MIX & _WORD
            p = h & mask
            bits[p >> 3] |= 1 << (p & 7)
            p = (h >> 32) & mask
            bits[p >> 3] |= 1 << (p & 7)
            added += 1
        self._count(segment, added, slot)

    @staticmethod
    def _count(segment: _Segment, added: int, slot: int) -> None:
        if not added:
            return
        segment.count += added
        if slot > segment.last_slot:
            segment.last_slot = slot
        if segment.first_slot < 0 or slot < segment.first_slot:
            segment.first_slot = slot

    def add_all(self, entries: Iterable[tuple[int, int]]) -> None:
        """`add` each (key, first slot): one `add_keys` per run of entries of
        the same slot (a learner's start reads every stored key: 600,000
        took 0.8 s one by one; the store's rows come in key order, which is
        time order, so a slot's keys mostly come together)."""
        add_keys = self.add_keys
        for slot, run in groupby(entries, key=itemgetter(1)):
            add_keys(map(itemgetter(0), run), slot)

    def maybe(self, keys: Sequence[int]) -> list[int]:
        """The positions in `keys` of those that may have been added (all
        that were, and a few that were not)."""
        tables = [(s.mask, s.bits) for s in reversed(self._segments) if s.count]
        found = []
        for i, key in enumerate(keys):
            h = key * _MIX & _WORD
            high = h >> 32
            for mask, bits in tables:
                p = h & mask
                if bits[p >> 3] >> (p & 7) & 1:
                    p = high & mask
                    if bits[p >> 3] >> (p & 7) & 1:
                        found.append(i)
                        break
        return found

    def forget_below(self, slot: int) -> None:
        """Drop the segments whose ids were all first decided below `slot`
        (retention deleted them from the store). The newest segment stays."""
        self._floor = max(self._floor, slot)
        segments = self._segments
        kept = [s for s in segments[:-1] if s.last_slot >= slot]
        if len(kept) != len(segments) - 1:
            self._segments = [*kept, segments[-1]]

    def _grow(self) -> _Segment:
        # Sized for twice the power of two above the ids the retained index
        # holds now: few segments to test while the index grows (each costs
        # a test per lookup: 3 after 600,000 ids), steady once retention
        # deletes as fast as slots are applied, and 1.4 MiB in all after
        # 600,000 ids (four times was 4.6 MiB: most of a learner's RSS
        # growth in bench/long_life.py).
        held = int(sum(s.live(self._floor) for s in self._segments))
        capacity = min(MAX_CAPACITY, max(FIRST_CAPACITY, 2 << max(0, held - 1).bit_length()))
        segment = _Segment(capacity)
        self._segments.append(segment)
        return segment

    @property
    def count(self) -> int:
        """Ids held (added to segments not forgotten)."""
        return sum(s.count for s in self._segments)

    @property
    def nbytes(self) -> int:
        """Memory of the bit arrays."""
        return sum(len(s.bits) for s in self._segments)
