"""The local engine: the supervisor's `Fleet` carrying out a transition's actions.

Each action becomes what the fleet does for it (spawn, SIGTERM, a MEMBERS
or RECONFIG frame down an agent's pipe) and an event people can read
(`paxosctl events`); the view is what the fleet's agents report. An
agent asked to stop leaves the view once its process has ended (it is
then forgotten by the fleet, kept for its counters should it come back).
"""

from __future__ import annotations

from paxos_agents.core.configs import History
from paxos_agents.runtime import frames

from .fleet import Fleet
from .restart import AgentState
from ..membership.change import (Action, Announce, Liveness, Note, Propose, StartAgent, StopAgent, View)


class FleetEngine:
    """`driver.Engine` over the local `fleet`."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        #: Agents asked to stop, until their process has ended.
        self._stopping: set[str] = set()

    def view(self) -> View:
        fleet = self.fleet
        for name in list(self._stopping):  # the fleet SIGKILLs one that outlives its grace
            agent = fleet.agents.get(name)
            if agent is None or agent.process is None:
                self._stopping.discard(name)
                if agent is not None:
                    fleet.forget_agent(name)
        leader = fleet.leader()
        config = fleet.config
        return View(agents={name: _liveness(agent.state) for name, agent in fleet.agents.items()},
                    leader=leader.name if leader is not None else None,
                    decided=config.decided if config is not None else None,
                    refused=fleet.reconfig_refusal is not None)

    def history(self) -> History | None:
        return self.fleet.history

    def carry_out(self, action: Action, now: float) -> None:
        fleet = self.fleet
        events = fleet.events
        if isinstance(action, Announce):
            fleet.set_membership(action.membership, action.leaving)
        elif isinstance(action, StartAgent):
            events.record(action.spec.name, "added", f"added ({action.why})")
            fleet.add_agent(action.spec, now)
        elif isinstance(action, StopAgent):
            agent = fleet.agents.get(action.name)
            if agent is None:
                return
            events.record(action.name, "removed", f"{'retired' if action.retired else 'removed'} "
                                                  f"({action.why}; its files stay)")
            if agent.process is not None:
                fleet.remove_agent(action.name, now)
            else:
                agent.lifecycle.stop()
            self._stopping.add(action.name)
        elif isinstance(action, Propose):
            agent = fleet.agents.get(action.leader)
            if agent is None:
                return  # gone since the view: the transition proposes again later
            fleet.reconfig_refusal = None
            agent.send(frames.json_frame(frames.RECONFIG, {"acceptors": list(action.acceptors)}))
            events.record(action.leader, "reconfig",
                          f"asked to propose epoch {action.epoch}: acceptors "
                          f"{', '.join(action.acceptors)} ({action.why})")
        elif isinstance(action, Note):
            events.record(None, "reconfig", action.text, warning=action.warning)
        else:  # pragma: no cover - a new action kind needs its line here
            raise TypeError(f"unknown action {action!r}")


def _liveness(state: AgentState) -> Liveness:
    if state is AgentState.RUNNING:
        return Liveness.RUNNING
    if state in (AgentState.FATAL, AgentState.STOPPED):
        return Liveness.FAILED
    return Liveness.STARTING
