"""The agent event loop: the core wrapped in a process (raft-rs's shell loop).

Each iteration:

1. wait on the inbox until the next tick or heartbeat is due, then read
   every frame already there and `step` the node with it;
2. `tick` the node for each tick period that has passed;
3. drain `Ready`: persist (one SQLite transaction for everything the
   iteration produced: group commit), then send `send_after_persist` and
   `send`, report applied commands; messages to itself are stepped at
   once, after the persist, and drained again;
4. report a heartbeat with its counters when one is due.

A `StorageError` is never swallowed: an agent that cannot make its state
durable must stop rather than answer.
"""

from __future__ import annotations

import logging
import os
import random
import select
import signal
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Callable

from ..core.commands import Command
from ..core.node import Node
from ..core.proposer import Phase
from ..core.ready import log_entries
from . import frames
from .codec import CodecError, decode, encode
from .spec import AgentSpec
from .storage import Storage

log = logging.getLogger("paxos_agents.agent")

#: Bytes read from the inbox per iteration at most, so ticks keep up.
READ_BYTES = 1 << 20
#: Ticks caught up at most after a stall (GC pause, a slow fsync).
MAX_CATCH_UP_TICKS = 5
#: Bytes of stored values a `decided` query reads per page at most (about).
QUERY_BYTES = 4 << 20
#: Seconds between two progress lines of a learner's catch-up.
CATCHUP_LOG_SECONDS = 1.0
#: Upper bounds (seconds) of the persist-latency histogram buckets.
PERSIST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Agent:
    """One agent incarnation: a `Node`, its storage and its two pipes."""

    def __init__(
        self,
        spec: AgentSpec,
        inbox: Connection,
        outbox: Connection,
        storage: Storage,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        # Keep the Connection objects: they own the descriptors.
        self._inbox = inbox
        self._outbox = outbox
        self._inbox_fd = inbox.fileno()
        self._outbox_fd = outbox.fileno()
        self._reader = frames.FrameReader()
        self._out: list[bytes] = []
        self._storage = storage
        self._clock = clock
        self.node = Node(spec.name, spec.membership, spec.settings, storage.load(),
                         random.Random(spec.seed), store=storage)
        self._stopping = False
        self._was_leader = False
        self.received: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.malformed = 0
        self.persist_buckets = [0] * (len(PERSIST_BUCKETS) + 1)
        self.persist_count = 0
        self.persist_sum = 0.0
        self._catchup_logged = (0, 0.0)  # (slots installed, when) at the last progress line

    def stop(self, *_: object) -> None:
        """Finish the current iteration (its persist included), then return from `run`."""
        self._stopping = True

    def run(self) -> None:
        """Serve until stopped or until the supervisor goes away (inbox EOF)."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's to handle
        tick = self.spec.tick_seconds
        beat = self.spec.heartbeat_seconds
        now = self._clock()
        next_tick = now + tick
        next_beat = now  # report at once: the supervisor waits for it
        poller = select.poll()
        poller.register(self._inbox_fd, select.POLLIN)
        while not self._stopping:
            timeout = min(next_tick, next_beat) - self._clock()
            if poller.poll(max(0, int(timeout * 1000) + 1) if timeout > 0 else 0):
                if not self._read_inbox():
                    log.info("supervisor gone (inbox closed); exiting")
                    return
            now = self._clock()
            ticks = 0
            while now >= next_tick:
                if ticks < MAX_CATCH_UP_TICKS:
                    self.node.tick()
                    ticks += 1
                    next_tick += tick
                else:
                    next_tick = now + tick
            self._flush()
            if self.node.is_leader != self._was_leader:
                # Tell the supervisor at once: it routes proposals to the leader.
                self._was_leader = self.node.is_leader
                next_beat = now
            if now >= next_beat:
                self._send(frames.json_frame(frames.HEARTBEAT, self.heartbeat()))
                next_beat = now + beat
                self._log_catchup(now)
            self._write_out()
        self._flush()
        self._write_out()
        log.info("stopped")

    # ---------------------------------------------------------------- input

    def _read_inbox(self) -> bool:
        """Handle every frame that has arrived; False once the supervisor is gone."""
        try:
            data = os.read(self._inbox_fd, READ_BYTES)
        except OSError:
            return False
        if not data:
            return False
        for frame in self._reader.feed(data):
            kind = frame[:1]
            if kind == frames.PEER:
                try:
                    msg = decode(frame[1:])
                except CodecError as e:
                    self.malformed += 1
                    log.warning("dropped a malformed message: %s", e)
                else:
                    self.received[type(msg).__name__] += 1
                    self.node.step(msg)
            elif kind == frames.PROPOSE:
                self._propose(frames.json_body(frame))
            elif kind == frames.QUERY:
                self._answer(frames.json_body(frame))
            elif kind == frames.SUSPECT:
                self.node.suspect(frame[1:].decode())
            else:
                self.malformed += 1
                log.warning("dropped a frame of unknown kind %r", kind)
        return True

    def _propose(self, commands: list) -> None:
        if self.node.proposer is None:
            log.warning("got %d proposal(s) but plays no proposer; dropped", len(commands))
            return
        for request_id, payload, *issued in commands:
            # Boundary: the supervisor pipe speaks str values; the core, bytes.
            self.node.propose(Command(str(request_id),
                                      str(payload).encode("utf-8", "surrogatepass"),
                                      int(issued[0]) if issued else -1))

    def _answer(self, query: dict) -> None:
        reply: dict = {"id": query.get("id")}
        learner = self.node.learner
        if query.get("op") == "decided" and learner is not None:
            start = query.get("from")
            reply.update(self._decided(self._storage.log_start if start is None else int(start),
                                       int(query.get("limit", 1000))))
        else:
            reply["error"] = f"{self.name} cannot answer {query.get('op')!r}"
        self._send(frames.json_frame(frames.REPLY, reply))

    def _decided(self, start: int, limit: int) -> dict:
        """A page of the applied log from slot `start`, read from disk (whole slots)."""
        learner = self.node.learner
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
            for entry in log_entries(piece.decisions, piece.first_slots):
                if len(entries) >= limit and entry.slot != entries[-1]["slot"]:
                    break  # whole slots only, so the next page starts at a slot
                value = (None if entry.payload is None  # boundary: str on the pipe
                         else entry.payload.decode("utf-8", "surrogatepass"))
                entries.append({"slot": entry.slot, "value": value,
                                "request_id": entry.request_id, "noop": entry.noop})
            start = piece.decisions[-1][0] + 1
        return {"entries": entries, "decided_up_to": learner.decided_up_to, "log_start": first}

    # --------------------------------------------------------------- output

    def _flush(self) -> None:
        """Drain `Ready` until the node has nothing more: persist, then send."""
        node = self.node
        while True:
            ready = node.ready()
            if not ready:
                return
            local: list = []
            self._queue_messages(ready.send, local)
            if ready.applied:
                # Reported before this learner's own persist: the decision is
                # already durable at a majority of acceptors; the learner's
                # copy only spares it re-learning the slot after a crash.
                self._send(frames.json_frame(frames.APPLIED, [
                    [a.slot, a.command.request_id,
                     a.command.payload.decode("utf-8", "surrogatepass"),  # boundary: str
                     a.first_slot]
                    for a in ready.applied
                ]))
            if ready.persist:
                self._write_out()  # what needs no persist goes out during the fsync
                self._storage.save(ready.persist)  # StorageError: stop, never answer
                self._observe_persist(self._storage.persist_seconds)
            self._queue_messages(ready.send_after_persist, local)
            for msg in local:
                node.step(msg)  # our own messages, after the persist like any other

    def _queue_messages(self, messages: list, local: list) -> None:
        name = self.name
        for msg in messages:
            if msg.dst == name:
                local.append(msg)
            else:
                self.sent[type(msg).__name__] += 1
                self._send(frames.peer_frame(msg.dst, encode(msg)))

    def _send(self, frame: bytes) -> None:
        """Queue a frame for the supervisor; `_write_out` writes them together."""
        self._out.append(frame)

    def _write_out(self) -> None:
        if not self._out:
            return
        data = memoryview(frames.pack(self._out))
        self._out = []
        try:
            while data:
                data = data[os.write(self._outbox_fd, data):]
        except OSError:
            self._stopping = True  # the supervisor is gone

    def _observe_persist(self, seconds: float) -> None:
        self.persist_count += 1
        self.persist_sum += seconds
        for i, bound in enumerate(PERSIST_BUCKETS):
            if seconds <= bound:
                self.persist_buckets[i] += 1
                return
        self.persist_buckets[-1] += 1

    def heartbeat(self) -> dict:
        """What the supervisor learns with each heartbeat: liveness and counters."""
        node = self.node
        p = node.proposer
        return {
            "name": self.name,
            "leader": p is not None and p.phase is Phase.LEADER,
            "ballot": [p.ballot.round, p.ballot.node_id] if p else None,
            "leader_hint": p.leader if p else None,
            "decided_up_to": node.learner.decided_up_to if node.learner else None,
            "stats": node.stats(),
            "received": dict(self.received),
            "sent": dict(self.sent),
            "malformed": self.malformed,
            "persist": {"count": self.persist_count, "sum": self.persist_sum,
                        "buckets": self.persist_buckets},
            "state_bytes": self._state_bytes(),
        }

    def _state_bytes(self) -> int:
        """Bytes of this agent's state files on disk (the database and its WAL)."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.stat(self.spec.state_path + suffix).st_size
            except OSError:
                pass
        return total

    def _log_catchup(self, now: float) -> None:
        """A progress line, at most once a second, while a learner copies from peers."""
        learner = self.node.learner
        if learner is None or learner.installed == self._catchup_logged[0]:
            return
        if now - self._catchup_logged[1] < CATCHUP_LOG_SECONDS:
            return
        log.info("catching up from peer learners: %d slots copied, applied up to slot %d, "
                 "%d to go", learner.installed, learner.decided_up_to, learner.catchup_remaining)
        self._catchup_logged = (learner.installed, now)
