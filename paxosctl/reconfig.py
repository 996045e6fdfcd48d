"""Membership changes on a running cluster: `scale`, `replace`, and `apply`
of the agent groups, driven on the supervisor's loop.

The protocol is in the core (paxos_agents/core/configs.py: Lamport's
alpha-window reconfiguration). This module is the supervisor's side, the
order in which processes come and go around it:

1. *start*: the new agents are registered and spawned with the union of
   the old and new membership, which every running agent also gets over
   its pipe (MEMBERS), so their handshakes are welcome. A new acceptor
   starts empty and votes only in slots its configuration governs; a new
   proposer or learner is seeded with the cluster's configuration history
   (`RuntimeSpec.configs`), never with the current acceptors as epoch 0.
2. once every new agent runs (its first heartbeat), if the acceptors
   change, the leader is asked to propose the new configuration (a
   RECONFIG frame; `Node.propose_config`). It is a command decided like
   any other; decided in slot i it governs slots from i + alpha, and the
   leader fills the slots up to there with no-ops so an idle cluster
   needs no traffic for it.
3. *in force*: every learner has stored every slot before i + alpha (the
   agents' heartbeats say so, `ConfigReport.in_force_epoch`). Only now do
   removed acceptors stop: until then they may still be needed for a
   slot of the old configuration.
4. the removed agents get SIGTERM (never restarted; their files stay),
   and the others the final membership.

A change that cannot start (a new agent does not come up) is undone:
the new agents are removed and nothing was proposed. Once the new
configuration is proposed there is no undo, only waiting: the command is
decided or not, never half (and a restarted supervisor resumes the
change from topology.json).

Replaced agents' names are *retired*: never used again, so a stale disk
under that name can never vote, and a replaced proposer's ballots
(round, name) can never be reused by its successor.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from paxos_agents.core.config import Membership
from paxos_agents.runtime import frames

from .control import Fault, OpError
from .fleet import Fleet, membership_of
from .manifest import AgentSpec, Manifest
from .restart import AgentState
from .topology import Change, with_agents

log = logging.getLogger("paxosctl.supervisor")

#: Seconds without a decision of the proposed configuration before the
#: RECONFIG is sent again (to whoever leads then: the first may have been lost
#: with a leader that died).
RESEND_SECONDS = 2.0
#: Seconds before sending again a RECONFIG the agent refused (e.g. the
#: previous change was in force for the supervisor, which heard it from a
#: learner, before the leader itself heard so).
REFUSED_RESEND_SECONDS = 0.05


class Phase(StrEnum):
    STARTING = "starting new agents"
    PROPOSING = "waiting for the new configuration to be decided"
    IN_FORCE = "waiting for the new configuration to be in force"
    STOPPING = "stopping removed agents"
    DONE = "done"
    FAILED = "failed"


class MembershipChange:
    """One membership change in progress (see the module docstring).

    `running` is the manifest the supervisor runs (its `agents` are the
    names running now); `change.target` the agents it ends with.
    """

    def __init__(self, fleet: Fleet, running: Manifest, change: Change) -> None:
        self.fleet = fleet
        self.running = running
        self.change = change
        self.wanted = with_agents(running, change.target)
        before = {a.name for a in running.agents}
        after = {a.name for a in change.target}
        self.added = tuple(a for a in change.target if a.name not in before)
        self.removed = tuple(a for a in running.agents if a.name not in after)
        self.acceptors = tuple(a.name for a in change.target if "acceptor" in a.roles)
        config = fleet.config
        current = config.acceptors if config is not None else running.acceptors
        #: The acceptors change: a new configuration is proposed (else only
        #: proposers or learners come and go).
        self.reconfigures = set(current) != set(self.acceptors)
        self.phase = Phase.STARTING
        self.error: str | None = None
        #: The epoch the new configuration gets (the latest decided + 1, when proposed).
        self.epoch: int | None = None
        self._sent_at = 0.0
        self._sends = 0

    # ------------------------------------------------------------------ steps

    def start(self, now: float) -> None:
        """Spawn the new agents under the union membership (step 1)."""
        fleet = self.fleet
        # Removed agents leave the proposers and learners at once (a learner
        # that never reports again, e.g. a replaced one, must not hold back
        # "stored by every learner", which the new configuration waits
        # for), but stay acceptors (and peers) until it is in force.
        removed = {a.name for a in self.removed}
        union = membership_of(with_agents(self.running, [*self.running.agents, *self.added]))
        fleet.set_membership(Membership(
            tuple(n for n in union.proposers if n not in removed), union.acceptors,
            tuple(n for n in union.learners if n not in removed)), frozenset(removed))
        for spec in self.added:
            fleet.events.record(spec.name, "added", f"added ({self.change.why})")
            fleet.add_agent(spec, now)
        if self.reconfigures and self._decided():
            self.phase = Phase.IN_FORCE  # resumed after the proposal was decided
        self.step(now)

    def step(self, now: float) -> None:
        """Advance as far as what the agents reported allows."""
        fleet = self.fleet
        if self.phase is Phase.FAILED:  # undone: forget the new agents once they ended
            self._forget_ended(self.added)
            return
        if self.phase is Phase.STARTING:
            failed = [a.name for a in self.added if fleet.agents[a.name].state
                      in (AgentState.FATAL, AgentState.STOPPED)]
            if failed:
                self._undo(now, f"{', '.join(failed)} did not start (see paxosctl logs "
                                f"{failed[0]}); nothing was proposed and the new agents are removed")
                return
            if any(fleet.agents[a.name].state is not AgentState.RUNNING for a in self.added):
                return
            if not self.reconfigures:
                self.phase = Phase.STOPPING
                self._stop_removed(now)
            else:
                self.phase = Phase.PROPOSING
        if self.phase is Phase.PROPOSING:
            # A refusal is retried soon, a few times (then at the usual pace).
            refused = fleet.reconfig_refusal is not None and self._sends < 20
            if self._decided():
                self.phase = Phase.IN_FORCE
            elif now - self._sent_at >= (REFUSED_RESEND_SECONDS if refused else RESEND_SECONDS):
                self._propose(now)
        if self.phase is Phase.IN_FORCE:
            config = fleet.config
            if config is not None and self.epoch is not None and config.in_force_epoch >= self.epoch:
                fleet.events.record(None, "reconfig", f"configuration epoch {self.epoch} in force: "
                                    f"acceptors {', '.join(self.acceptors)}")
                self.phase = Phase.STOPPING
                self._stop_removed(now)
        if self.phase is Phase.STOPPING:
            self._forget_ended(self.removed)
            if not any(spec.name in fleet.agents for spec in self.removed):
                self.phase = Phase.DONE

    @property
    def done(self) -> bool:
        """Finished: in force and the removed agents ended, or undone and
        the new agents ended."""
        if self.phase is Phase.FAILED:
            return not any(spec.name in self.fleet.agents for spec in self.added)
        return self.phase is Phase.DONE

    def pending(self) -> str:
        """What the change waits for now, one phrase."""
        if self.phase is Phase.STARTING:
            waiting = [a.name for a in self.added
                       if self.fleet.agents[a.name].state is not AgentState.RUNNING]
            return f"{self.phase.value} ({', '.join(waiting)})"
        if self.phase is Phase.PROPOSING and self.fleet.leader() is None:
            return f"{self.phase.value} (no leader yet)"
        if self.phase is Phase.STOPPING:
            return f"{self.phase.value} ({', '.join(a.name for a in self.removed)})"
        if self.epoch is not None and self.phase is not Phase.DONE:
            return f"{self.phase.value} (epoch {self.epoch})"
        return self.phase.value

    def describe(self) -> dict:
        """The change for `status` (JSON)."""
        return {"why": self.change.why, "phase": self.phase.value, "pending": self.pending(),
                "epoch": self.epoch, "acceptors": list(self.acceptors),
                "added": [a.name for a in self.added], "removed": [a.name for a in self.removed],
                "error": self.error}

    # ---------------------------------------------------------------- helpers

    def _decided(self) -> bool:
        """Whether the latest decided configuration is the one we want."""
        config = self.fleet.config
        if config is None or set(config.acceptors) != set(self.acceptors) or config.epoch == 0:
            return False
        if self.epoch is None:
            self.epoch = config.epoch
        return config.epoch >= self.epoch

    def _propose(self, now: float) -> None:
        fleet = self.fleet
        leader = fleet.leader()
        if leader is None:
            return  # no leader yet: the next step tries again
        config = fleet.config
        if self.epoch is None:
            self.epoch = (config.epoch if config is not None else 0) + 1
        self._sent_at = now
        self._sends += 1
        fleet.reconfig_refusal = None
        leader.send(frames.json_frame(frames.RECONFIG, {"acceptors": list(self.acceptors)}))
        fleet.events.record(leader.name, "reconfig",
                            f"asked to propose epoch {self.epoch}: acceptors "
                            f"{', '.join(self.acceptors)} ({self.change.why})")

    def _forget_ended(self, specs: tuple[AgentSpec, ...]) -> None:
        """Drop from the fleet those of `specs` whose process has ended."""
        for spec in specs:
            agent = self.fleet.agents.get(spec.name)
            if agent is not None and agent.process is None:
                self.fleet.forget_agent(spec.name)

    def _stop_removed(self, now: float) -> None:
        fleet = self.fleet
        leaving = frozenset(a.name for a in self.removed)
        fleet.set_membership(membership_of(self.wanted), leaving)
        for spec in self.removed:
            agent = fleet.agents.get(spec.name)
            if agent is None:
                continue
            retired = spec.name in self.change.retire
            fleet.events.record(spec.name, "removed",
                                f"{'retired' if retired else 'removed'} ({self.change.why}; "
                                "its files stay)")
            if agent.process is not None:
                fleet.remove_agent(spec.name, now)
            else:
                agent.lifecycle.stop()

    def _undo(self, now: float, error: str) -> None:
        fleet = self.fleet
        self.error = error
        fleet.events.record(None, "reconfig", f"{self.change.why} failed: {error}", warning=True)
        leaving = frozenset(a.name for a in self.added)
        fleet.set_membership(membership_of(self.running), leaving)
        for spec in self.added:
            agent = fleet.agents[spec.name]
            if agent.process is not None:
                fleet.remove_agent(spec.name, now)
            else:
                agent.lifecycle.stop()
        self.phase = Phase.FAILED


# ------------------------------------------------------------------ planning


def check(fleet: Fleet, running: Manifest, target: tuple[AgentSpec, ...]) -> None:
    """Refuse (OpError, one line, nothing changed) a change to `target` that is
    not allowed now: a role left without agents, acceptors below 1, a
    majority of the acceptors removed at once, a change already pending,
    or too few acceptors running to decide it."""
    roles = {r: [a.name for a in target if r in a.roles] for r in ("proposer", "acceptor", "learner")}
    for role, names in roles.items():
        if not names:
            raise OpError(Fault.BAD_REQUEST, f"the cluster would have no {role}; "
                                             f"it needs at least one {role}")
    config = fleet.config
    current = tuple(config.acceptors) if config is not None else running.acceptors
    new = tuple(roles["acceptor"])
    if set(new) == set(current):
        return
    if config is None:
        raise OpError(Fault.UNAVAILABLE, "the cluster's configuration is not known yet (no "
                                         "proposer or learner has reported); try again in a moment")
    if config.pending_slot >= 0 or config.in_force_epoch < config.epoch:
        raise OpError(Fault.UNAVAILABLE, f"configuration epoch {config.epoch} is decided but not yet "
                                         "in force; try again when it is (see paxosctl status)")
    majority = len(current) // 2 + 1
    gone = [n for n in current if n not in new]
    if len(gone) >= majority:
        raise OpError(Fault.BAD_REQUEST, f"removing {len(gone)} of {len(current)} acceptors at once "
                                         f"({', '.join(gone)}) is more than a minority; remove at "
                                         f"most {majority - 1} per change")
    up = [n for n in current if n in fleet.agents and fleet.agents[n].state is AgentState.RUNNING]
    if len(up) < majority:
        raise OpError(Fault.UNAVAILABLE, f"only {len(up)} of the {len(current)} acceptors run "
                                         f"({', '.join(up) or 'none'}); deciding a change needs "
                                         f"{majority} of them: start them first")
