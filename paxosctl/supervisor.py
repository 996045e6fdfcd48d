"""The supervisor behind `paxosctl up`: the control plane of one cluster.

One thread runs the loop (`Supervisor.serve`) and owns all state. It
waits (epoll) on every agent's outbox and process sentinel, the control
socket and its clients, and a wake-up pipe; other threads (the metrics
server's, signal handlers) only post events to its queue and poke that
pipe. The loop

- spawns agents, tracks their heartbeats, kills those that miss them
  and restarts ended ones per the restart policy (paxosctl.restart) with
  backoff;
- serves the control socket (paxosctl.control) a bounded share per client
  per turn, each operation a handler in `OPS`;
- aggregates the agents' reports into metrics.

It is not on the data path: agents talk to each other and clients talk
to proposers and learners directly, over the endpoints in `run/`
(paxos_agents.runtime.transport; `endpoints.json` tells clients where).
A supervisor stopped with SIGSTOP stalls no command, and its health
clock does not blame agents for the silence its own stall caused.
"""

from __future__ import annotations

import collections
import json
import logging
import multiprocessing
import os
import queue
import selectors
import signal
import threading
import time
from typing import Any, Callable, Mapping

import psutil

from paxos_agents.core.config import Membership, Settings
from paxos_agents.runtime import frames
from paxos_agents.runtime.spec import AgentSpec as RuntimeSpec

from . import __version__
from .agents import AgentProcess, Channel, monotonic
from .chaos import ChaosSettings, update as update_chaos
from .control import ClientConnection, ControlServer, Fault, OpError, Request
from .endpoints import ENDPOINTS_VERSION
from .layout import paths
from .manifest import Manifest
from .members import MemberRegistry
from .metrics import AgentSample, Metrics, Snapshot, beat_gauges, beat_totals
from .ownership import Claim
from .restart import AgentState, Lifecycle

log = logging.getLogger("paxosctl.supervisor")

