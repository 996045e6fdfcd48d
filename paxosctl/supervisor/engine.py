"""The local engine: the supervisor's `Fleet` carrying out a transition's actions.

Each action becomes what the fleet does for it (spawn, SIGTERM, a MEMBERS
or RECONFIG frame down an agent's pipe) and an event people can read
(`paxosctl events`); the view is what the fleet's agents report and the
`Roster` keeps. An agent asked to stop leaves the view once its process
has ended: the fleet then releases it, and the engine keeps it (its
counters, incarnations and lifecycle) should a later change bring the
name back, so a proposer resumes its ballot round.

The membership wing (paxosctl.membership) sees only `driver.Engine`; this
is the one engine of today, and the only code that adds agents to the
fleet or takes them out.
"""

from __future__ import annotations

import signal

from paxos_agents.core.configs import History
from paxos_agents.core.settings import Membership
from paxos_agents.runtime import frames

from ..manifest import AgentSpec
from .agents import AgentProcess
from .fleet import STOP_GRACE_SECONDS, Fleet
from .restart import AgentState, ExitCause, Lifecycle
from .roster import Roster
from ..membership.change import (Action, Announce, Liveness, Note, Propose, StartAgent, StopAgent, View)
from ..membership.record import decided


class FleetEngine:
    """`driver.Engine` over the local `fleet`."""

    def __init__(self, fleet: Fleet, roster: Roster) -> None:
        self.fleet = fleet
        self.roster = roster
        #: Agents asked to stop, until their process has ended.
        self._stopping: set[str] = set()
        #: Agents a change removed, released by the fleet, kept in case they come back.
        self._retired: dict[str, AgentProcess] = {}

    def view(self) -> View:
        fleet = self.fleet
        for name in list(self._stopping):  # the fleet SIGKILLs one that outlives its grace
            agent = fleet.agents.get(name)
            if agent is None or agent.process is None:
                self._stopping.discard(name)
                if agent is not None:
                    self._retired[name] = fleet.release(name)
        leader = fleet.leader()
        config = self.roster.config
        return View(agents={name: _liveness(agent.state) for name, agent in fleet.agents.items()},
                    leader=leader.name if leader is not None else None,
                    decided=decided(config) if config is not None else None,
                    refused=self.roster.reconfig_refusal is not None)

    def history(self) -> History | None:
        return self.roster.history

    def carry_out(self, action: Action, now: float) -> None:
        fleet = self.fleet
        events = fleet.events
        if isinstance(action, Announce):
            self._announce(action.membership, action.leaving)
        elif isinstance(action, StartAgent):
            events.record(action.spec.name, "added", f"added ({action.why})")
            self._add(action.spec, now)
        elif isinstance(action, StopAgent):
            agent = fleet.agents.get(action.name)
            if agent is None:
                return
            events.record(action.name, "removed", f"{'retired' if action.retired else 'removed'} "
                                                  f"({action.why}; its files stay)")
            # Stopped for good: never restarted; SIGKILLed by the fleet's
            # tick if still running after the grace, as `paxosctl stop` does.
            agent.lifecycle.stop()
            if agent.process is not None and agent.signal(signal.SIGTERM, ExitCause.SHUTDOWN):
                agent.kill_at = now + STOP_GRACE_SECONDS
            self._stopping.add(action.name)
        elif isinstance(action, Propose):
            agent = fleet.agents.get(action.leader)
            if agent is None:
                return  # gone since the view: the transition proposes again later
            self.roster.reconfig_refusal = None
            agent.send(frames.json_frame(frames.RECONFIG, {"acceptors": list(action.acceptors)}))
            events.record(action.leader, "reconfig",
                          f"asked to propose epoch {action.epoch}: acceptors "
                          f"{', '.join(action.acceptors)} ({action.why})")
        elif isinstance(action, Note):
            events.record(None, "reconfig", action.text, warning=action.warning)
        else:  # pragma: no cover - a new action kind needs its line here
            raise TypeError(f"unknown action {action!r}")

    def _announce(self, membership: Membership, leaving: frozenset[str]) -> None:
        """Tell every running agent but the `leaving` ones the new membership
        (a MEMBERS frame); agents spawned from now on get it in their spec."""
        self.roster.membership = membership
        frame = frames.json_frame(frames.MEMBERS, {
            "proposers": list(membership.proposers), "acceptors": list(membership.acceptors),
            "learners": list(membership.learners)})
        for agent in self.fleet.agents.values():
            if agent.name not in leaving and agent.channel is not None:
                agent.send(frame)

    def _add(self, spec: AgentSpec, now: float) -> None:
        """Start a new agent of the manifest, or one removed before (it keeps
        its counters and incarnations, and its store and member record)."""
        restart = self.fleet.manifest.restart
        agent = self._retired.pop(spec.name, None)
        if agent is None:
            agent = AgentProcess(spec, Lifecycle(restart))
        else:
            agent.spec = spec
            agent.lifecycle.settings = restart
            agent.lifecycle.reset()
            agent.last_error = None
            agent.held = False
        self.fleet.admit(agent, now)


def _liveness(state: AgentState) -> Liveness:
    if state is AgentState.RUNNING:
        return Liveness.RUNNING
    if state in (AgentState.FATAL, AgentState.STOPPED):
        return Liveness.FAILED
    return Liveness.STARTING
