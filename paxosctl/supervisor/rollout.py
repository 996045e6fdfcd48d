"""Putting a `reconcile.Plan` in force, on the supervisor's loop.

`Rollout.start` puts in force at once every setting that needs no
waiting: health and restart at once, protocol settings for the next
spawns (`Fleet.update_settings`; see `interim_manifest` for the health
timeout while heartbeat_interval rolls out); chaos, if its section
changed. Agents that come or go are not the rollout's: they are a
membership change (paxosctl.membership), the same engine and order as
`scale` (new agents run before removed ones stop), which the supervisor
starts beside the rollout.

Then `step` (each loop turn) restarts the agents that
must read a changed setting at spawn, one at a time: the next only once
the previous one runs again (its first heartbeat from the new
incarnation). The order is learners, acceptors, then proposers, the leader
last (one election, at the end). An acceptor is restarted only when every
acceptor runs, so at most one is down at a time: with 3 or more, the others
still form a majority and the cluster keeps deciding. An agent that is not
running when its turn comes is skipped: its next spawn reads the new
settings anyway.

`done` once all of that holds; `pending` says what is still awaited.
"""

from __future__ import annotations

import dataclasses

from .agents import AgentProcess
from .fleet import Fleet
from ..manifest import Manifest
from .reconcile import Plan
from .restart import AgentState


class Rollout:
    """The settings of one apply in progress."""

    def __init__(self, fleet: Fleet, plan: Plan) -> None:
        self.fleet = fleet
        self.plan = plan
        self._queue = self._restart_order(list(plan.restart))
        #: The agent being restarted, and the incarnation it had then.
        self._current: tuple[str, int] | None = None
        self.restarted: list[str] = []

    def start(self, now: float) -> None:
        """Make the changes that need no waiting (see the module docstring)."""
        fleet, plan = self.fleet, self.plan
        fleet.update_settings(interim_manifest(plan))
        if plan.running.chaos != plan.wanted.chaos:
            fleet.replace_chaos(plan.wanted.chaos)

    def step(self, now: float) -> None:
        """Advance: restart the next agent when it is time."""
        fleet = self.fleet
        if self._current is not None:
            name, incarnation = self._current
            agent = fleet.agents[name]
            if agent.incarnation > incarnation and agent.state is AgentState.RUNNING:
                self._current = None
            elif agent.state in (AgentState.FATAL, AgentState.STOPPED):
                fleet.events.record(name, "rollout", f"did not come back from its restart "
                                    f"({agent.state.value}); going on", warning=True)
                self._current = None
            else:
                return
        while self._queue and self._current is None:
            agent = fleet.agents[self._queue[0]]
            if not _running(agent):
                self._queue.pop(0)  # its next spawn reads the new settings anyway
                continue
            if "acceptor" in agent.spec.roles and not self._acceptors_all_running():
                return  # one acceptor down at a time, at most
            self._queue.pop(0)
            self._current = (agent.name, agent.incarnation)
            self.restarted.append(agent.name)
            fleet.events.record(agent.name, "rollout", "restarting to apply new settings")
            fleet.restart(agent, now)

    def finish(self) -> None:
        """Once `done`: the settings of the new manifest, all of them."""
        self.fleet.update_settings(self.plan.wanted)

    @property
    def done(self) -> bool:
        return not (self._queue or self._current)

    def pending(self) -> list[str]:
        """What is still awaited, one phrase each."""
        out = []
        if self._current is not None:
            out.append(f"{self._current[0]} to run again after its restart")
        if self._queue:
            out.append("restarts of " + ", ".join(self._queue))
        return out

    # -- helpers --

    def _restart_order(self, names: list[str]) -> list[str]:
        """Learners, then acceptors, then proposers, the leader last."""
        leader = self.fleet.leader()
        agents = self.fleet.agents

        def rank(name: str) -> tuple[int, int]:
            roles = agents[name].spec.roles
            group = 0 if roles == {"learner"} else 1 if "proposer" not in roles else 2
            return (group, int(leader is not None and name == leader.name))
        return sorted(names, key=rank)

    def _acceptors_all_running(self) -> bool:
        return all(_running(a) for a in self.fleet.agents.values() if "acceptor" in a.spec.roles)


def interim_manifest(plan: Plan) -> Manifest:
    """The manifest to run during `plan`'s rollout: the new one, except that
    while agents not yet restarted beat at the old heartbeat_interval,
    they are judged by the longer of the two heartbeat timeouts (a
    shorter one could kill them all at once, acceptors included)."""
    old, new = plan.running.health, plan.wanted.health
    if old.heartbeat_interval == new.heartbeat_interval:
        return plan.wanted
    timeout = max(old.heartbeat_timeout, new.heartbeat_timeout)
    return dataclasses.replace(plan.wanted,
                               health=dataclasses.replace(new, heartbeat_timeout=timeout))


def _running(agent: AgentProcess | None) -> bool:
    return agent is not None and agent.state is AgentState.RUNNING
