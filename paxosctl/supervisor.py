"""The supervisor behind `paxosctl up`: spawns agents, routes, heals, answers.

One thread runs the loop (`Supervisor.serve`) and owns all state. It
waits (epoll) on every agent's outbox and process sentinel, the control
socket and its clients, and a wake-up pipe; other threads (the metrics
server's, signal handlers) only post events to its queue and poke that
pipe. The loop

- routes peer messages between agents without decoding them (the hub);
- tracks heartbeats, kills agents that miss them, restarts ended agents
  per the restart policy (paxosctl.restart) with backoff;
- turns client proposals into PROPOSE frames for the leader, retries
  them until a learner reports them applied, and answers the client with
  the slot where the request id was first decided (or, if it was decided
  with another value, refuses it: `request_id_conflict`);
- serves the control socket (paxosctl.control) a bounded share per client
  per turn, each operation a handler in `OPS`.
"""

from __future__ import annotations

import collections
import hashlib
import heapq
import itertools
import json
import logging
import multiprocessing
import os
import queue
import selectors
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import psutil

from paxos_agents.core.config import Membership, Settings
from paxos_agents.core.ready import EXPIRED
from paxos_agents.runtime import frames
from paxos_agents.runtime.spec import AgentSpec as RuntimeSpec

from . import __version__
from .agents import AgentProcess, Channel, monotonic
from .chaos import Chaos, update as update_chaos
from .control import ClientConnection, ControlServer, Fault, OpError, Request
from .layout import paths
from .manifest import Manifest
from .members import MemberRegistry
from .metrics import AgentSample, Metrics, Snapshot, beat_gauges, beat_totals
from .ownership import Claim
from .restart import AgentState, Lifecycle

log = logging.getLogger("paxosctl.supervisor")

#: SIGTERM, then this long for agents to finish, then SIGKILL.
STOP_GRACE_SECONDS = 5.0
#: How often the loop wakes with nothing to do (timers: health, backoff, retries).
LOOP_WAKE_SECONDS = 0.02
#: Request ids remembered with their first slot, to answer repeats at once.
REMEMBERED_REQUESTS = 100_000
#: Seconds a `decided` query waits for a learner's answer.
QUERY_TIMEOUT_SECONDS = 5.0
#: How often the loop publishes a metrics snapshot for scrapes.
METRICS_PUBLISH_SECONDS = 0.5


@dataclass(slots=True)
class Proposal:
    """A client's value on its way through Paxos."""

    request_id: str
    value: str
    started: float
    deadline: float
    next_try: float
    #: A slot decided before the request was first issued (see Command.issued).
    issued: int = -1
    waiting: list[tuple[ClientConnection, Any]] = field(default_factory=list)


