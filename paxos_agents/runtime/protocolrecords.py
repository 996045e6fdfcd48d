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

Cost. Records are per message, never per command, and they are kept as
fixed-size binary rows (`ROW`: 72 bytes) written in place in one
preallocated bytearray, names as indexes into a small table: no object is
made or freed per record. Measured (BENCHMARKS.md "Issue 25"), a ring of
Python tuples cost 5-15% of an agent's CPU per command on a busy 2-core
machine, nearly all of it in touching memory the agent's other work had
pushed out of the CPU caches (a record made, a record dropped from the
ring), not in the instructions; rows in place cost about a third of that.
A message costs one call here (`record`: by the transport when it queues
the frame or drops it, by the agent's receive path), and no clock read (the agent stamps each loop turn's records with the turn's start,
`now`); the dicts are made only when a reader asks (`since`).

A value is named (`trace.records.value_digest`: crc32 of its bytes) only
where trace.records says, by the proposer that sends an Accept, once for
its copies to every acceptor (the last value named is kept, compared by
identity); an Accept's receipt, an Accepted and a decision carry none (the
trace names them from their ballot), so acceptors and learners never read
a value's bytes for their records. A ring of size 0 records nothing: the
agent and the transport then skip all of it (they hold None, see
`active`).

Sequence numbers count from 1 in each incarnation; the ring drops its
oldest records first, and a reader learns it missed some by `Page.missed`
and the oldest number kept by `Page.first`.
"""

from __future__ import annotations

import struct
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from ..core.ids import Ballot
from ..core.messages import Accept, Accepted
from ..trace import records

#: Records an agent keeps by default (the manifest's paxos.protocol_records):
#: `ROW.size` bytes each, 576 kB, allocated at start.
DEFAULT_SIZE = 8_000
#: The largest ring the manifest allows (paxos.protocol_records): 72 MB.
MAX_SIZE = 1_000_000

#: One record: direction, kind, dropped (codes below), flags (`_NO_*`),
#: peer (a name's index), the ballot's node (a name's index), value crc32,
#: the value's commands, ballot round, first and last slot, the peer's
#: incarnation, connection generation, frame number, monotonic time.
ROW = struct.Struct("<BBBBHHIIqqqqqqd")
_PACK = ROW.pack_into

_DIRECTIONS = ("send", "recv", "local")
#: `record`'s directions.
SEND, RECV, _LOCAL = 0, 1, 2
#: Kinds by code: the message kinds, then the learner's decision (and
#: "other": a kind this table does not know, never an error on the hot path).
_KINDS = (*records.MESSAGE_KINDS, records.DECIDED, "other")
_KIND = {kind: code for code, kind in enumerate(_KINDS)}
_K_ACCEPT, _K_ACCEPTED = _KIND["accept"], _KIND["accepted"]
_DROPS = (None, "chaos", "overflow", "unreachable", "not_admitted", "other")
_DROP = {reason: code for code, reason in enumerate(_DROPS)}
_OTHER_KIND, _OTHER_DROP = len(_KINDS) - 1, len(_DROPS) - 1
#: Flags: the field is None.
_NO_VALUE, _NO_LO, _NO_HI, _NO_BALLOT, _NO_PEER = 1, 2, 4, 8, 16
#: Names kept at most (peers and ballots' nodes: a cluster's agents); past
#: it a name is recorded as "?".
NAMES = 4096

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
        """`clock` (time.monotonic's kind) is read once here; then the
        agent sets `now`."""
        if size < 0:
            raise ValueError(f"protocol records: size must be 0 or more, got {size}")
        self.agent = agent
        self.incarnation = incarnation
        self.size = size
        #: time.time() - time.monotonic() at the start: `at` = mono + this
        #: (wall times are labels only).
        self._wall = time.time() - clock()
        #: The time records are stamped with (`mono`): the agent sets it at the
        #: start of each loop turn (`agent.run`), one clock read a turn, not
        #: one a record: times only label records.
        self.now = clock()
        self._rows = bytearray(ROW.size * size)
        #: Where the next row goes (bytes), and the ring's end.
        self._at = 0
        self._end = ROW.size * size
        self._seq = 0
        #: name -> index, and back (peers, ballots' nodes).
        self._names: dict[str, int] = {}
        self._named: list[str] = []
        #: seq -> a promise's votes or a nack's promised ballot (the rows
        #: hold numbers only), oldest first; pruned as the ring turns.
        self._extras: dict[int, Any] = {}
        self._extra_seqs: deque[int] = deque()
        #: (value, crc32, commands) of the last Accept sent: its copies to the
        #: other acceptors are the same object.
        self._last_named: tuple[Any, int, int] = (None, 0, 0)

    @property
    def active(self) -> "ProtocolRecords | None":
        """Self, or None when the ring is off (size 0): what the hot paths hold."""
        return self if self.size else None

    # ------------------------------------------------------------ recording

    def _name(self, name: str) -> int:
        index = self._names.get(name)
        if index is None:
            if len(self._named) >= NAMES:
                return NAMES  # "?": never a real index
            index = self._names[name] = len(self._named)
            self._named.append(name)
        return index

    def record(self, direction: int, msg: Any, peer: str, peer_incarnation: int = 0,
               generation: int = 0, n: int = 0, dropped: str | None = None) -> None:
        """Record `msg`, `direction` SEND or RECV, the one call a message costs.

        SEND: queued on the connection `generation` to `peer` as its frame
        `n`; with `dropped` (n 0), one that never reached a connection; n 0
        and no `dropped`: one to this agent itself. RECV: read from `peer`
        (of incarnation `peer_incarnation`) as frame `n` of its connection
        `generation`; n 0: a message this agent sent itself (no link)."""
        self._seq += 1
        t = type(msg)
        if t is Accept or t is Accepted:
            # Most rows: written with no call but the pack's once both names
            # are known; a value named only on an Accept sent.
            ballot, slot = msg.ballot, msg.slot
            node = ballot.node_id
            names = self._names
            peer_index = names.get(peer)
            if peer_index is None:
                peer_index = self._name(peer)
            node_index = names.get(node)
            if node_index is None:
                node_index = self._name(node)
            if t is Accept and direction == SEND:
                value = msg.value
                named = self._last_named
                if named[0] is not value:
                    named = self._last_named = (value, *records.value_digest(slot, value))
                flags, crc, commands = 0, named[1], named[2]
            else:
                flags, crc, commands = _NO_VALUE, 0, 0
            _PACK(self._rows, self._at, direction, _K_ACCEPT if t is Accept else _K_ACCEPTED,
                  _DROP.get(dropped, _OTHER_DROP), flags, peer_index, node_index, crc, commands,
                  ballot.round, slot, slot, peer_incarnation, generation, n, self.now)
        else:
            self._pack(direction, records.note(msg, records.value_digest, direction == SEND),
                       peer, peer_incarnation, generation, n, dropped)
        at = self._at + ROW.size
        self._at = at if at < self._end else 0

    def _pack(self, direction: int, note: records.Note, peer: str | None,
              peer_incarnation: int, generation: int, n: int, dropped: str | None) -> None:
        kind, ballot, lo, hi, crc, commands, extra = note
        flags = ((_NO_VALUE if crc is None else 0) | (_NO_LO if lo is None else 0)
                 | (_NO_HI if hi is None else 0) | (_NO_BALLOT if ballot is None else 0)
                 | (_NO_PEER if peer is None else 0))
        _PACK(self._rows, self._at, direction, _KIND.get(kind, _OTHER_KIND),
              _DROP.get(dropped, _OTHER_DROP), flags,
              0 if peer is None else self._name(peer),
              0 if ballot is None else self._name(ballot.node_id), crc or 0, commands or 0,
              0 if ballot is None else ballot.round, lo or 0, hi or 0, peer_incarnation,
              generation, n, self.now)
        if extra is not None:
            self._extras[self._seq] = extra
            self._extra_seqs.append(self._seq)
            oldest = self._seq - self.size
            while self._extra_seqs[0] <= oldest:
                del self._extras[self._extra_seqs.popleft()]

    def decided(self, slot: int) -> None:
        """This learner learned `slot`'s value (a local record: the value is
        named by the slot's ballots, see trace.records)."""
        self._seq += 1
        self._pack(_LOCAL, records.decided_note(slot), None, 0, 0, 0, None)
        at = self._at + ROW.size
        self._at = at if at < self._end else 0

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
        newest = self._seq
        first = max(1, newest - self.size + 1)
        start = max(seq + 1, first)
        stop = min(newest, start + limit - 1)
        items = [self._as_dict(k) for k in range(start, stop + 1)]
        last = stop if items else newest
        return Page(items, last, start > seq + 1 and seq < newest, first)

    def _as_dict(self, seq: int) -> dict[str, Any]:
        (direction, kind, dropped, flags, peer_index, node_index, crc, commands, round_, lo, hi,
         peer_incarnation, generation, n, mono) = ROW.unpack_from(
            self._rows, ((seq - 1) % self.size) * ROW.size)
        named = self._named
        peer = None if flags & _NO_PEER else (named[peer_index] if peer_index < len(named)
                                              else "?")
        ballot = None if flags & _NO_BALLOT else Ballot(
            round_, named[node_index] if node_index < len(named) else "?")
        note = (_KINDS[kind], ballot, None if flags & _NO_LO else lo,
                None if flags & _NO_HI else hi, None if flags & _NO_VALUE else crc,
                None if flags & _NO_VALUE else commands, self._extras.get(seq))
        dir_ = _DIRECTIONS[direction]
        if not n:  # dropped, local, or a message to itself (never on a connection)
            link = None
        elif dir_ == "send":
            link = [self.agent, self.incarnation, peer, generation, n]
        else:
            link = [peer, peer_incarnation, self.agent, generation, n]
        return records.record(note, seq=seq, agent=self.agent, incarnation=self.incarnation,
                              direction=dir_, peer=peer, link=link, mono=mono,
                              at=mono + self._wall, dropped=_DROPS[dropped])
