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

Saved, not rebuilt (issue 24). Filling the filter from every stored key
took an aged learner 0.6 s of its start (736,000 keys). `to_bytes` packs
the whole filter (segments' bit arrays, counts, slots, the floor) with the
slot it covers, and `from_bytes` gives it back or refuses it with a
`ValueError` (wrong magic or version, a length that does not add up, a
digest that does not match): a caller that gets one falls back to the
full read, never to part of a filter (requests.py says when one is saved
and how a learner starts from it).
"""

from __future__ import annotations

import hashlib
import struct
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

#: A saved filter: magic, format version, the slot it covers, the floor,
#: its segments, an 8-byte BLAKE2b digest of everything after this header; then per
#: segment `_SEGMENT` and its bit array. Version 1: BITS_PER_ID 16, the two
#: positions of `_MIX` above (a change to either is a new version: an old
#: blob is then refused and rebuilt from the store).
_MAGIC = b"PXIF"
BLOB_VERSION = 1
_HEADER = struct.Struct("<4sHqqI8s")
#: capacity, count, first slot, last slot.
_SEGMENT = struct.Struct("<QQqq")


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
        #: Ids added by this object (not restored ones): when to save it again.
        self.added = 0

    @property
    def floor(self) -> int:
        """The highest slot passed to `forget_below` (0: none)."""
        return self._floor

    def to_bytes(self, covers: int) -> bytes:
        """The whole filter as one blob that says it covers slot `covers`:
        the caller's word that every id first decided at `covers` or below
        (and not forgotten) was added. About 2-4 bytes per id held."""
        parts: list[bytes | bytearray] = [b""]
        digest = hashlib.blake2b(digest_size=8)
        for s in self._segments:
            head = _SEGMENT.pack(s.capacity, s.count, s.first_slot, s.last_slot)
            digest.update(head)
            digest.update(s.bits)
            parts += (head, s.bits)
        # One copy of the bit arrays, not two (a learner's RSS: 1.4 MiB at 600,000 ids).
        parts[0] = _HEADER.pack(_MAGIC, BLOB_VERSION, covers, self._floor, len(self._segments),
                                digest.digest())
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, blob: bytes) -> tuple[int, "IdFilter"]:
        """(the slot it covers, the filter) of a `to_bytes` blob; ValueError,
        naming what is wrong, for anything else (torn, foreign, another
        version), so that no part of a bad blob is ever used."""
        view = memoryview(blob)
        if len(view) < _HEADER.size:
            raise ValueError(f"id filter blob too short ({len(view)} bytes)")
        magic, version, covers, floor, nsegments, digest = _HEADER.unpack_from(view)
        if magic != _MAGIC:
            raise ValueError("not an id filter blob (bad magic)")
        if version != BLOB_VERSION:
            raise ValueError(f"id filter blob version {version}, this code reads {BLOB_VERSION}")
        if hashlib.blake2b(view[_HEADER.size:], digest_size=8).digest() != digest:
            raise ValueError("id filter blob checksum mismatch")
        if nsegments < 1:
            raise ValueError("id filter blob has no segment")
        segments = []
        at = _HEADER.size
        for _ in range(nsegments):
            if at + _SEGMENT.size > len(view):
                raise ValueError("id filter blob ends inside a segment header")
            capacity, count, first_slot, last_slot = _SEGMENT.unpack_from(view, at)
            at += _SEGMENT.size
            if (capacity & (capacity - 1) or not FIRST_CAPACITY <= capacity <= MAX_CAPACITY
                    or count > capacity):
                raise ValueError(f"id filter blob has a bad segment (capacity {capacity},"
                                 f" count {count})")
            segment = _Segment(capacity)
            size = len(segment.bits)
            if at + size > len(view):
                raise ValueError("id filter blob ends inside a bit array")
            segment.bits[:] = view[at:at + size]
            at += size
            segment.count, segment.first_slot, segment.last_slot = count, first_slot, last_slot
            segments.append(segment)
        if at != len(view):
            raise ValueError(f"id filter blob has {len(view) - at} bytes past its segments")
        restored = cls()
        restored._segments, restored._floor = segments, floor
        return covers, restored

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

    def _count(self, segment: _Segment, added: int, slot: int) -> None:
        if not added:
            return
        self.added += added
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
