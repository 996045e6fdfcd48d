"""A membership change as a state machine: `Transition.step(view, now) -> actions`.

No process, no file: the transition reads a `View` (what the engine that
runs the agents reports, and what the cluster recorded) and returns the
`Action`s to ask of that engine. It never assumes an action worked: it
sees the result in a later view. So one step is safe to repeat, and a
transition made afresh from the same plan (a supervisor killed and
started again) finds its place again from the view alone.

The order (Lamport's alpha-window reconfiguration is in the core,
paxos_agents/core/configs.py; this is the order of processes around it):

1. STARTING: every agent that stays is told the membership with the new
   agents (ANNOUNCE; removed proposers and learners leave it at once, so
   a learner that will never report again does not hold back "stored by
   every learner"; removed acceptors stay until the new configuration is
   in force) and the new agents are started, seeded with the
   configuration history. One that fails (ends, or cannot start) undoes
   the change: the old membership is announced, the new agents stopped,
   and nothing was proposed.
2. PROPOSING (only when the acceptors change): the leader is asked to
   propose the new acceptors (PROPOSE), again after `RESEND_SECONDS`
   without a decision (it may have died with it), sooner after a refusal.
3. IN_FORCE: the new configuration is decided; wait until the cluster
   reports it in force (every learner stored every slot it does not
   govern). Until then a removed acceptor keeps running: a slot of the
   old configuration may still need its vote.
4. STOPPING: the final membership is announced and removed agents are
   stopped (their files stay); DONE once none is left. New proposers and
   learners always run before old ones stop, for `scale` and `apply` alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Mapping, Union

from paxos_agents.core.settings import Membership

from ..manifest import AgentSpec
from .plan import ChangePlan, Decided

#: Seconds without a decision of the proposed configuration before it is
#: proposed again (to whoever leads then: the first may have been lost with
#: a leader that died).
RESEND_SECONDS = 2.0
#: Seconds before proposing again after the leader refused (e.g. the last
#: change was in force for the supervisor, which heard it from a learner,
#: before the leader itself heard so), for the first `QUICK_RESENDS` tries.
REFUSED_RESEND_SECONDS = 0.05
QUICK_RESENDS = 20


class Stage(StrEnum):
    STARTING = "starting new agents"
    PROPOSING = "waiting for the new configuration to be decided"
    IN_FORCE = "waiting for the new configuration to be in force"
    STOPPING = "stopping removed agents"
    DONE = "done"
    UNDOING = "undoing"
    UNDONE = "failed"


class Liveness(StrEnum):
    """An agent as the engine reports it."""

    STARTING = "starting"  # asked to run, not yet ready (or restarting after a crash)
    RUNNING = "running"  # ready: its first heartbeat came
    FAILED = "failed"  # ended and will not come back by itself (fatal, or stopped)


@dataclass(frozen=True, slots=True)
class View:
    """What the transition may read: `agents`, the names the engine runs or
    is still ending, each with its liveness (a name absent is gone);
    `leader`, the agent that leads now; `decided`, the latest configuration
    the cluster recorded; `refused`, the leader refused the last proposal."""

    agents: Mapping[str, Liveness]
    leader: str | None = None
    decided: Decided | None = None
    refused: bool = False


@dataclass(frozen=True, slots=True)
class Announce:
    """Tell every running agent but the `leaving` ones this membership
    (today's MEMBERS frame); agents started later get it at start."""

    membership: Membership
    leaving: frozenset[str]


@dataclass(frozen=True, slots=True)
class StartAgent:
    """Run a new agent, seeded with the configuration history."""

    spec: AgentSpec
    why: str


@dataclass(frozen=True, slots=True)
class StopAgent:
    """Stop `name` for good (its files stay); `retired` when its name is never
    used again. Done once the name is gone from the view."""

    name: str
    why: str
    retired: bool = False


@dataclass(frozen=True, slots=True)
class Propose:
    """Ask `leader` to propose `acceptors` as configuration `epoch`."""

    leader: str
    epoch: int
    acceptors: tuple[str, ...]
    why: str


@dataclass(frozen=True, slots=True)
class Note:
    """Something people should see in the events (no request: nothing to observe)."""

    text: str
    warning: bool = False


Action = Union[Announce, StartAgent, StopAgent, Propose, Note]


class Transition:
    """One membership change (see the module docstring), from a `ChangePlan`."""

    def __init__(self, plan: ChangePlan) -> None:
        self.plan = plan
        self.stage = Stage.STARTING
        self.error: str | None = None
        #: The epoch the new configuration gets (the latest decided + 1, when proposed).
        self.epoch: int | None = None
        self._announced = False
        self._started: set[str] = set()
        self._stopped: set[str] = set()
        self._proposed_at: float | None = None
        self._proposals = 0

    # ------------------------------------------------------------- the step

    def step(self, view: View, now: float) -> list[Action]:
        """The actions to ask for now, advancing as far as `view` allows."""
        out: list[Action] = []
        if self.stage is Stage.STARTING:
            self._starting(view, out)
        if self.stage is Stage.PROPOSING:
            self._proposing(view, now, out)
        if self.stage is Stage.IN_FORCE:
            decided = view.decided
            if decided is not None and self.epoch is not None and decided.in_force_epoch >= self.epoch:
                out.append(Note(f"configuration epoch {self.epoch} in force: acceptors "
                                f"{', '.join(self.plan.acceptors)}"))
                self._enter_stopping(out)
        if self.stage is Stage.STOPPING:
            self._stop(self.plan.removed, view, out)
            if not any(a.name in view.agents for a in self.plan.removed):
                self.stage = Stage.DONE
        if self.stage is Stage.UNDOING:
            self._stop(self.plan.added, view, out)
            if not any(a.name in view.agents for a in self.plan.added):
                self.stage = Stage.UNDONE
        return out

    @property
    def done(self) -> bool:
        """Finished: in force with the removed agents gone (DONE), or undone
        with the new agents gone (UNDONE)."""
        return self.stage in (Stage.DONE, Stage.UNDONE)

    def pending(self, view: View) -> str:
        """What the change waits for now, one phrase."""
        stage = self.stage
        if stage is Stage.STARTING:
            waiting = [a.name for a in self.plan.added
                       if view.agents.get(a.name) is not Liveness.RUNNING]
            return f"{stage.value} ({', '.join(waiting)})"
        if stage is Stage.PROPOSING and view.leader is None:
            return f"{stage.value} (no leader yet)"
        if stage is Stage.STOPPING:
            return f"{stage.value} ({', '.join(a.name for a in self.plan.removed)})"
        if self.epoch is not None and stage is not Stage.DONE:
            return f"{stage.value} (epoch {self.epoch})"
        return stage.value

    def describe(self, view: View) -> dict:
        """The change for `status` (JSON)."""
        plan = self.plan
        return {"why": plan.why, "phase": self.stage.value, "pending": self.pending(view),
                "epoch": self.epoch, "acceptors": list(plan.acceptors),
                "added": [a.name for a in plan.added], "removed": [a.name for a in plan.removed],
                "error": self.error}

    # -------------------------------------------------------------- stages

    def _starting(self, view: View, out: list[Action]) -> None:
        plan = self.plan
        if not self._announced:
            self._announced = True
            removed = {a.name for a in plan.removed}
            union = _membership([*plan.running, *plan.added])
            out.append(Announce(Membership(
                tuple(n for n in union.proposers if n not in removed), union.acceptors,
                tuple(n for n in union.learners if n not in removed)), frozenset(removed)))
        for spec in plan.added:
            if spec.name not in view.agents and spec.name not in self._started:
                self._started.add(spec.name)
                out.append(StartAgent(spec, plan.why))
        failed = [a.name for a in plan.added if view.agents.get(a.name) is Liveness.FAILED]
        if failed:
            self._undo(out, f"{', '.join(failed)} did not start (see paxosctl logs {failed[0]}); "
                            "nothing was proposed and the new agents are removed")
            return
        if any(view.agents.get(a.name) is not Liveness.RUNNING for a in plan.added):
            return
        if not plan.reconfigures:
            self._enter_stopping(out)
        else:
            self.stage = Stage.PROPOSING  # which first looks whether it was decided already

    def _proposing(self, view: View, now: float, out: list[Action]) -> None:
        if self._decided(view):
            self.stage = Stage.IN_FORCE
            return
        quick = view.refused and self._proposals < QUICK_RESENDS
        wait = REFUSED_RESEND_SECONDS if quick else RESEND_SECONDS
        if view.leader is None or (self._proposed_at is not None and now - self._proposed_at < wait):
            return  # no leader yet, or the last proposal may still be decided
        if self.epoch is None:
            self.epoch = (view.decided.epoch if view.decided is not None else 0) + 1
        self._proposed_at = now
        self._proposals += 1
        out.append(Propose(view.leader, self.epoch, self.plan.acceptors, self.plan.why))

    def _enter_stopping(self, out: list[Action]) -> None:
        self.stage = Stage.STOPPING
        leaving = frozenset(a.name for a in self.plan.removed)
        out.append(Announce(_membership(self.plan.target), leaving))

    def _undo(self, out: list[Action], error: str) -> None:
        self.error = error
        self.stage = Stage.UNDOING
        out.append(Note(f"{self.plan.why} failed: {error}", warning=True))
        out.append(Announce(_membership(self.plan.running),
                            frozenset(a.name for a in self.plan.added)))

    def _stop(self, specs: tuple[AgentSpec, ...], view: View, out: list[Action]) -> None:
        """Ask once for each of `specs` still in the view to stop."""
        retire = self.plan.asked.retire
        for spec in specs:
            if spec.name in view.agents and spec.name not in self._stopped:
                self._stopped.add(spec.name)
                out.append(StopAgent(spec.name, self.plan.why, spec.name in retire))

    def _decided(self, view: View) -> bool:
        """Whether the latest decided configuration is the one this change wants."""
        decided = view.decided
        if (decided is None or decided.epoch == 0
                or set(decided.acceptors) != set(self.plan.acceptors)):
            return False
        if self.epoch is None:
            self.epoch = decided.epoch
        return decided.epoch >= self.epoch


def _membership(agents: list[AgentSpec] | tuple[AgentSpec, ...]) -> Membership:
    """Who plays each protocol role among `agents`."""
    def names(role: str) -> tuple[str, ...]:
        return tuple(a.name for a in agents if role in a.roles)
    return Membership(names("proposer"), names("acceptor"), names("learner"))
