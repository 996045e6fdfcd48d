"""Putting a `reconcile.Plan` in force, on the supervisor's loop.

`Rollout.start` makes every change at once that needs no waiting, in this
order:

1. the settings: health and restart at once, protocol settings for the
   next spawns (`Fleet.update_settings`; see `interim_manifest` for the health
   timeout while heartbeat_interval rolls out); chaos, if its section
   changed;
2. the membership, if proposers or learners come or go: every agent that
   stays gets it over its pipe (MEMBERS) before a new agent starts, so a
   new agent's handshakes are welcome;
3. removed agents get SIGTERM (never restarted; stores and member records
   stay, so one added again later resumes its ballot round); new agents
   are spawned.

Then `step` (each loop turn) waits until removed agents have ended (SIGKILL
after `fleet.STOP_GRACE_SECONDS`) and new ones run, and restarts the agents that
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
from .fleet import Fleet, membership_of
from .manifest import Manifest
from .reconcile import Plan
from .restart import AgentState



class Rollout:
    """One apply in progress."""

    def __init__(self, fleet: Fleet, plan: Plan) -> None:
        self.fleet = fleet
        self.plan = plan
        #: Removed agents not yet ended -> when to SIGKILL them.
        self._stopping: set[str] = set()
        self._starting = [spec.name for spec in plan.added]
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
        if plan.membership_changed:
            leaving = frozenset(spec.name for spec in plan.removed)
            fleet.set_membership(membership_of(plan.wanted), leaving)
        for spec in plan.removed:
            fleet.remove_agent(spec.name, now)
            self._stopping.add(spec.name)
            fleet.events.record(spec.name, "removed", "removed by apply (its store stays)")
        for spec in plan.added:
            fleet.events.record(spec.name, "added", "added by apply")
            fleet.add_agent(spec, now)

    def step(self, now: float) -> None:
        """Advance: collect ended agents, restart the next one when it is time."""
        fleet = self.fleet
        for name in list(self._stopping):  # the fleet SIGKILLs one that outlives its grace
            if fleet.agents[name].process is None:
                fleet.forget_agent(name)
                self._stopping.discard(name)
        self._starting = [n for n in self._starting if not _running(fleet.agents.get(n))]
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
        return not (self._stopping or self._starting or self._queue or self._current)

    def pending(self) -> list[str]:
        """What is still awaited, one phrase each."""
        out = [f"{n} to stop" for n in self._stopping]
        out += [f"{n} to run" for n in self._starting]
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
