"""An agent's protocol records: the messages it sent and received, and the
slots its learner decided, in a bounded ring (issue 25). What a record
holds, and the dict a tool reads (INFO op "protocol", queries.py), is
defined once in `paxos_agents.trace.records`, for the agents and the
simulator alike; this module keeps them and numbers the links.

`link` is the same list on a send record and on the recv record of the same
frame: the sender's name and incarnation, the receiver, the sender's
connection number for that peer (`generation`, counted per peer from 1 and
sent in the HELLO) and the frame's number on that connection (`n`, from 1;
the receiver counts the frames it reads on it the same way). A message an
agent sends itself (a replica's proposer to its own acceptor, and back) is
a send and then a recv record with `peer` the agent itself and no link:
its own sequence numbers order them. A tool orders
a recv after its send by that list, never by the clocks (hosts' differ).

Cost. Records are per message, never per command: the sender builds one
small tuple (`note`) per message before it is encoded, the transport adds
the link numbers when it queues the frame, and the ring holds tuples; the
dicts are made only when a reader asks (`since`). A value is hashed
(zlib.crc32) about once per slot and agent: digests are kept by slot, and a
value of a slot whose bytes equal the kept one's (a memcmp; the same object
for an Accept sent to every acceptor) reuses its digest, so a learner that
hears three acceptors' Accepted and then decides hashes once. A ring of size
0 records nothing: the agent and the transport then skip all of it (they
hold None, see `active`).

Sequence numbers count from 1 in each incarnation; the ring drops its
oldest records first, and a reader learns it missed some by `Page.missed`
and the oldest number kept by `Page.first`.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from itertools import islice
from typing import Any, Callable

from ..core.messages import Accept, Accepted
from ..trace import records
from ..trace.records import Note

_ACCEPT, _ACCEPTED = "accept", "accepted"

#: Records an agent keeps by default (the manifest's paxos.protocol_records):
#: about 300 bytes each in memory (the tuples, their numbers), 2.4 MB. At
#: 20,000 a learner grew 9 MiB over 600,000 commands (bench/long_life.py),
#: past issue 24's 5 MiB and 40 MiB bounds.
DEFAULT_SIZE = 8_000
#: The largest ring the manifest allows (paxos.protocol_records).
MAX_SIZE = 1_000_000
#: Slots whose value digest is kept, and their values' bytes at most (then
#: the cache starts over): the copies of one slot's value (an acceptor's
#: Accepted to the leader and each learner, the Accepted a learner hears
#: from each acceptor) arrive within a few loop turns. Past the bound a copy
#: is hashed again: a cost, never a wrong digest.
DIGESTS = 1024
DIGEST_BYTES = 256 << 10


@dataclass(frozen=True, slots=True)
class Page:
    """Records after a sequence number (see `ProtocolRecords.since`)."""

    items: list[dict[str, Any]]
    #: The newest seq given (none given: the newest recorded).
    last: int
    #: Records between the one asked after and the first given left the ring.
    missed: bool
    #: The oldest seq the ring still holds (last + 1 when it holds none).
    first: int


class ProtocolRecords:
    """One agent incarnation's ring of protocol records (not thread-safe:
    the agent's loop records and answers the INFO questions)."""

    def __init__(self, agent: str, incarnation: int, size: int = DEFAULT_SIZE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if size < 0:
            raise ValueError(f"protocol records: size must be 0 or more, got {size}")
        self.agent = agent
        self.incarnation = incarnation
        self.size = size
        self._clock = clock
        #: time.time() - time.monotonic() at the start: `at` = mono + this
        #: (one clock read per record; wall times are labels only).
        self._wall = time.time() - clock()
        #: (seq, dir, note, peer, peer_incarnation, generation, n, mono, dropped)
        self._ring: deque[tuple] = deque(maxlen=max(size, 1))
        self._seq = 0
        #: slot -> (the value's bytes, their crc32, its commands), for the next
        #: copies (`_digest`).
        self._digests: dict[int, tuple[bytes, tuple[int, int]]] = {}
        self._digest_bytes = 0  # of the values in `_digests`
        #: (value, message type, ballot, slot, note) of the last Accept or Accepted noted.
        self._last: tuple | None = None

    @property
    def active(self) -> "ProtocolRecords | None":
        """Self, or None when the ring is off (size 0): what the hot paths hold."""
        return self if self.size else None

    # ------------------------------------------------------------ recording

    def _digest(self, slot: int, value: Any) -> tuple[int, int]:
        """(crc32, commands) of `value`, reusing what is kept for `slot` when
        its bytes are equal (`==` on bytes: identity, then a memcmp)."""
        data = value.data
        digests = self._digests
        kept = digests.get(slot)
        if kept is not None and kept[0] == data:
            return kept[1]
        if len(digests) >= DIGESTS or self._digest_bytes >= DIGEST_BYTES:
            digests.clear()
            self._digest_bytes = 0
        named = records.value_digest(slot, value)
        digests[slot] = (data, named)
        self._digest_bytes += len(data)
        return named

    def note(self, msg: Any) -> Note:
        """The record fields `msg` itself gives: `trace.records.note`'s tuple.

        The kinds of every slot (Accept, Accepted) are built here, the same
        tuple as `records.note` builds, without its call: they are most of an
        agent's records, and an acceptor's Accepted to the leader and the
        learners (the leader's Accept to each acceptor) share one note."""
        t = type(msg)
        if t is Accepted or t is Accept:
            value, slot, ballot = msg.value, msg.slot, msg.ballot
            last = self._last
            # The same value object can be in two slots (the no-op): the slot is compared too.
            if (last is not None and last[0] is value and last[1] is t and last[2] is ballot
                    and last[3] == slot):
                return last[4]
            crc, commands = self._digest(slot, value)
            note = (_ACCEPT if t is Accept else _ACCEPTED, ballot, slot, slot, crc, commands, None)
            self._last = (value, t, ballot, slot, note)
            return note
        return records.note(msg, self._digest)

    def sent(self, peer: str, note: Note, generation: int, n: int,
             dropped: str | None = None) -> None:
        """A message queued on the connection `generation` to `peer` as its
        frame `n`; or, with `dropped` (n 0), one that never reached a
        connection; n 0 and no `dropped`: one to this agent itself."""
        self._seq += 1
        self._ring.append((self._seq, "send", note, peer, 0, generation, n, self._clock(),
                           dropped))

    def received(self, peer: str, note: Note, peer_incarnation: int, generation: int,
                 n: int) -> None:
        """A message read from `peer` as frame `n` of its connection `generation`."""
        self._seq += 1
        self._ring.append((self._seq, "recv", note, peer, peer_incarnation, generation, n,
                           self._clock(), None))

    def decided(self, slot: int, value: Any) -> None:
        """This learner learned `value` for `slot` (a local record)."""
        self._seq += 1
        self._ring.append((self._seq, "local", records.decided_note(slot, value, self._digest),
                           None, 0, 0, 0, self._clock(), None))

    # -------------------------------------------------------------- reading

    @property
    def last(self) -> int:
        """The newest record's seq (0: none yet)."""
        return self._seq

    def since(self, seq: int, limit: int) -> Page:
        """Up to `limit` records numbered above `seq`, oldest first, as dicts.
        A `seq` above the newest (the agent restarted since the reader last
        asked: numbers start again) gives no items and the newest number."""
        if not self.size:
            return Page([], 0, False, 1)
        ring = self._ring
        newest = self._seq
        first = newest - len(ring) + 1
        start = max(seq + 1, first)
        skip = start - first
        rows = list(islice(ring, skip, skip + limit)) if start <= newest else []
        items = [self._as_dict(row) for row in rows]
        last = rows[-1][0] if rows else newest
        return Page(items, last, start > seq + 1 and seq < newest, first)

    def _as_dict(self, row: tuple) -> dict[str, Any]:
        seq, direction, note, peer, peer_incarnation, generation, n, mono, dropped = row
        if not n:  # dropped, local, or a message to itself (never on a connection)
            link = None
        elif direction == "send":
            link = [self.agent, self.incarnation, peer, generation, n]
        else:
            link = [peer, peer_incarnation, self.agent, generation, n]
        return records.record(note, seq=seq, agent=self.agent, incarnation=self.incarnation,
                              direction=direction, peer=peer, link=link, mono=mono,
                              at=mono + self._wall, dropped=dropped)
