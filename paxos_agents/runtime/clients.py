"""An agent's side of its client connections (see `clientwire`).

A proposer takes PROPOSE frames and hands each command to its node (which
proposes it as leader, or forwards it to the leader), and tells its
clients which proposer leads (LEADER), so they send there next.

A learner takes WATCH frames: each request id is answered as soon as the
learner knows where it was first decided: at once if its request index
already has it (a retry, or an answer the client missed), else when the
learner applies it. The answer is the command's *position* (slot, index
in the slot's value) and the digest of the first decided payload. PAGE
(binary) and QUERY (JSON) frames page through the applied log.

Subscribers get every slot the learner applies, and every slot it
installs from a peer (state transfer) as well: to a subscriber both are
"applied here now", and `decided --follow` must see them all.

Nothing here blocks, and no request holds the loop for long: a WATCH or
LOOKUP frame holds at most `clientwire.MAX_IDS_PER_FRAME` ids (the
transport reads 64 KiB per turn, so a client's long list is spread over
turns), and a page stops at `PAGE_BYTES` of values or `PAGE_SECONDS` of
reading, whichever comes first (whole slots, at least one). Answers are
queued on the connection and written with everything else once per loop
turn.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections import Counter

from typing import Iterable

from ..core.commands import Command, Value
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
#: Commands remembered as taken (see `Clients._taken`) before the decided ones are pruned.
TAKEN_PRUNE_AT = 65_536
#: Entries a `decided` query returns at most.
MAX_QUERY_LIMIT = wire.MAX_PAGE_ENTRIES


class Clients:
    """The client connections of one agent, and the request ids they watch."""

    def __init__(self, node: Node, storage: Storage, transport: Transport,
                 max_value_bytes: int = 1 << 20) -> None:
        self._node = node
        self._max_value_bytes = max_value_bytes
        self._storage = storage
        self._transport = transport
        self._connections: set[Connection] = set()
        #: Clients that receive every slot applied (SUBSCRIBE).
        self._subscribers: set[Connection] = set()
        #: request id -> the connections waiting to hear where it was decided.
        self._watches: dict[str, list[Connection]] = {}
        #: request id -> payload, for the commands this proposer took and has
        #: not seen decided: the same id with another payload is refused.
        self._taken: dict[str, bytes] = {}
        self.counts: Counter[str] = Counter()

    def stats(self) -> dict[str, int]:
        return {"client_connections": len(self._connections),
                "client_commands": self.counts["commands"],
                "client_watches": len(self._watches),
                "client_subscribers": len(self._subscribers),
                "client_answers": self.counts["answers"],
                "client_refused": self.counts["refused_frames"]}

    # -------------------------------------------------------------- frames

    def on_frame(self, conn: Connection, frame: bytes | None) -> None:
        """A new client (None), one of its frames, or its end (b"")."""
        if frame is None:
            self._connections.add(conn)
            return
        if not frame:
            self._forget(conn)
            return
        kind = frame[:1]
        try:
            if kind == wire.PROPOSE and self._node.proposer is not None:
                self._propose(conn, wire.decode_commands(frame[1:]))
            elif kind == wire.SUBSCRIBE and self._node.learner is not None:
                self._subscribers.add(conn)
                self._transport.reply(conn, wire.encode_subscribed(
                    self._node.learner.decided_up_to))
            elif kind == wire.WATCH and self._node.learner is not None:
                self._watch(conn, wire.decode_ids(frame[1:], wire.MAX_IDS_PER_FRAME))
            elif kind == wire.LOOKUP and self._node.learner is not None:
                self._lookup(conn, wire.decode_ids(frame[1:], wire.MAX_IDS_PER_FRAME))
            elif kind == wire.PAGE and self._node.learner is not None:
                self._page(conn, *wire.decode_page_query(frame[1:]))
            elif kind == wire.QUERY and self._node.learner is not None:
                self._query(conn, json.loads(frame[1:]))
            else:
                self._error(conn, f"{self._node.node_id} cannot serve a {kind!r} frame")
        except wire.OverLimit as e:  # refused, not served: counted (client_refused)
            self.counts["refused_frames"] += 1
            self._error(conn, f"refused a {kind!r} frame: {e}", code="over_limit")
        except (ValueError, RecursionError, OverflowError) as e:  # WireError, JSON (too deep too)
            self._error(conn, f"malformed {kind!r} frame: {type(e).__name__}: {e}"[:300])

    def _error(self, conn: Connection, message: str, query_id: object = None,
               code: str = "bad_request") -> None:
        self.counts["errors"] += 1
        self._transport.rlog.warning("client-error", "client: %s", message[:300])
        self._transport.reply(conn, wire.REPLY + json.dumps(
            {"id": query_id, "error": message, "code": code}).encode())

    def _forget(self, conn: Connection) -> None:
        self._connections.discard(conn)
        self._subscribers.discard(conn)
        if not self._watches:
            return
        for rid in [r for r, conns in self._watches.items() if conn in conns]:
            conns = self._watches[rid]
            conns[:] = [c for c in conns if c is not conn]
            if not conns:
                del self._watches[rid]

    # ------------------------------------------------------------ proposer

    def _propose(self, conn: Connection, commands: tuple[Command, ...]) -> None:
        node = self._node
        limit = self._max_value_bytes
        taken = self._taken
        if len(taken) > TAKEN_PRUNE_AT:
            self._prune_taken()
        refused = []
        accepted = []
        for command in commands:
            rid, payload = command.request_id, command.payload
            if len(payload) > limit:
                refused.append(wire.Outcome(rid, wire.TOO_LARGE, limit, 0, _NO_DIGEST))
                continue
            first = taken.setdefault(rid, payload)
            if first != payload:
                if node.proposer.is_outstanding(rid):
                    refused.append(wire.Outcome(rid, wire.CONFLICT, -1, 0, wire.digest(first)))
                    continue
                taken[rid] = payload
            accepted.append(command)
        node.propose_batch(tuple(accepted) if refused else commands)
        self.counts["commands"] += len(commands) - len(refused)
        if refused:
            self.counts["refused"] += len(refused)
            self._transport.reply(conn, wire.OUTCOMES + wire.encode_outcomes(refused))
        if not node.is_leader:
            # It was forwarded (or held until a leader shows): say where to send next.
            leader = node.proposer.leader if node.proposer else None
            self._transport.reply(conn, wire.LEADER + (leader or "").encode())

    def _prune_taken(self) -> None:
        """Forget the commands no longer outstanding here (decided, or gone)."""
        outstanding = self._node.proposer.is_outstanding
        self._taken = {rid: p for rid, p in self._taken.items() if outstanding(rid)}

    def leader_changed(self, leader: str | None) -> None:
        """Tell every client of this proposer who leads now."""
        frame = wire.LEADER + (leader or "").encode()
        for conn in self._connections:
            self._transport.reply(conn, frame)

    # ------------------------------------------------------------- learner

    def _watch(self, conn: Connection, request_ids: list[str]) -> None:
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
                self._watches.setdefault(rid, []).append(conn)
            else:
                answers.append(self._first_position(rid, first))
        if answers:
            self._answer(conn, answers)

    def _lookup(self, conn: Connection, request_ids: list[str]) -> None:
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
                self._watches.setdefault(rid, []).append(conn)
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
        subscribers = self._subscribers
        watches = self._watches
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
        watches = self._watches
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

    def _query(self, conn: Connection, query: dict) -> None:
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

    def _page(self, conn: Connection, query_id: int, start: int | None, limit: int) -> None:
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