#: SIGTERM, then this long for agents to finish, then SIGKILL.
STOP_GRACE_SECONDS = 5.0
#: How often the loop wakes with nothing to do (timers: health, backoff).
LOOP_WAKE_SECONDS = 0.02
#: A loop turn this much later than it should have come is a stall of the
#: supervisor itself (SIGSTOP, a suspended VM, a starved CPU): heartbeats
#: missed meanwhile are not the agents' fault.
STALL_SECONDS = 0.5
#: How often the loop publishes a metrics snapshot for scrapes.
METRICS_PUBLISH_SECONDS = 0.5


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
        self._stopping = False
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
        #: The faults agents inject into what they send (`[chaos]`, `paxosctl chaos`).
        self.chaos: ChaosSettings = manifest.chaos
        #: When the loop last ran its timers (to tell its own stalls apart).
        self._last_turn = monotonic()

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
            self._write_endpoints()
            now = monotonic()
            for agent in self.agents.values():
                self._spawn(agent, now)
            log.info("cluster %s up: %d agents", self.manifest.name, len(self.agents))
            self._loop()
        finally:
            try:
                self.paths["endpoints"].unlink()  # clients: nothing runs here any more
            except FileNotFoundError:
                pass
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
            run_dir=str(self.paths["run"]),
            incarnation=agent.incarnation + 1,
            max_value_bytes=self.manifest.paxos.max_value_bytes,
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
        if self.chaos.active:
            agent.send(_chaos_frame(self.chaos))

    def _on_frame(self, agent: AgentProcess, frame: bytes) -> None:
        name = agent.name
        kind = frame[:1]
        if kind == frames.HEARTBEAT:
            agent.beat = frames.json_body(frame)
            agent.last_beat = monotonic()
            if agent.state is AgentState.STARTING:
                agent.lifecycle.became_ready(agent.last_beat)
                self.members.started(name)  # from now on it must keep its store
                log.info("%s: running", name)
        elif kind == frames.LOADING:
            if agent.state is AgentState.STARTING:
                agent.last_beat = monotonic()  # alive, still opening its store
        elif kind == frames.FATAL:
            agent.last_error = frame[1:].decode(errors="replace")
            log.error("%s: %s", name, agent.last_error)
        else:
            log.warning("%s: dropped a frame of unknown kind %r", name, kind)

    def _write_endpoints(self) -> None:
        """Tell clients where the data path is: `run/endpoints.json` (see
        paxosctl.client). Written whole, then renamed into place."""
        run = self.paths["run"]
        run.mkdir(mode=0o700, exist_ok=True)
        os.chmod(run, 0o700)
        p = self.manifest.paxos
        body = {
            "version": ENDPOINTS_VERSION,
            "cluster": self.manifest.name,
            "cluster_id": self.members.cluster_id,
            "proposers": list(self.membership.proposers),
            "learners": list(self.membership.learners),
            "retry_seconds": max(1.0, 4 * p.election_timeout),
            "max_value_bytes": p.max_value_bytes,
            "retain_slots": self.settings.retain_slots,
        }
        target = self.paths["endpoints"]
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(body, indent=1) + "\n")
        os.replace(tmp, target)

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
            # timeout (clients resend to whoever leads next).
            for other in self.agents.values():
                if other.name in self.membership.proposers and other.channel is not None:
                    other.send(frames.SUSPECT + name.encode())
        now = monotonic()
        reason = agent.kill_reason or ("killed" if code is not None and code < 0 else "exit")
        failed = code != 0 or reason in ("killed", "health")
        state = agent.lifecycle.exited(now, failed=failed, reason=reason, code=code,
                                       deliberate=agent.operator_kill)
        if code == frames.EXIT_NEEDS_OPERATOR:
            state = agent.lifecycle.give_up()
        log.log(logging.WARNING if failed else logging.INFO,
                "%s: pid %s exited (code %s, %s) -> %s", name, pid, code, reason, state.value)

    def _timers(self, now: float) -> None:
        health = self.manifest.health
        late = now - self._last_turn
        self._last_turn = now
        if late > STALL_SECONDS:
            # We were not running (SIGSTOP, a suspended VM, a starved CPU):
            # the heartbeats we did not read meanwhile say nothing about the
            # agents. Give each a fresh period before judging it again.
            log.warning("the supervisor's loop stalled for %.1fs; not blaming agents for "
                        "heartbeats it did not read meanwhile", late)
            for agent in self.agents.values():
                agent.last_beat = max(agent.last_beat, now)
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
    # --------------------------------------------------------------- leader

    def leader(self) -> AgentProcess | None:
        """The running proposer that reports leading with the highest ballot."""
        best = None
        for agent in self.agents.values():
            beat = agent.beat
            if agent.state is AgentState.RUNNING and beat.get("leader"):
                if best is None or beat["ballot"] > best.beat["ballot"]:
                    best = agent
        return best

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
            for key in ("compacted", "log_start", "installed", "catchup_remaining",
                        "client_commands"):
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
            "chaos": self.chaos.describe(),
            "agents": agents,
        }

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
                self.chaos = update_chaos(self.chaos, changes, tuple(self.agents))
            except ValueError as e:
                raise BadRequest(str(e)) from None
            frame = _chaos_frame(self.chaos)
            for agent in self.agents.values():
                agent.send(frame)  # a starting agent gets it at spawn
            log.warning("chaos now: %s", self.chaos.describe() or "off")
        return {"ok": True, "chaos": self.chaos.describe()}

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

        def total(key: str) -> int:
            return sum(sample.totals.get(key, 0) for sample in samples)

        def learned(key: str) -> int:
            # Every learner applies the same commands: the furthest one's count.
            return max((sample.totals.get(key, 0) for sample in samples
                        if sample.name in self.membership.learners), default=0)
        self.metrics.collector.snapshot = Snapshot(
            cluster=self.manifest.name,
            agents=tuple(samples),
            has_leader=leader is not None,
            leader_changes=self.leader_changes,
            leader_changed_at=self.leader_changed_at,
            proposals={"decided": learned("applied_commands"), "expired": learned("expired")},
            decisions=self.decisions,
            decided_slot=decided_slot,
            hub_dropped={"unreachable": total("dropped:unreachable") + total("dropped:overflow"),
                         "chaos_drop": total("chaos:drop"),
                         "partition": total("chaos:partition")},
            chaos_duplicated=total("chaos:duplicate"),
            chaos_delayed=total("chaos:delay"),
            chaos_active=self.chaos.describe(),
        )

    def _op_down(self, connection, request) -> None:
        self._stop_reply.append((connection, request.id))
        self._stopping = True
        return None


class BadRequest(OpError):
    """A control request names a field wrongly; the message says which and how."""

    def __init__(self, message: str) -> None:
        super().__init__(Fault.BAD_REQUEST, message)


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
    "status": Supervisor._op_status,
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


def _chaos_frame(settings: ChaosSettings) -> bytes:
    """The CHAOS frame that puts `settings` in force at an agent."""
    return frames.json_frame(frames.CHAOS, {
        "drop": settings.drop, "duplicate": settings.duplicate, "delay": settings.delay,
        "partition": list(settings.partition), "seed": settings.seed})