class Supervisor:
    """Runs one cluster from a validated manifest until `down` or a signal.

    `claim` is this process's ownership of the state dir (ownership.claim):
    the supervisor writes there only as its owner, and `serve` releases it
    last.
    """

    def __init__(self, manifest: Manifest, claim: Claim) -> None:
        self.manifest = manifest
        self.claim = claim
        self.paths = paths(manifest.state_dir)
        self.events: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self.selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, ("wake",))
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(["paxos_agents.runtime.main"])
        self.membership = Membership(manifest.proposers, manifest.acceptors, manifest.learners)
        p = manifest.paxos
        self.settings = Settings(
            heartbeat_ticks=p.ticks("heartbeat"),
            election_ticks=p.ticks("election_timeout"),
            accept_timeout_ticks=p.ticks("accept_timeout"),
            retry_cooldown_ticks=p.ticks("retry_cooldown"),
            gap_ticks=p.ticks("gap_timeout"),
            window=p.window,
            batch=p.batch,
            retain_slots=manifest.log.retain,
        )
        self.agents: dict[str, AgentProcess] = {
            spec.name: AgentProcess(spec, Lifecycle(manifest.restart)) for spec in manifest.agents
        }
        #: Who ran here before: their stores must not go missing (see members.py).
        self.members = MemberRegistry(self.paths["members"], cluster_id=claim.identity.id)
        #: A client retries a proposal this often until it is applied.
        self.client_retry = max(1.0, 4 * p.election_timeout)
        self.proposals: dict[str, Proposal] = {}
        self._to_propose: list[str] = []
        #: Applied request ids: the slot each was first decided at, and a digest
        #: of that first value (to refuse the id with another one; see `_digest`).
        self.applied: collections.OrderedDict[str, tuple[int, bytes]] = collections.OrderedDict()
        #: Highest slot a learner reported applying (decided): stamps new requests.
        self.applied_slot = -1
        self._queries: dict[int, tuple[ClientConnection, Any, float, str]] = {}
        self._query_ids = itertools.count(1)
        #: Queries asking a learner for a request id's first value: (request id,
        #: its first slot, deadline) by query id. See `_look_up_first`.
        self._lookups: dict[int, tuple[str, int, float]] = {}
        # Request ids for proposals that come without one: unique per supervisor run.
        self._id_prefix = os.urandom(6).hex() + "-"
        self._ids = itertools.count(1)
        self._stopping = False
        self._retry_on_leader = False
        self._stop_reply: list[tuple[ClientConnection, Any]] = []
        self.started = monotonic()
        self.control = ControlServer(str(self.paths["socket"]), self.selector, self._dispatch)
        self.counters: collections.Counter[str] = collections.Counter()
        self.metrics = Metrics()
        self.metrics.collector.refresh = self._refresh_metrics
        self.metrics_url: str | None = None
        self._next_publish = 0.0
        self._loop_thread: int | None = None
        self._leader_seen: tuple[str, Any] | None = None
        self.leader_changes = 0
        self.leader_changed_at = 0.0
        self.decisions = 0
        self.chaos = Chaos()
        self.chaos.set(manifest.chaos)
        #: Messages the chaos delay holds back: (due, seq, destination, frame).
        self._delayed: list[tuple[float, int, str, bytes]] = []
        self._delay_seq = itertools.count()

    # ------------------------------------------------------------ lifecycle

    def serve(self) -> None:
        """Start everything, run the loop until stopped, then stop every agent
        and release the state dir (see ownership.Claim)."""
        try:
            for key in ("logs", "state"):
                self.paths[key].mkdir(mode=0o700, parents=True, exist_ok=True)
            self.control.start()
            listen = self.manifest.metrics
            if listen.enabled:
                port = self.metrics.serve(listen.host, listen.port)
                host = f"[{listen.host}]" if ":" in listen.host else listen.host
                self.metrics_url = f"http://{host}:{port}/metrics"
                log.info("metrics at %s", self.metrics_url)
            now = monotonic()
            for agent in self.agents.values():
                self._spawn(agent, now)
            log.info("cluster %s up: %d agents", self.manifest.name, len(self.agents))
            self._loop()
        finally:
            self._shutdown()
            self.metrics.close()
            for connection, request_id in self._stop_reply:
                connection.reply({"id": request_id, "ok": True, "stopped": True})
            self.control.close()  # writes what is queued, bounded, then closes
            self.claim.release()

    def request_stop(self, *_: object) -> None:
        """Ask the loop to stop (safe from a signal handler or any thread)."""
        self._post(("stop",))

    def _post(self, event: tuple) -> None:
        """From any thread: queue `event` for the loop and wake it."""
        self.events.put(event)
        try:
            os.write(self._wake_w, b"\0")
        except OSError:
            pass  # the pipe is full: the loop is awake anyway

    def _loop(self) -> None:
        self._loop_thread = threading.get_ident()
        select = self.selector.select
        while not self._stopping:
            timeout = LOOP_WAKE_SECONDS
            if self._delayed:
                timeout = min(timeout, max(0.0, self._delayed[0][0] - monotonic()))
            if self.control.has_work():
                timeout = 0.0  # requests wait in a client's buffer: serve them, not sleep
            for key, _ in select(timeout):
                tag = key.data
                if tag[0] == "out":
                    self._read_agent(tag[1], tag[2])
                elif tag[0] == "dead":
                    self._read_agent(tag[1], tag[2])
                    self._on_exit(tag[1], tag[2])
                elif tag[0] == "in":
                    self._flush_agent(tag[1])
                elif tag[0] in ("accept", "client"):
                    self.control.handle(tag)
                else:  # wake
                    try:
                        while os.read(self._wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
            while True:
                try:
                    event = self.events.get_nowait()
                except queue.Empty:
                    break
                self._handle(event)
            self.control.serve()  # a bounded share per client; the rest next turn
            self._send_proposals()
            for agent in self.agents.values():
                if agent.channel is not None and agent.channel.has_output:
                    self._flush_agent(agent)
            self._timers(monotonic())
            self.control.flush()

    def _read_agent(self, agent: AgentProcess, incarnation: int) -> None:
        channel = agent.channel
        if channel is None or incarnation != agent.incarnation:
            return
        for frame in channel.read():
            self._on_frame(agent, frame)
        if channel.eof:
            self._unwatch(channel, "out")

    def _flush_agent(self, agent: AgentProcess) -> None:
        """Write what the agent's pipe takes; watch for writability if some is left."""
        channel = agent.channel
        if channel is None:
            return
        done = channel.flush()
        if not done and not channel.watching_write:
            self.selector.register(channel.write_fd, selectors.EVENT_WRITE,
                                   ("in", agent, agent.incarnation))
            channel.watching_write = True
        elif done and channel.watching_write:
            self._unwatch(channel, "in")

    def _unwatch(self, channel: Channel, which: str) -> None:
        fd = channel.read_fd if which == "out" else channel.write_fd
        try:
            self.selector.unregister(fd)
        except (KeyError, ValueError):
            pass
        if which == "in":
            channel.watching_write = False

    def _handle(self, event: tuple) -> None:
        kind = event[0]
        if kind == "stop":
            self._stopping = True
        elif kind == "publish":
            self._publish_metrics(monotonic())
            event[1].set()

    def _shutdown(self) -> None:
        """SIGTERM every agent, wait up to the grace period, SIGKILL the rest."""
        running = [a for a in self.agents.values() if a.process is not None]
        for agent in self.agents.values():
            agent.lifecycle.stop()
        for agent in running:
            agent.signal(signal.SIGTERM, "manual")
        deadline = monotonic() + STOP_GRACE_SECONDS
        for agent in running:
            agent.process.join(timeout=max(0.0, deadline - monotonic()))
        for agent in running:
            if agent.process.exitcode is None:
                log.warning("%s: no exit %.0fs after SIGTERM; killing", agent.name,
                            STOP_GRACE_SECONDS)
                agent.signal(signal.SIGKILL)
                agent.process.join(timeout=5)
            self._forget(agent)
            agent.reap()
        for proposal in self.proposals.values():
            for connection, request_id in proposal.waiting:
                connection.fail(request_id, Fault.STOPPED,
                                "the cluster stopped before it was decided: request "
                                f"{proposal.request_id} may still be decided",
                                request_id=proposal.request_id)
        log.info("cluster %s stopped", self.manifest.name)

    # --------------------------------------------------------------- agents

    def _forget(self, agent: AgentProcess) -> None:
        """Stop watching an incarnation's descriptors (before they are closed)."""
        channel = agent.channel
        if channel is not None:
            self._unwatch(channel, "out")
            if channel.watching_write:
                self._unwatch(channel, "in")
        try:
            self.selector.unregister(agent.process.sentinel)
        except (KeyError, ValueError):
            pass

    def _runtime_spec(self, agent: AgentProcess) -> RuntimeSpec:
        member = self.members.member(agent.name)
        return RuntimeSpec(
            name=agent.name,
            membership=self.membership,
            settings=self.settings,
            tick_seconds=self.manifest.paxos.tick,
            heartbeat_seconds=self.manifest.health.heartbeat_interval,
            state_path=str(self.paths["state"] / f"{agent.name}.db"),
            log_path=str(self.paths["logs"] / f"{agent.name}.log"),
            seed=int.from_bytes(os.urandom(8), "big"),
            cluster_id=self.members.cluster_id,
            member_id=member.member_id,
            has_run=member.started,
        )

    def _spawn(self, agent: AgentProcess, now: float) -> None:
        last = agent.lifecycle.last_exit
        if agent.incarnation and last is not None:
            agent.restarts_by_reason[last.reason] += 1
        channel = agent.spawn(self.ctx, self._runtime_spec(agent), now)
        incarnation = agent.incarnation
        self.selector.register(channel.read_fd, selectors.EVENT_READ,
                               ("out", agent, incarnation))
        self.selector.register(agent.process.sentinel, selectors.EVENT_READ,
                               ("dead", agent, incarnation))

    def _on_frame(self, agent: AgentProcess, frame: bytes) -> None:
        name = agent.name
        kind = frame[:1]
        if kind == frames.PEER:
            dst, payload = frames.split_peer(frame)
            if self.chaos.settings.active:
                copies, delay = self.chaos.fate(name, dst)
                if delay:
                    due = monotonic() + delay
                    for _ in range(copies):
                        heapq.heappush(self._delayed,
                                       (due, next(self._delay_seq), dst, frames.PEER + payload))
                    return
            else:
                copies = 1
            for _ in range(copies):
                self._route(dst, frames.PEER + payload)
        elif kind == frames.HEARTBEAT:
            agent.beat = frames.json_body(frame)
            agent.last_beat = monotonic()
            if self._retry_on_leader and agent.beat.get("leader"):
                # A new leader: what the old one had in flight goes to it now.
                self._retry_on_leader = False
                self._to_propose.extend(self.proposals)
            if agent.state is AgentState.STARTING:
                agent.lifecycle.became_ready(agent.last_beat)
                self.members.started(name)  # from now on it must keep its store
                log.info("%s: running", name)
        elif kind == frames.LOADING:
            if agent.state is AgentState.STARTING:
                agent.last_beat = monotonic()  # alive, still opening its store
        elif kind == frames.APPLIED:
            for slot, request_id, payload, first_slot in frames.json_body(frame):
                self._on_applied(slot, request_id, payload, first_slot)
        elif kind == frames.REPLY:
            self._on_reply(frames.json_body(frame))
        elif kind == frames.FATAL:
            agent.last_error = frame[1:].decode(errors="replace")
            log.error("%s: %s", name, agent.last_error)

    def _route(self, dst: str, frame: bytes) -> None:
        target = self.agents.get(dst)
        if target is None or not target.send(frame):
            self.counters["dropped_unreachable"] += 1
        else:
            self.counters["routed"] += 1

    def _on_exit(self, agent: AgentProcess, incarnation: int) -> None:
        """The incarnation's process ended (its sentinel fired): reap, then restart per policy."""
        name = agent.name
        if incarnation != agent.incarnation or agent.process is None:
            return
        pid = agent.pid
        was_leader = bool(agent.beat.get("leader"))
        self._forget(agent)
        code = agent.reap()
        if was_leader:
            # Its death is certain (the sentinel fired): tell the other
            # proposers now rather than let them wait out the election
            # timeout, and retry its proposals as soon as a new leader shows.
            for other in self.agents.values():
                if other.name in self.membership.proposers and other.channel is not None:
                    other.send(frames.SUSPECT + name.encode())
            self._retry_on_leader = True
        now = monotonic()
        reason = agent.kill_reason or ("killed" if code is not None and code < 0 else "exit")
        failed = code != 0 or reason in ("killed", "health")
        state = agent.lifecycle.exited(now, failed=failed, reason=reason, code=code,
                                       deliberate=agent.operator_kill)
        if code == frames.EXIT_NEEDS_OPERATOR:
            state = agent.lifecycle.give_up()
        log.log(logging.WARNING if failed else logging.INFO,
                "%s: pid %s exited (code %s, %s) -> %s", name, pid, code, reason, state.value)
        for query_id, (connection, request_id, _, learner) in list(self._queries.items()):
            if learner == name:
                del self._queries[query_id]
                connection.fail(request_id, Fault.AGENT_EXITED,
                                f"{name} exited before answering; try again")

    def _timers(self, now: float) -> None:
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            _, _, dst, frame = heapq.heappop(delayed)
            self._route(dst, frame)
        health = self.manifest.health
        for agent in self.agents.values():
            state = agent.state
            if state is AgentState.RUNNING and now - agent.last_beat > health.heartbeat_timeout:
                agent.health_failures += 1
                log.warning("%s: no heartbeat for %.1fs; killing it", agent.name,
                            now - agent.last_beat)
                agent.signal(signal.SIGKILL, "health")
            elif state is AgentState.STARTING and now - agent.last_beat > health.start_timeout:
                agent.health_failures += 1
                log.warning("%s: no first heartbeat within %.1fs; killing it", agent.name,
                            health.start_timeout)
                agent.signal(signal.SIGKILL, "health")
            elif agent.lifecycle.due(now) and agent.process is None:
                self._spawn(agent, now)
        if now >= self._next_publish:
            self._next_publish = now + METRICS_PUBLISH_SECONDS
            self._publish_metrics(now)
        for proposal in list(self.proposals.values()):
            if now >= proposal.deadline:
                self._expire(proposal)
            elif now >= proposal.next_try:
                proposal.next_try = now + self.client_retry
                self._to_propose.append(proposal.request_id)
        for query_id, (connection, request_id, deadline, learner) in list(self._queries.items()):
            if now >= deadline:
                del self._queries[query_id]
                connection.fail(request_id, Fault.TIMEOUT, f"{learner} did not answer in time")
        for query_id, (_, _, deadline) in list(self._lookups.items()):
            if now >= deadline:  # the proposal's own retry asks again
                del self._lookups[query_id]

    # ------------------------------------------------------------ proposals

    def leader(self) -> AgentProcess | None:
        """The running proposer that reports leading with the highest ballot."""
        best = None
        for agent in self.agents.values():
            beat = agent.beat
            if agent.state is AgentState.RUNNING and beat.get("leader"):
                if best is None or beat["ballot"] > best.beat["ballot"]:
                    best = agent
        return best

    def _proposal_target(self) -> AgentProcess | None:
        leader = self.leader()
        if leader is not None:
            return leader
        running = [a for a in self.agents.values()
                   if a.state is AgentState.RUNNING and a.name in self.membership.proposers]
        if not running:
            return None
        return running[int(monotonic() * 10) % len(running)]

    def _send_proposals(self) -> None:
        if not self._to_propose:
            return
        target = self._proposal_target()
        if target is None:
            self._to_propose.clear()  # retried by the timer once a proposer runs
            return
        batch = []
        for request_id in dict.fromkeys(self._to_propose):
            proposal = self.proposals.get(request_id)
            if proposal is not None:
                batch.append([request_id, proposal.value, proposal.issued])
        self._to_propose.clear()
        if batch:
            target.send(frames.json_frame(frames.PROPOSE, batch))

    def _on_applied(self, slot: int, request_id: str, payload: str, first_slot: int) -> None:
        """A learner applied `request_id` at `slot`: first decided at `first_slot`.

        A learner reports every command it applies, the re-decided ones too
        (`slot` > `first_slot`, nothing applied); `payload` is the value
        decided at `slot`. So when one request id reached Paxos with two
        values (a retry that changed its value while the first one was in
        flight, before a supervisor restart say), only the value decided at
        `first_slot` counts: a proposal waiting with another value is
        refused as `request_id_conflict`, never acknowledged.
        """
        if slot > self.applied_slot:
            self.applied_slot = slot
        if first_slot == EXPIRED:
            self._on_expired(slot, request_id)
            return
        known = self.applied.get(request_id)
        if known is None and slot == first_slot:
            known = self._remember(request_id, first_slot, payload)
        proposal = self.proposals.get(request_id)
        if proposal is None:
            return
        if known is None:
            # Decided again, first decided before what we remember (before this
            # supervisor started): the first value is on the learners' disks.
            self._look_up_first(request_id, first_slot)
            return
        self._settle(proposal, *known)

    def _remember(self, request_id: str, first_slot: int, value: str) -> tuple[int, bytes]:
        known = self.applied[request_id] = (first_slot, _digest(value))
        self.counters["applied"] += 1
        if len(self.applied) > REMEMBERED_REQUESTS:
            self.applied.popitem(last=False)
        return known

    def _settle(self, proposal: Proposal, first_slot: int, digest: bytes) -> None:
        """Answer `proposal`, whose request id was first decided at `first_slot`."""
        del self.proposals[proposal.request_id]
        if digest != _digest(proposal.value):
            self.counters["proposals_rejected"] += 1
            log.warning("request id %r: decided at slot %d with another value; refusing %s",
                        proposal.request_id, first_slot, _show(proposal.value))
            for connection, rid in proposal.waiting:
                connection.fail(rid, Fault.REQUEST_ID_CONFLICT,
                                _conflict(proposal.request_id, first_slot),
                                request_id=proposal.request_id, slot=first_slot)
            return
        elapsed = monotonic() - proposal.started
        self.counters["proposals_decided"] += 1
        self.metrics.proposal_duration.observe(elapsed)
        for connection, rid in proposal.waiting:
            connection.reply({"id": rid, "ok": True, "slot": first_slot, "value": proposal.value,
                              "request_id": proposal.request_id, "seconds": elapsed})

    def _look_up_first(self, request_id: str, first_slot: int) -> None:
        """Ask a learner for the value `request_id` was first decided with, at `first_slot`.

        Its answer settles the proposal (`_on_looked_up`); if none comes
        (no learner, one that exits), the proposal's retry asks again.
        """
        if any(lookup[0] == request_id for lookup in self._lookups.values()):
            return
        learners = [a for a in self.agents.values()
                    if a.state is AgentState.RUNNING and a.name in self.membership.learners]
        if not learners:
            return
        best = max(learners, key=lambda a: a.beat.get("decided_up_to", -1))
        query_id = next(self._query_ids)
        self._lookups[query_id] = (request_id, first_slot, monotonic() + QUERY_TIMEOUT_SECONDS)
        best.send(frames.json_frame(frames.QUERY, {"id": query_id, "op": "decided",
                                                   "from": first_slot, "limit": 1}))

    def _on_looked_up(self, request_id: str, first_slot: int, reply: dict) -> None:
        if reply.get("code") == "not_retained":
            proposal = self.proposals.pop(request_id, None)
            for connection, rid in proposal.waiting if proposal else ():
                connection.fail(
                    rid, Fault.EXPIRED,
                    f"request id {request_id} was first decided at slot {first_slot}, which "
                    "learners no longer keep, so its value cannot be compared with this one; "
                    "this value was not decided under it (see `paxosctl decided`; propose it "
                    "under a new request id if it is not there)",
                    request_id=request_id, slot=first_slot)
            return
        first = next((e for e in reply.get("entries") or ()
                      if e.get("slot") == first_slot and e.get("request_id") == request_id), None)
        if first is None:
            log.warning("request id %r: no entry at its first slot %d in %s", request_id,
                        first_slot, _show(reply, 200))
            return
        known = self._remember(request_id, first_slot, first["value"])
        proposal = self.proposals.get(request_id)
        if proposal is not None:
            self._settle(proposal, *known)

    def _on_expired(self, slot: int, request_id: str) -> None:
        """Learners refused the request: issued before the log they retain."""
        proposal = self.proposals.pop(request_id, None)
        self.counters["proposals_expired"] += 1
        if proposal is None:
            return
        for connection, rid in proposal.waiting:
            connection.fail(
                rid, Fault.EXPIRED,
                f"request {request_id} expired: it was issued (after slot "
                f"{proposal.issued}) before the {self.settings.retain_slots} slots "
                f"learners keep ([log] retain), so whether it was decided then cannot "
                "be checked; it was not applied now (see `paxosctl decided`; propose "
                "it under a new request id if it is not there)",
                request_id=request_id)

    def _expire(self, proposal: Proposal) -> None:
        del self.proposals[proposal.request_id]
        self.counters["proposals_timeout"] += 1
        for connection, rid in proposal.waiting:
            connection.fail(rid, Fault.TIMEOUT,
                            f"not decided in time, its outcome is unknown: request "
                            f"{proposal.request_id} may still be decided",
                            request_id=proposal.request_id)

    # -------------------------------------------------------------- control

    def _dispatch(self, connection: ClientConnection, request: Request) -> None:
        """Run `request`'s operation (`OPS`); answer now, or later when it returns None."""
        op = request.op
        handler = OPS.get(op)
        if handler is None:
            connection.fail(request.id, Fault.UNKNOWN_OP,
                            f"unknown op {op!r}; known: {', '.join(OPS)}")
            return
        try:
            reply = handler(self, connection, request)
        except OpError as e:
            message = f"bad {op} request: {e.message}" if e.fault is Fault.BAD_REQUEST else e.message
            connection.fail(request.id, e.fault, message, **e.extra)
            return
        except Exception:  # a bug: answer, log, and keep the cluster running
            log.exception("%s request failed", op)
            connection.fail(request.id, Fault.INTERNAL,
                            f"the supervisor failed to handle {op!r}; see its log")
            return
        if reply is not None:
            reply["id"] = request.id
            connection.reply(reply)

    def _op_ping(self, connection, request) -> dict:
        return {"ok": True, "cluster": self.manifest.name, "pid": os.getpid(),
                "version": __version__}

    def _op_propose(self, connection, request) -> dict | None:
        value = request.get("value")
        if not isinstance(value, str):
            raise BadRequest(f'"value" must be a string, got {_show(value)}')
        limit = self.manifest.paxos.max_value_bytes
        size = len(value.encode())
        if size > limit:
            self.counters["proposals_rejected"] += 1
            raise OpError(Fault.TOO_LARGE, f"value is {size} bytes; the limit is {limit} "
                                           "(paxos.max_value_bytes)")
        request_id = request.get("request_id")
        if request_id is None:
            request_id = f"{self._id_prefix}{next(self._ids)}"
        elif (not isinstance(request_id, str) or not 0 < len(request_id) <= 256
              or not request_id.isprintable()):
            raise BadRequest(f'"request_id" must be a string of 1 to 256 printable characters, '
                             f'got {_show(request_id)}')
        timeout = _number(request, "timeout", 10.0, 0.001, 3600.0)
        issued = request.get("issued")
        if issued is not None and (type(issued) is not int or not -1 <= issued < 2**63):
            raise BadRequest(f'"issued" must be an integer from -1 to 2^63-1, got {_show(issued)}')
        known = self.applied.get(request_id)
        if known is not None:
            first_slot, digest = known
            if digest != _digest(value):
                self.counters["proposals_rejected"] += 1
                raise OpError(Fault.REQUEST_ID_CONFLICT, _conflict(request_id, first_slot),
                              request_id=request_id, slot=first_slot)
            return {"ok": True, "slot": first_slot, "value": value,
                    "request_id": request_id, "seconds": 0.0}
        now = monotonic()
        proposal = self.proposals.get(request_id)
        if proposal is None:
            if issued is None:
                # Every slot a learner reported applied was decided before
                # now, so this request cannot be in one of them.
                issued = self.applied_slot
            proposal = self.proposals[request_id] = Proposal(
                request_id, value, now, now + timeout, now + self.client_retry, issued)
            self._to_propose.append(request_id)
            self.counters["proposals"] += 1
        elif proposal.value != value:
            self.counters["proposals_rejected"] += 1
            raise OpError(Fault.REQUEST_ID_CONFLICT,
                          f"request_id_conflict: request id {request_id} is being proposed with "
                          "another value (not decided yet); this value was not proposed under "
                          "it: use a new request id", request_id=request_id)
        else:
            proposal.deadline = max(proposal.deadline, now + timeout)
        proposal.waiting.append((connection, request.id))
        return None

    def _op_status(self, connection, request) -> dict:
        return {"ok": True, **self.status(wide=bool(request.get("wide")))}

    def status(self, wide: bool = False) -> dict:
        """The cluster as `paxosctl status -o json` shows it."""
        now = monotonic()
        leader = self.leader()
        learned = [a.beat.get("decided_up_to") for a in self.agents.values()
                   if a.state is AgentState.RUNNING and a.beat.get("decided_up_to") is not None]
        decided = max(learned, default=-1)
        agents = []
        for agent in self.agents.values():
            uptime = agent.uptime(now)
            row: dict[str, Any] = {
                "name": agent.name,
                "role": agent.spec.role,
                "state": agent.state.value,
                "pid": agent.pid,
                "restarts": agent.lifecycle.restarts,
                "uptime_s": round(uptime, 3) if uptime is not None else None,
            }
            if agent.beat.get("decided_up_to") is not None:
                row["decided_up_to"] = agent.beat["decided_up_to"]
            stats = agent.beat.get("stats") or {}
            for key in ("compacted", "log_start", "installed", "catchup_remaining"):
                if key in stats:
                    row[key] = stats[key]
            if agent.beat.get("state_bytes") is not None:
                row["state_bytes"] = agent.beat["state_bytes"]
            if agent.state is AgentState.BACKOFF:
                row["backoff_s"] = round(agent.lifecycle.backoff_remaining(now), 3)
            if agent.last_error:
                row["error"] = agent.last_error
            last = agent.lifecycle.last_exit
            if last is not None:
                row["last_exit"] = {"reason": last.reason, "code": last.code}
            if wide:
                row.update(process_usage(agent.pid))
                row["last_heartbeat_s"] = (round(now - agent.last_beat, 3)
                                           if agent.process is not None and agent.beat else None)
            agents.append(row)
        return {
            "cluster": self.manifest.name,
            "metrics_url": self.metrics_url,
            "leader": leader.name if leader else None,
            "ballot": leader.beat.get("ballot") if leader else None,
            "decided_up_to": decided if decided >= 0 else None,
            "in_flight": len(self.proposals),  # proposals waiting to be decided
            "chaos": self.chaos.settings.describe(),
            "agents": agents,
        }

    def _op_decided(self, connection, request) -> dict | None:
        start = (_number(request, "from", 0, 0, 2**63 - 1, integer=True)
                 if request.get("from") is not None else None)
        limit = _number(request, "limit", 1000, 1, 100_000, integer=True)
        learners = [a for a in self.agents.values()
                    if a.state is AgentState.RUNNING and a.name in self.membership.learners]
        if not learners:
            raise OpError(Fault.UNAVAILABLE, "no learner is running")
        best = max(learners, key=lambda a: a.beat.get("decided_up_to", -1))
        query_id = next(self._query_ids)
        self._queries[query_id] = (connection, request.id,
                                   monotonic() + QUERY_TIMEOUT_SECONDS, best.name)
        query = {"id": query_id, "op": "decided", "limit": limit}
        if start is not None:
            query["from"] = start
        best.send(frames.json_frame(frames.QUERY, query))
        return None

    def _on_reply(self, reply: dict) -> None:
        """An agent's answer to a QUERY frame: {"id", ...} or {"id", "error", "code"}."""
        lookup = self._lookups.pop(reply.get("id"), None)
        if lookup is not None:
            self._on_looked_up(lookup[0], lookup[1], reply)
            return
        waiting = self._queries.pop(reply.get("id"), None)
        if waiting is None:
            return
        connection, request_id, _, learner = waiting
        if "error" in reply:  # the agent's reply frame, not a control request
            code = reply.get("code")
            fault = Fault(code) if code in Fault.__members__.values() else Fault.AGENT_ERROR
            connection.fail(request_id, fault, str(reply["error"]),
                            log_start=reply.get("log_start"))
            return
        connection.reply({"id": request_id, "ok": True, "learner": learner,
                          "entries": reply["entries"], "decided_up_to": reply["decided_up_to"],
                          "log_start": reply.get("log_start", 0)})

    def _agent(self, request: Request) -> AgentProcess:
        name = request.get("agent")
        agent = self.agents.get(name) if isinstance(name, str) else None
        if agent is None:
            raise BadRequest(f'"agent": no agent {_show(name)}; agents: {", ".join(self.agents)}')
        return agent

    def _op_kill(self, connection, request) -> dict:
        agent = self._agent(request)
        given = request.get("signal", "KILL")
        name = given.upper().removeprefix("SIG") if isinstance(given, str) else ""
        signum = getattr(signal, f"SIG{name}", None) if name.isalnum() else None
        if not isinstance(signum, signal.Signals):
            raise BadRequest(f'"signal": unknown signal {_show(given)}; e.g. KILL, TERM, STOP, CONT')
        pid = agent.pid
        ending = signum in (signal.SIGKILL, signal.SIGTERM)
        if ending:
            agent.operator_kill = True
        if not agent.signal(signum, "killed" if ending else None):
            raise OpError(Fault.NOT_RUNNING, f"{agent.name} is not running ({agent.state.value})")
        return {"ok": True, "agent": agent.name, "pid": pid, "signal": signum.name}

    def _op_restart(self, connection, request) -> dict:
        agent = self._agent(request)
        if agent.process is not None:
            agent.signal(signal.SIGTERM, "manual")
        else:
            agent.lifecycle.reset()
            agent.last_error = None
            self._spawn(agent, monotonic())
        return {"ok": True, "agent": agent.name}

    def _op_chaos(self, connection, request) -> dict:
        changes = {k: request.get(k) for k in ("drop", "duplicate", "delay", "partition", "heal")
                   if k in request}
        if changes:
            try:
                settings = update_chaos(self.chaos.settings, changes, tuple(self.agents))
            except ValueError as e:
                raise BadRequest(str(e)) from None
            self.chaos.set(settings)
            log.warning("chaos now: %s", self.chaos.settings.describe() or "off")
        return {"ok": True, "chaos": self.chaos.settings.describe()}

    def _op_metrics(self, connection, request) -> dict:
        return {"ok": True, "text": self.metrics.text(), "url": self.metrics_url}

    def _refresh_metrics(self) -> None:
        """Publish a fresh snapshot before a scrape; from another thread, via the loop
        (waiting at most 1s), since only the loop may read the supervisor's state."""
        if threading.get_ident() == self._loop_thread:
            self._publish_metrics(monotonic())
            return
        done = threading.Event()
        self._post(("publish", done))
        done.wait(1.0)

    def _publish_metrics(self, now: float) -> None:
        """Hand the metrics HTTP thread a fresh, immutable snapshot."""
        leader = self.leader()
        seen = (leader.name, leader.beat.get("ballot")) if leader else None
        if seen is not None and seen != self._leader_seen:
            if self._leader_seen is not None:
                self.leader_changes += 1
            self._leader_seen = seen
            self.leader_changed_at = time.time()
        samples = []
        decided_slot = -1
        for agent in self.agents.values():
            usage = process_usage(agent.pid)
            if usage["cpu_s"] is not None:
                agent.cpu_current = usage["cpu_s"]
            beat = agent.beat if agent.process is not None else {}
            totals = agent.past_totals + beat_totals(beat) if beat else agent.past_totals
            ballot = beat.get("ballot")
            if beat.get("decided_up_to") is not None:
                decided_slot = max(decided_slot, beat["decided_up_to"])
            samples.append(AgentSample(
                name=agent.name, role=agent.spec.role, up=agent.state is AgentState.RUNNING,
                restarts=dict(agent.restarts_by_reason), health_failures=agent.health_failures,
                cpu_seconds=agent.cpu_past + agent.cpu_current, rss_bytes=usage["rss_bytes"],
                backoff_seconds=agent.lifecycle.backoff_remaining(now),
                ballot_round=ballot[0] if ballot else None, totals=dict(totals),
                gauges=beat_gauges(beat) if beat else {}))
        # Learners restore their decisions from disk, so this only grows.
        self.decisions = max(self.decisions, decided_slot + 1)
        self.metrics.collector.snapshot = Snapshot(
            cluster=self.manifest.name,
            agents=tuple(samples),
            has_leader=leader is not None,
            leader_changes=self.leader_changes,
            leader_changed_at=self.leader_changed_at,
            proposals={"decided": self.counters["proposals_decided"],
                       "timeout": self.counters["proposals_timeout"],
                       "rejected": self.counters["proposals_rejected"],
                       "expired": self.counters["proposals_expired"]},
            decisions=self.decisions,
            decided_slot=decided_slot,
            hub_dropped={"unreachable": self.counters["dropped_unreachable"],
                         "chaos_drop": self.chaos.dropped,
                         "partition": self.chaos.partitioned},
            chaos_duplicated=self.chaos.duplicated,
            chaos_delayed=self.chaos.delayed,
            chaos_active=self.chaos.settings.describe(),
        )

    def _op_down(self, connection, request) -> None:
        self._stop_reply.append((connection, request.id))
        self._stopping = True
        return None


class BadRequest(OpError):
    """A control request names a field wrongly; the message says which and how."""

    def __init__(self, message: str) -> None:
        super().__init__(Fault.BAD_REQUEST, message)


def _digest(value: str) -> bytes:
    """What the supervisor keeps of an applied value: enough to tell another value apart."""
    return hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _conflict(request_id: str, first_slot: int) -> str:
    return (f"request_id_conflict: request id {request_id} was decided at slot {first_slot} "
            "with another value; this value was not decided under it: use a new request id")


def _show(value: Any, limit: int = 40) -> str:
    """A short, one-line rendering of a client's value for an error message."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def _number(request: Request, key: str, default: float, low: float, high: float,
            *, integer: bool = False) -> Any:
    """request[key] (or `default`) checked to be a number from `low` to `high`."""
    value = request.get(key, default)
    kind = "an integer" if integer else "a number"
    ok = (not isinstance(value, bool) and isinstance(value, int if integer else (int, float))
          and low <= value <= high)  # False for NaN and for infinities out of range
    if not ok:
        raise BadRequest(f'"{key}" must be {kind} from {low:g} to {high:g}, got {_show(value)}')
    return value


#: Every control operation: its name on the wire, and its handler. A handler
#: returns the reply, or None when it answers later (or never: `down`);
#: it refuses a request by raising `OpError` (`BadRequest` for a bad field).
OPS: Mapping[str, Callable[[Supervisor, ClientConnection, Request], dict | None]] = {
    "ping": Supervisor._op_ping,
    "propose": Supervisor._op_propose,
    "status": Supervisor._op_status,
    "decided": Supervisor._op_decided,
    "kill": Supervisor._op_kill,
    "restart": Supervisor._op_restart,
    "metrics": Supervisor._op_metrics,
    "chaos": Supervisor._op_chaos,
    "down": Supervisor._op_down,
}


def process_usage(pid: int | None) -> dict[str, Any]:
    """CPU seconds and resident memory of `pid` (None when it is gone)."""
    if pid is None:
        return {"cpu_s": None, "rss_bytes": None}
    try:
        p = psutil.Process(pid)
        with p.oneshot():
            cpu = p.cpu_times()
            return {"cpu_s": round(cpu.user + cpu.system, 3), "rss_bytes": p.memory_info().rss}
    except psutil.Error:
        return {"cpu_s": None, "rss_bytes": None}
