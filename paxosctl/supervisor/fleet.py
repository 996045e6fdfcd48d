"""The fleet: every agent process of one cluster, driven by the supervisor's loop.

The fleet spawns each agent (`paxos_agents.runtime.main`, through a
forkserver), watches its outbox and process sentinel on the loop, reads
its heartbeat reports, reaps it when it ends and restarts it per its
`Lifecycle` (paxosctl.supervisor.restart). On the loop's clock (`tick`) it judges
health: an agent silent for `health.heartbeat_timeout` (or without a
first heartbeat within `health.start_timeout`) is SIGKILLed.

Two hints go down the agents' inbox pipes: SUSPECT, when a leader's
process is seen dead (its peers need not wait out the election timeout),
and CHAOS, the faults every agent injects into what it sends.

Who plays which role, and the configurations agents report, are the
`Roster`'s (paxosctl.supervisor.roster); adding, removing and announcing
members is the membership engine's (paxosctl.supervisor.engine), through
`admit` and `release`.
"""

from __future__ import annotations

import logging
import multiprocessing
import selectors
import signal
from functools import partial
from pathlib import Path
from typing import Any

from paxos_agents.runtime import frames
from paxos_agents.runtime.report import AgentReport
from paxos_agents.runtime.spec import AgentSpec as RuntimeSpec

from .agents import AgentProcess, monotonic
from .chaos import ChaosSettings, update as update_chaos
from .events import EventLog
from .loop import Loop
from ..manifest import Manifest
from .members import MemberRegistry
from .roster import Roster
# membership_of: imported from here by supervisor.py (and tests) since before runspec.py.
from ..runspec import log_file, membership_of, protocol_settings, runtime_spec, state_file
from .restart import AgentState, ExitCause, Lifecycle, exit_text

log = logging.getLogger("paxosctl.supervisor")

#: A loop turn this much later than it should have come is a stall of the
#: supervisor itself (SIGSTOP, a suspended VM, a starved CPU): heartbeats
#: missed meanwhile are not the agents' fault.
STALL_SECONDS = 0.5
#: SIGTERM, then this long for an agent to end, then SIGKILL: for the whole
#: cluster at `down`, for one agent at `paxosctl stop`, for one `apply` removed.
STOP_GRACE_SECONDS = 5.0



