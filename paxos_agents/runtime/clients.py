"""An agent's side of its client connections (see `clientwire`).

A proposer takes PROPOSE frames and hands each command to its node (which
proposes it as leader, or forwards it to the leader), and tells its
clients which proposer leads (LEADER), so they send there next.

A learner takes WATCH frames: each request id is answered as soon as the
learner knows where it was first decided: at once if its request index
already has it (a retry, or an answer the client missed), else when the
learner applies it. The answer is the command's *position* (slot, index
in the slot's value) and the digest of the first decided payload. QUERY
frames page through the applied log.

Nothing here blocks: answers are queued on the connection and written
with everything else once per loop turn.
"""

from __future__ import annotations

import base64
import json
import logging
from collections import Counter

from typing import Iterable

from ..core.commands import Command, Value
from ..core.node import Node
from ..core.ready import EXPIRED, AppliedSlot
from . import clientwire as wire
from .storage import Storage
from .transport import Connection, Transport

log = logging.getLogger("paxos_agents.agent")

#: Bytes of stored values a `decided` query reads per page at most (about).
QUERY_BYTES = 4 << 20
_NO_DIGEST = b"\0" * 8
#: Commands remembered as taken (see `Clients._taken`) before the decided ones are pruned.
TAKEN_PRUNE_AT = 65_536
#: Entries a `decided` query returns at most.
MAX_QUERY_LIMIT = 100_000


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
                "client_answers": self.counts["answers"]}

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
                self._watch(conn, wire.decode_ids(frame[1:]))
            elif kind == wire.LOOKUP and self._node.learner is not None:
                self._lookup(conn, wire.decode_ids(frame[1:]))
            elif kind == wire.QUERY and self._node.learner is not None:
                self._query(conn, json.loads(frame[1:]))
            else:
                self._error(conn, f"{self._node.node_id} cannot serve a {kind!r} frame")
        except (ValueError, RecursionError, OverflowError) as e:  # WireError, JSON (too deep too)
            self._error(conn, f"malformed {kind!r} frame: {type(e).__name__}: {e}"[:300])

    def _error(self, conn: Connection, message: str, query_id: object = None) -> None:
        self.counts["errors"] += 1
        self._transport.rlog.warning("client-error", "client: %s", message[:300])
        self._transport.reply(conn, wire.REPLY + json.dumps(
            {"id": query_id, "error": message, "code": "bad_request"}).encode())

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
                pending: Iterable[tuple[int, Value]] = ()) -> None:
        """The learner applied these slots: stream each to the subscribers, and
        answer whoever watches a request id in them. `pending`: the decisions
        the same `Ready` is about to persist (installed from a peer, or
        applied), which the disk does not hold yet."""
        subscribers = self._subscribers
        watches = self._watches
        if not subscribers and not watches:
            return
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

    def _decided(self, start: int, limit: int) -> dict:
        """A page of the applied log from slot `start`, read from disk (whole slots).

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
        while len(entries) < limit:
            piece = self._storage.read_log(start, QUERY_BYTES)
            if not piece.decisions:
                break
            for slot, value in piece.decisions:
                if len(entries) >= limit:
                    break  # whole slots only, so the next page starts at a slot
                if not value:
                    entries.append({"slot": slot, "index": 0, "request_id": None,
                                    "value": None, "noop": True})
                seen: set[str] = set()
                for index, command in enumerate(value):
                    rid = command.request_id
                    if piece.first_slots.get(rid) == slot and rid not in seen:
                        seen.add(rid)
                        entries.append({
                            "slot": slot, "index": index, "request_id": rid,
                            "value": base64.b64encode(command.payload).decode(),
                            "noop": False})
                start = slot + 1
            else:
                continue
            break
        return {"entries": entries, "decided_up_to": learner.decided_up_to, "log_start": first}
