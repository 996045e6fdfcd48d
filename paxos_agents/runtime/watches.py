"""A learner's desk for its clients: subscriptions, watches, lookups, pages of the log.

A learner takes WATCH frames: each request id is answered as soon as the
learner knows where it was first decided: at once if its request index
already has it (a retry, or an answer the client missed), else when the
learner applies it. The answer is the command's *position* (slot, index
in the slot's value) and the digest of the first decided payload. PAGE
(binary) and QUERY (JSON) frames page through the applied log.

Subscribers get every slot the learner applies, and every slot it
installs from a peer (state transfer) as well: to a subscriber both are
"applied here now", and `decided --follow` must see them all.

No request holds the loop for long: a WATCH or LOOKUP frame holds at
most `clientwire.MAX_IDS_PER_FRAME` ids (the transport reads 64 KiB per
turn, so a client's long list is spread over turns), and a page stops at
`PAGE_BYTES` of values or `PAGE_SECONDS` of reading, whichever comes
first (whole slots, at least one).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections import Counter

from typing import Callable, Iterable

from ..core.commands import Value
from ..core.node import Node
from ..core.ready import EXPIRED, AppliedSlot
from . import clientwire as wire
from .storage import Storage
from .transport import Connection, Transport

log = logging.getLogger("paxos_agents.agent")

#: Bytes of stored values read from disk per step of a page.
READ_BYTES = 1 << 20
#: Bytes of stored values in one JSON page (QUERY "decided"), about: base64
#: makes them 4/3 as many, and the JSON around each entry adds ~100 bytes.
QUERY_BYTES = 4 << 20
#: Seconds of reading one page may take, about (then the page ends early:
#: the client asks for the next one; the loop serves everyone meanwhile).
PAGE_SECONDS = 0.05
_NO_DIGEST = b"\0" * 8
#: Entries a `decided` query returns at most.
MAX_QUERY_LIMIT = wire.MAX_PAGE_ENTRIES


class LearnerDesk:
    """The subscriptions, watches and reads a learner's clients ask of it."""

    def __init__(self, node: Node, storage: Storage, transport: Transport,
                 counts: Counter[str], error: Callable[..., None]) -> None:
        """`counts`: the agent's client counters, shared with the other desk;
        `error(conn, message, query_id)`: how a refusal is answered."""
        self._node = node
        self._storage = storage
        self._transport = transport
        self.counts = counts
        self._error = error
        #: Clients that receive every slot applied (SUBSCRIBE).
        self.subscribers: set[Connection] = set()
        #: request id -> the connections waiting to hear where it was decided.
        self.watches: dict[str, list[Connection]] = {}

    def subscribe(self, conn: Connection) -> None:
        self.subscribers.add(conn)
        self._transport.reply(conn, wire.encode_subscribed(self._node.learner.decided_up_to))

    def forget(self, conn: Connection) -> None:
        """`conn` is gone: it no longer follows or watches anything."""
        self.subscribers.discard(conn)
        if not self.watches:
            return
        for rid in [r for r, conns in self.watches.items() if conn in conns]:
            conns = self.watches[rid]
            conns[:] = [c for c in conns if c is not conn]
            if not conns:
                del self.watches[rid]

    def watch(self, conn: Connection, request_ids: list[str]) -> None:
        learner = self._node.learner
        assert learner is not None
        known = learner.requests.lookup(request_ids)
        durable = self._storage.applied
        answers = []
        for rid in request_ids:
            first = known.get(rid)
            if first is None or first > durable:
                # Not applied yet; or applied by a message stepped earlier in
                # this turn, whose report (`applied`) is still to come.
                self.watches.setdefault(rid, []).append(conn)
            else:
                answers.append(self._first_position(rid, first))
        if answers:
            self._answer(conn, answers)

    def lookup(self, conn: Connection, request_ids: list[str]) -> None:
        """What the index says of each request id now (see clientwire, LOOKUP)."""
        learner = self._node.learner
        assert learner is not None
        known = learner.requests.lookup(request_ids)  # memory, then disk
        durable = self._storage.applied
        answers = []
        for rid in request_ids:
            first = known.get(rid)
            if first is None:
                answers.append(wire.Outcome(rid, wire.UNKNOWN, durable, 0, _NO_DIGEST))
            elif first > durable:  # applied this turn: its report answers it
                self.watches.setdefault(rid, []).append(conn)
                answers.append(wire.Outcome(rid, wire.WATCHING, first, 0, _NO_DIGEST))
            else:
                answers.append(self._first_position(rid, first))
        self._transport.reply(conn, wire.encode_looked_up(durable, answers))

    def _first_position(self, rid: str, first_slot: int) -> wire.Outcome:
        """Where `rid` was first decided, read back from the log on disk."""
        if first_slot < self._storage.log_start:
            return wire.Outcome(rid, wire.NOT_RETAINED, first_slot, 0, _NO_DIGEST)
        piece = self._storage.read_log(first_slot, 1)
        for slot, value in piece.decisions[:1]:
            if slot != first_slot:
                break
            for index, command in enumerate(value):
                if command.request_id == rid:
                    return wire.Outcome(rid, wire.DECIDED, slot, index,
                                        wire.digest(command.payload))
        log.error("request id %s: the index says it was first decided at slot %d, but %s",
                  rid, first_slot, f"slot {piece.decisions[0][0]} does not hold it"
                  if piece.decisions else f"the log has no slot {first_slot} (applied up to "
                  f"{self._storage.applied}, from {self._storage.log_start})")
        return wire.Outcome(rid, wire.NOT_RETAINED, first_slot, 0, _NO_DIGEST)

    def applied(self, slots: list[AppliedSlot],
                pending: Iterable[tuple[int, Value]] = (), upto: int | None = None) -> None:
        """The learner applied these slots: stream each to the subscribers, and
        answer whoever watches a request id in them. `pending`: the decisions
        the same `Ready` is about to persist (installed from a peer, or
        applied), which the disk does not hold yet; `upto`: the applied
        prefix that `Ready` persists. Those of `pending` at or below `upto`
        and not in `slots` were installed by a state transfer: they are
        announced (and answer watches) as if applied here, so a follower
        misses none of them."""
        subscribers = self.subscribers
        watches = self.watches
        if not subscribers and not watches:
            return
        pending = tuple(pending)
        if upto is not None and pending:
            slots = self._with_installed(slots, pending, upto)
        batch = dict(pending)  # first decisions not on disk yet
        batch.update((s.slot, s.value) for s in slots)
        for applied in slots:
            slot, value, firsts = applied.slot, applied.value, applied.firsts
            skipped: dict[int, wire.Skipped] = {}
            if firsts.count(slot) != len(firsts):  # some were not applied here (rare)
                for index, first in enumerate(firsts):
                    if first != slot:
                        skipped[index] = self._skipped(value.commands[index].request_id,
                                                       slot, first, batch)
            if subscribers:
                frame = wire.encode_slot(slot, skipped, value.data)
                for conn in subscribers:
                    self._transport.reply(conn, frame)
                self.counts["streamed"] += len(firsts)
            if watches:
                self._answer_watches(applied, skipped)

    def _with_installed(self, slots: list[AppliedSlot], pending: tuple[tuple[int, Value], ...],
                        upto: int) -> list[AppliedSlot]:
        """`slots` and the slots of `pending` installed by a state transfer
        (at or below `upto`, not applied here), in slot order. Where each of
        their commands was first decided comes from the request index, which
        the install filled (in memory: it is not on disk yet); a command the
        peer refused as expired is not in it."""
        applied = {s.slot for s in slots}
        installed = [(slot, value) for slot, value in pending
                     if slot <= upto and slot not in applied]
        if not installed:
            return slots
        lookup = self._node.learner.requests.lookup
        out = list(slots)
        for slot, value in installed:
            ids = value.request_ids()
            known = lookup(ids) if ids else {}
            out.append(AppliedSlot(slot, value, tuple(known.get(rid, EXPIRED) for rid in ids)))
        out.sort(key=lambda s: s.slot)
        return out

    def _skipped(self, rid: str, slot: int, first: int,
                 batch: dict[int, Value]) -> wire.Skipped:
        """What became of a command of `slot` that was not applied there."""
        if first == EXPIRED:
            return wire.Skipped(wire.EXPIRED, slot, 0, _NO_DIGEST)
        earlier = batch.get(first)
        if earlier is not None:  # first decided in this batch: not on disk yet
            for index, command in enumerate(earlier.commands):
                if command.request_id == rid:
                    return wire.Skipped(wire.DECIDED, first, index, wire.digest(command.payload))
        o = self._first_position(rid, first)
        return wire.Skipped(o.status, o.slot, o.index, o.digest)

    def _answer_watches(self, applied: AppliedSlot, skipped: dict[int, wire.Skipped]) -> None:
        watches = self.watches
        by_conn: dict[Connection, list[wire.Outcome]] = {}
        for index, command in enumerate(applied.value.commands):
            conns = watches.pop(command.request_id, None)
            if conns is None:
                continue
            rid = command.request_id
            s = skipped.get(index)
            if s is None:
                outcome = wire.Outcome(rid, wire.DECIDED, applied.slot, index,
                                       wire.digest(command.payload))
            else:
                outcome = wire.Outcome(rid, s.status, s.slot, s.index, s.digest)
            for conn in conns:
                by_conn.setdefault(conn, []).append(outcome)
        for conn, outcomes in by_conn.items():
            self._answer(conn, outcomes)

    def _answer(self, conn: Connection, outcomes: list[wire.Outcome]) -> None:
        self.counts["answers"] += len(outcomes)
        self._transport.reply(conn, wire.OUTCOMES + wire.encode_outcomes(outcomes))

    def query(self, conn: Connection, query: dict) -> None:
        op = query.get("op") if isinstance(query, dict) else None
        if op != "decided":
            self._error(conn, f"unknown query {op!r}; known: decided",
                        query.get("id") if isinstance(query, dict) else None)
            return
        start = query.get("from")
        limit = query.get("limit", 1000)
        if not (start is None or (type(start) is int and 0 <= start < 2**63)) or \
                type(limit) is not int or not 1 <= limit <= MAX_QUERY_LIMIT:
            self._error(conn, f'"from" must be a slot >= 0 and "limit" from 1 to {MAX_QUERY_LIMIT}',
                        query.get("id"))
            return
        reply = self._decided(self._storage.log_start if start is None else start, limit)
        reply["id"] = query.get("id")
        self._transport.reply(conn, wire.REPLY + json.dumps(reply).encode())

    def page(self, conn: Connection, query_id: int, start: int | None, limit: int) -> None:
        """Answer a PAGE: whole slots from `start`, as stored (see clientwire, PAGED)."""
        learner = self._node.learner
        assert learner is not None
        if not 1 <= limit <= wire.MAX_PAGE_ENTRIES:
            self.counts["refused_frames"] += 1
            self._error(conn, f"a page of {limit} entries; from 1 to {wire.MAX_PAGE_ENTRIES}",
                        query_id, code="over_limit")
            return
        first = self._storage.log_start
        if start is not None and start < first:
            self._transport.reply(conn, wire.encode_page(
                query_id, wire.PAGE_NOT_RETAINED, learner.decided_up_to, first, []))
            return
        slots = [wire.PageSlot(slot, skipped, value.data)
                 for slot, skipped, value in self._read_page(first if start is None else start,
                                                             limit, wire.PAGE_BYTES)]
        self._transport.reply(conn, wire.encode_page(
            query_id, wire.PAGE_OK, learner.decided_up_to, first, slots))

    def _read_page(self, start: int, limit: int,
                   max_bytes: int) -> list[tuple[int, tuple[int, ...], Value]]:
        """Whole applied slots from `start`: (slot, indexes of the commands
        that are not entries, value), until `limit` entries (a no-op slot is
        one), `max_bytes` of values or `PAGE_SECONDS` of reading; at least
        one slot if there is one. The learner's per-command work is one
        index look-up; no command is decoded beyond its request id."""
        out: list[tuple[int, tuple[int, ...], Value]] = []
        entries = size = 0
        deadline = time.monotonic() + PAGE_SECONDS
        while entries < limit and size < max_bytes and time.monotonic() < deadline:
            piece = self._storage.read_log(start, min(READ_BYTES, max_bytes - size))
            if not piece.decisions:
                break
            firsts = piece.first_slots
            for slot, value in piece.decisions:
                if entries >= limit or (out and size >= max_bytes):
                    break  # whole slots only, so the next page starts at a slot
                if not value:
                    skipped: tuple[int, ...] = ()
                    entries += 1
                else:
                    ids = value.request_ids()
                    skipped = tuple(i for i, rid in enumerate(ids) if firsts.get(rid) != slot)
                    if len(set(ids)) != len(ids):  # a request id twice in one slot (rare)
                        seen: set[str] = set()
                        repeats = set(skipped)
                        for i, rid in enumerate(ids):
                            if rid in seen:
                                repeats.add(i)
                            seen.add(rid)
                        skipped = tuple(sorted(repeats))
                    entries += len(ids) - len(skipped)
                out.append((slot, skipped, value))
                size += len(value.data)
                start = slot + 1
            else:
                continue
            break
        return out

    def _decided(self, start: int, limit: int) -> dict:
        """A page of the applied log from slot `start`, read from disk (whole
        slots, bounded as `_read_page`, values base64: the JSON of QUERY).

        Each entry: slot, index (the command's position in the slot's
        value), request_id, value (base64 of the payload bytes), noop.
        """
        learner = self._node.learner
        assert learner is not None
        first = self._storage.log_start
        if start < first:
            return {"error": f"slot {start} is no longer retained; the log starts at slot {first}",
                    "code": "not_retained", "log_start": first}
        entries: list[dict] = []
        for slot, skipped, value in self._read_page(start, limit, QUERY_BYTES):
            if not value:
                entries.append({"slot": slot, "index": 0, "request_id": None,
                                "value": None, "noop": True})
                continue
            skip = set(skipped)
            for index, command in enumerate(value):
                if index not in skip:
                    entries.append({
                        "slot": slot, "index": index, "request_id": command.request_id,
                        "value": base64.b64encode(command.payload).decode(), "noop": False})
        return {"entries": entries, "decided_up_to": learner.decided_up_to, "log_start": first}
