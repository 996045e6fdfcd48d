"""An agent's protocol records: the messages it sent and received, and the
slots its learner decided, in a bounded ring (issue 25; the record format is
the contract in the project's i25 format note, repeated here).

A record, as a tool reads it (INFO op "protocol", queries.py):

    {"seq", "agent", "incarnation", "dir": "send" | "recv" | "local",
     "kind": the message's lower-case class name, or "decided" (local),
     "peer": the other end (None for local), "ballot": "round.node" | None,
     "slots": [lo, hi] | None (prepare/promise/fetch: [first_slot, None]),
     "link": [sender, sender_incarnation, receiver, generation, n] | None,
     "mono": time.monotonic(), "at": time.time() (labels only),
     optional: "value" (crc32 of the value's bytes, 8 hex digits),
     "commands", "votes" (promise: [[slot, ballot, value], ...], first 16),
     "promised" (nack), "dropped" (a send that never reached a link:
     "chaos", "overflow", "unreachable", "not_admitted")}

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
dicts above are made only when a reader asks (`since`). A value is hashed
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
import zlib
from collections import deque
from dataclasses import dataclass
from itertools import islice
from typing import Any, Callable

from ..core.messages import (Accept, Accepted, Chunk, Decide, Fetch, Heartbeat, Nack,
                             Prepare, Promise, Retry, Stored)

#: Records an agent keeps by default (the manifest's paxos.protocol_records).
DEFAULT_SIZE = 20_000
#: Votes a promise record lists at most.
VOTES = 16
#: Slots whose value digest is kept, and their values' bytes at most (then
#: the cache starts over): the copies of one slot's value arrive within the
#: window of slots in flight (32 by default: 1 MiB holds 110 values of 9
#: KiB). Past the bound a copy is hashed again: a cost, never a wrong digest.
DIGESTS = 4096
DIGEST_BYTES = 1 << 20

#: A message's own part of a record: (kind, ballot, lo, hi, value crc32 | None,
#: commands | None, extra), `extra` being a promise's votes or a nack's promised ballot.
Note = tuple


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
        self._digests: dict[int, tuple[bytes, int, int]] = {}
        self._digest_bytes = 0  # of the values in `_digests`

    @property
    def active(self) -> "ProtocolRecords | None":
        """Self, or None when the ring is off (size 0): what the hot paths hold."""
        return self if self.size else None

    # ------------------------------------------------------------ recording

    def _digest(self, slot: int, value: Any) -> tuple[bytes, int, int]:
        """(bytes, crc32, commands) of `value`, reusing what is kept for
        `slot` when its bytes are equal (`==` on bytes: identity, then a memcmp)."""
        data = value.data
        digests = self._digests
        kept = digests.get(slot)
        if kept is not None and kept[0] == data:
            return kept
        if len(digests) >= DIGESTS or self._digest_bytes >= DIGEST_BYTES:
            digests.clear()
            self._digest_bytes = 0
        # The count leads a value's encoding (commands.Value.of's layout: a
        # little-endian u32 first; the no-op is empty).
        kept = digests[slot] = (data, zlib.crc32(data),
                                int.from_bytes(data[:4], "little") if len(data) >= 4 else 0)
        self._digest_bytes += len(data)
        return kept

    def note(self, msg: Any) -> Note:
        """The record fields `msg` itself gives (one tuple; see `Note`)."""
        t = type(msg)
        if t is Accept or t is Accepted:
            slot = msg.slot
            _, crc, commands = self._digest(slot, msg.value)
            return ("accept" if t is Accept else "accepted", msg.ballot, slot, slot, crc,
                    commands, None)
        if t is Heartbeat:
            return ("heartbeat", msg.ballot, None, None, None, None, None)
        if t is Decide:
            slot = msg.slot
            _, crc, commands = self._digest(slot, msg.value)
            return ("decide", None, slot, slot, crc, commands, None)
        if t is Prepare:
            return ("prepare", msg.ballot, msg.first_slot, None, None, None, None)
        if t is Promise:
            votes = tuple((v.slot, v.ballot, self._digest(v.slot, v.value)[1])
                          for v in msg.votes[:VOTES])
            return ("promise", msg.ballot, msg.first_slot, None, None, None, votes)
        if t is Nack:
            return ("nack", msg.ballot, None, None, None, None, msg.promised)
        if t is Retry:
            return ("retry", None, msg.slot, msg.slot, None, None, None)
        if t is Fetch:
            return ("fetch", None, msg.first_slot, None, None, None, None)
        if t is Chunk:
            decisions = msg.decisions
            if decisions:
                return ("chunk", None, decisions[0][0], decisions[-1][0], None, None, None)
            return ("chunk", None, None, None, None, None, None)
        if t is Stored:
            return ("stored", None, msg.upto, msg.upto, None, None, None)
        return (t.__name__.lower(), getattr(msg, "ballot", None), None, None, None, None, None)

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
        _, crc, commands = self._digest(slot, value)
        self._seq += 1
        self._ring.append((self._seq, "local", ("decided", None, slot, slot, crc, commands, None),
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
        kind, ballot, lo, hi, crc, commands, extra = note
        if not n:  # dropped, local, or a message to itself (never on a connection)
            link = None
        elif direction == "send":
            link = [self.agent, self.incarnation, peer, generation, n]
        else:
            link = [peer, peer_incarnation, self.agent, generation, n]
        item: dict[str, Any] = {
            "seq": seq, "agent": self.agent, "incarnation": self.incarnation,
            "dir": direction, "kind": kind, "peer": peer,
            "ballot": None if ballot is None else str(ballot),
            "slots": None if lo is None else [lo, hi], "link": link,
            "mono": mono, "at": mono + self._wall}
        if crc is not None:
            item["value"] = f"{crc:08x}"
            item["commands"] = commands
        if kind == "promise":
            item["votes"] = [[slot, str(b), f"{c:08x}"] for slot, b, c in extra]
        elif kind == "nack":
            item["promised"] = str(extra)
        if dropped:
            item["dropped"] = dropped
        return item