class Fleet:
    """The agents of `manifest`, by name, and what the supervisor does to them.

    Every method runs in the loop's thread. `members` is who ran here
    before (paxosctl.supervisor.members): an agent that served once must keep its store.
    """

    def __init__(self, manifest: Manifest, members: MemberRegistry, loop: Loop,
                 state_paths: dict[str, Path], roster: Roster) -> None:
        self.manifest = manifest
        self.members = members
        self._loop = loop
        self._paths = state_paths
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(["paxos_agents.runtime.main"])
        #: Who plays which role, and what the agents report of the configurations.
        self.roster = roster
        self.settings = protocol_settings(manifest)
        self.agents: dict[str, AgentProcess] = {
            spec.name: AgentProcess(spec, Lifecycle(manifest.restart)) for spec in manifest.agents
        }
        #: The faults agents inject into what they send (`[chaos]`, `paxosctl chaos`).
        self.chaos: ChaosSettings = manifest.chaos
        #: When `tick` last ran (to tell the loop's own stalls apart).
        self._last_tick = monotonic()
        #: What happened to the agents (`paxosctl events`); each is logged once.
        self.events = EventLog()

    # ------------------------------------------------------------- spawning

    def start(self, now: float) -> None:
        """Spawn every agent (at `up`); later spawns are restarts."""
        for agent in self.agents.values():
            self.spawn(agent, now)

    def spawn(self, agent: AgentProcess, now: float) -> None:
        """Start `agent`'s next incarnation and watch its outbox and sentinel."""
        last = agent.lifecycle.last_exit
        if agent.incarnation and last is not None:
            agent.restarts_by_reason[last.reason] += 1
        channel = agent.spawn(self._ctx, self._runtime_spec(agent), now)
        incarnation = agent.incarnation
        self.events.record(agent.name, "started",
                           f"started pid {agent.pid} (incarnation {incarnation})")
        self._loop.watch(channel.read_fd, selectors.EVENT_READ,
                         partial(self._on_output, agent, incarnation))
        self._loop.watch(agent.process.sentinel, selectors.EVENT_READ,
                         partial(self._on_sentinel, agent, incarnation))
        if self.chaos.active:
            agent.send(chaos_frame(self.chaos))

    def restart(self, agent: AgentProcess, now: float) -> None:
        """The operator's restart: end a running agent (it comes back at once),
        or start a stopped or fatal one afresh."""
        self.events.record(agent.name, "restart", "restart asked by the operator")
        if agent.process is not None and not agent.held:
            agent.signal(signal.SIGTERM, ExitCause.OPERATOR_RESTART)
        else:
            self.start_agent(agent, now)

    def stop_agent(self, agent: AgentProcess, now: float, grace: float) -> bool:
        """The operator's stop: SIGTERM (SIGKILL after `grace` seconds, in
        `tick`), and keep it stopped, whatever the restart policy, until
        `start_agent`. False if it was already stopped by the operator."""
        if agent.held:
            return False
        agent.held = True
        agent.lifecycle.stop()
        self.events.record(agent.name, "stopping", "stop asked by the operator")
        if agent.signal(signal.SIGTERM, ExitCause.OPERATOR_STOP):
            agent.kill_at = now + grace
        return True

    def start_agent(self, agent: AgentProcess, now: float) -> bool:
        """Start an agent that is stopped (by the operator or its policy) or
        fatal, with its failures forgotten. False if it runs already (or is
        backing off: it starts by itself)."""
        if agent.process is not None and not agent.held:
            return False
        if agent.state is AgentState.BACKOFF:
            return False
        agent.held = False
        if agent.process is not None:
            # Still ending after `stop`: spawned again once reaped (_on_sentinel).
            agent.start_when_reaped = True
            return True
        agent.lifecycle.reset()
        agent.last_error = None
        self.spawn(agent, now)
        return True

    def shown_state(self, agent: AgentProcess, now: float) -> str:
        """The state `status` shows: the lifecycle's, except `unresponsive` for
        a running agent whose heartbeat is late but not yet late enough to
        be killed for it (a SIGSTOPped or wedged process)."""
        state = agent.state
        if state is AgentState.RUNNING and now - agent.last_beat > self.unresponsive_after:
            return "unresponsive"
        return state.value

    @property
    def unresponsive_after(self) -> float:
        """Seconds without a heartbeat before `status` calls a running agent
        unresponsive: three missed heartbeats (at least 1 s, so a busy
        machine does not make it flicker), and at most half the health
        timeout (so it shows before the kill)."""
        health = self.manifest.health
        return min(max(3 * health.heartbeat_interval, 1.0), health.heartbeat_timeout / 2)

    def should_run(self, agent: AgentProcess) -> bool:
        """Whether the agent is meant to run (every agent but one the
        operator stopped): `status` exits 3 when one of these does not."""
        return not agent.held

    def _next(self, agent: AgentProcess, now: float) -> str:
        """What happens next to an agent whose process just ended, in words."""
        state = agent.state
        if state is AgentState.BACKOFF:
            wait = agent.lifecycle.backoff_remaining(now)
            return f"restarting in {wait:.1f}s" if wait > 0 else "restarting now"
        if state is AgentState.FATAL:
            last = agent.lifecycle.last_exit
            if last is not None and last.cause is ExitCause.NEEDS_OPERATOR:
                return "fatal: needs an operator (see its log)"
            return (f"fatal: failed {agent.lifecycle.consecutive_failures} times in a row; "
                    f"start it when fixed")
        if agent.held:
            return "stopped by the operator"
        if state is AgentState.STOPPED:
            return f"stopped (restart policy {self.manifest.restart.policy!r})"
        return state.value

    def _runtime_spec(self, agent: AgentProcess) -> RuntimeSpec:
        member = self.members.member(agent.name)
        return runtime_spec(
            self.manifest, agent.name, membership=self.roster.membership, settings=self.settings,
            state_paths=self._paths, cluster_id=self.members.cluster_id,
            member_id=member.member_id, has_run=member.started,
            # A new cluster's first start: no member has ever run (the
            # registry knows). Later members are admitted by their peers.
            bootstrap=not any(self.members.member(name).started for name in self.members.names),
            configs=history.to_json() if (history := self.roster.history) is not None else None)

    # ------------------------------------------------------------ the pipes

    def _on_output(self, agent: AgentProcess, incarnation: int, mask: int = 0) -> None:
        """The incarnation's outbox is readable: handle every complete frame."""
        channel = agent.channel
        if channel is None or incarnation != agent.incarnation:
            return  # an ended incarnation's event, from the same turn
        for frame in channel.read():
            self._on_frame(agent, frame)
        if channel.eof:
            self._loop.unwatch(channel.read_fd)

    def _on_frame(self, agent: AgentProcess, frame: bytes) -> None:
        name = agent.name
        kind = frame[:1]
        if kind == frames.HEARTBEAT:
            self._on_report(agent, frame)
        elif kind == frames.LOADING:
            if agent.state is AgentState.STARTING:
                agent.last_beat = monotonic()  # alive, still opening its store
        elif kind == frames.FATAL:
            agent.last_error = frame[1:].decode(errors="replace")
            self.events.record(name, "error", agent.last_error, warning=True)
        elif kind == frames.RECONFIG_REFUSED:
            why = frame[1:].decode(errors="replace")
            self.roster.reconfig_refusal = (name, why)
            self.events.record(name, "reconfig", "refused to propose the configuration: " + why,
                               warning=True)
        else:
            log.warning("%s: dropped a frame of unknown kind %r", name, kind)

    def _on_report(self, agent: AgentProcess, frame: bytes) -> None:
        """A HEARTBEAT frame: parsed once into an `AgentReport`. One that is not
        (an agent's bug) is logged, once per incarnation, and ignored: it
        proves no liveness either."""
        try:
            report = AgentReport.from_json(frames.json_body(frame))
            # The report's incarnation is the agent's own (its store's counter);
            # `agent.incarnation` only numbers this supervisor's pipes.
            if report.name != agent.name:
                raise ValueError(f"it is from {report.name}")
            config = report.config
        except (ValueError, RecursionError) as e:  # ReportError (a bad history too), JSON or UTF-8 errors
            if not agent.bad_report_logged:
                agent.bad_report_logged = True
                log.error("%s: ignored a malformed heartbeat report (%s); not logging "
                          "others from this incarnation", agent.name, e)
            return
        agent.report = report
        agent.last_beat = monotonic()
        if config is not None:
            self.roster.reported(config)
        if agent.state is AgentState.STARTING:
            agent.lifecycle.became_ready(agent.last_beat)
            self.members.started(agent.name)  # from now on it must keep its store
            self.events.record(agent.name, "running", "running (first heartbeat)")

    def flush(self) -> None:
        """Write what each agent's inbox pipe takes now."""
        for agent in self.agents.values():
            if agent.channel is not None and agent.channel.has_output:
                self._flush_agent(agent)

    def _on_writable(self, agent: AgentProcess, incarnation: int, mask: int) -> None:
        if incarnation == agent.incarnation:
            self._flush_agent(agent)

    def _flush_agent(self, agent: AgentProcess) -> None:
        """Write what the agent's pipe takes; watch for writability while some is left."""
        channel = agent.channel
        if channel is None:
            return
        done = channel.flush()
        if not done and not channel.watching_write:
            self._loop.watch(channel.write_fd, selectors.EVENT_WRITE,
                             partial(self._on_writable, agent, agent.incarnation))
            channel.watching_write = True
        elif done and channel.watching_write:
            self._loop.unwatch(channel.write_fd)
            channel.watching_write = False

    def _forget(self, agent: AgentProcess) -> None:
        """Stop watching an incarnation's descriptors (before they are closed)."""
        channel = agent.channel
        if channel is not None:
            self._loop.unwatch(channel.read_fd)
            if channel.watching_write:
                self._loop.unwatch(channel.write_fd)
                channel.watching_write = False
        self._loop.unwatch(agent.process.sentinel)

    # -------------------------------------------------------------- endings

    def _on_sentinel(self, agent: AgentProcess, incarnation: int, mask: int = 0) -> None:
        """The incarnation's process ended: read what it wrote last, reap it,
        then restart it per its lifecycle."""
        self._on_output(agent, incarnation)
        if incarnation != agent.incarnation or agent.process is None:
            return
        name = agent.name
        pid = agent.pid
        was_leader = agent.report is not None and agent.report.leader
        self._forget(agent)
        code, cause = agent.reap()
        if was_leader:
            # Its death is certain (the sentinel fired): tell the other
            # proposers now rather than let them wait out the election
            # timeout (clients resend to whoever leads next).
            for other in self.agents.values():
                if other.name in self.roster.membership.proposers and other.channel is not None:
                    other.send(frames.SUSPECT + name.encode())
        now = monotonic()
        agent.kill_at = None
        agent.lifecycle.exited(now, cause, code)
        self.events.record(name, "exited",
                           f"pid {pid} {exit_text(code, cause)} -> {self._next(agent, now)}",
                           warning=cause.failed or (code != 0 and cause is not ExitCause.SHUTDOWN
                                                    and not cause.operator))
        if agent.start_when_reaped:
            agent.start_when_reaped = False
            self.start_agent(agent, now)

    def stop(self, grace: float) -> None:
        """SIGTERM every agent, wait up to `grace` seconds, SIGKILL the rest;
        none is restarted."""
        running = [a for a in self.agents.values() if a.process is not None]
        for agent in self.agents.values():
            agent.lifecycle.stop()
        for agent in running:
            agent.signal(signal.SIGTERM, ExitCause.SHUTDOWN)
        deadline = monotonic() + grace
        for agent in running:
            agent.process.join(timeout=max(0.0, deadline - monotonic()))
        for agent in running:
            if agent.process.exitcode is None:
                log.warning("%s: no exit %.0fs after SIGTERM; killing", agent.name, grace)
                agent.signal(signal.SIGKILL)
                agent.process.join(timeout=5)
            self._forget(agent)
            code, cause = agent.reap()
            agent.lifecycle.exited(monotonic(), cause, code)  # STOPPED -> STOPPED

    # ---------------------------------------------------------------- clock

    def tick(self, now: float) -> None:
        """Health checks and due restarts, at `now` (the loop calls it every turn)."""
        health = self.manifest.health
        late = now - self._last_tick
        self._last_tick = now
        if late > STALL_SECONDS:
            # We were not running (SIGSTOP, a suspended VM, a starved CPU):
            # the heartbeats we did not read meanwhile say nothing about the
            # agents. Give each a fresh period before judging it again.
            self.events.record(None, "stalled",
                               f"the supervisor's loop stalled for {late:.1f}s; not blaming "
                               f"agents for heartbeats it did not read meanwhile", warning=True)
            for agent in self.agents.values():
                agent.last_beat = max(agent.last_beat, now)
        for agent in self.agents.values():
            state = agent.state
            if state is AgentState.RUNNING and now - agent.last_beat > health.heartbeat_timeout:
                agent.health_failures += 1
                self.events.record(agent.name, "unhealthy",
                                   f"no heartbeat for {now - agent.last_beat:.1f}s; killing it",
                                   warning=True)
                agent.signal(signal.SIGKILL, ExitCause.HEALTH)
            elif state is AgentState.STARTING and now - agent.last_beat > health.start_timeout:
                agent.health_failures += 1
                self.events.record(agent.name, "unhealthy",
                                   f"no first heartbeat within {health.start_timeout:.1f}s; "
                                   f"killing it", warning=True)
                agent.signal(signal.SIGKILL, ExitCause.HEALTH)
            elif agent.lifecycle.due(now) and agent.process is None:
                self.spawn(agent, now)
            elif agent.kill_at is not None and agent.process is not None and now >= agent.kill_at:
                agent.kill_at = None
                self.events.record(agent.name, "killing", "still running after SIGTERM; "
                                   "sending SIGKILL", warning=True)
                agent.signal(signal.SIGKILL)

    # ---------------------------------------------------------------- state

    def state_file(self, name: str) -> Path:
        return state_file(self._paths, name)

    def log_file(self, name: str) -> Path:
        return log_file(self._paths, name)

    def endpoint_file(self, name: str) -> Path:
        return self._paths["run"] / f"{name}.sock"

    def leader(self) -> AgentProcess | None:
        """The running proposer that reports leading with the highest ballot."""
        best = None
        for agent in self.running():
            report = agent.report
            if report is not None and report.leader and report.ballot is not None:
                if best is None or report.ballot > best.report.ballot:
                    best = agent
        return best

    def running(self) -> list[AgentProcess]:
        return [a for a in self.agents.values() if a.state is AgentState.RUNNING]

    def set_chaos(self, changes: dict[str, Any]) -> None:
        """Apply `changes` (see paxosctl.supervisor.chaos.update; ValueError naming a bad
        field) and put the result in force at every agent."""
        self.chaos = update_chaos(self.chaos, changes, tuple(self.agents))
        frame = chaos_frame(self.chaos)
        for agent in self.agents.values():
            agent.send(frame)  # a starting agent gets it at spawn
        self.events.record(None, "chaos", f"chaos now: {self.chaos.describe() or 'off'}",
                           warning=self.chaos.active)

    # ------------------------- apply (paxosctl.supervisor.rollout) and membership (.engine)

    def update_settings(self, manifest: Manifest) -> None:
        """Run `manifest` from now on: health and restart settings at once
        (every agent's lifecycle), protocol settings at each agent's next
        spawn. Its agents and membership are the membership engine's to
        change (an agent it brings back gets the restart settings then)."""
        self.manifest = manifest
        self.settings = protocol_settings(manifest)
        for agent in self.agents.values():
            agent.lifecycle.settings = manifest.restart

    def replace_chaos(self, settings: ChaosSettings) -> None:
        """Put `settings` in force at every agent, whatever `paxosctl chaos` set."""
        self.chaos = settings
        frame = chaos_frame(settings)
        for agent in self.agents.values():
            agent.send(frame)
        self.events.record(None, "chaos", f"chaos now: {settings.describe() or 'off'}",
                           warning=settings.active)

    def admit(self, agent: AgentProcess, now: float) -> None:
        """Make `agent` one of the fleet's (a new member, or one `release`d
        before) and spawn it."""
        self.agents[agent.name] = agent
        self.spawn(agent, now)

    def release(self, name: str) -> AgentProcess:
        """Drop an agent whose process has ended from the fleet (status,
        metrics, health): a member a change removed. Its files stay."""
        agent = self.agents.pop(name)
        assert agent.process is None, f"{name} still runs"
        return agent


def chaos_frame(settings: ChaosSettings) -> bytes:
    """The CHAOS frame that puts `settings` in force at an agent."""
    return frames.json_frame(frames.CHAOS, settings.to_json())
