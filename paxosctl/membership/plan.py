"""The membership plan: the current configuration and an asked change -> a
plan, or a refusal. Pure: no process, no file, no clock.

In the shape of etcd-io/raft's `confchange.Changer`: this is the only
place that decides whether the acceptors change (a new configuration is
proposed, paxos_agents/core/configs.py) and whether a change is allowed
now. Everything else (`scale`, `replace`, `apply`, a resumed change)
builds an `Asked` and acts on the `ChangePlan` it gets back.

Refused, with one line naming what is wrong and what is allowed:
- a second change while one is in progress;
- a role left without agents;
- a name that was retired (`replace` retires a name for good: its old
  disk must never vote again, nor its ballots be reused);
- a change of the acceptors while a decided configuration is not yet in
  force;
- the acceptors' configuration not known yet (no agent has reported it);
- a majority of the acceptors removed at once (the new majority could
  miss every old vote);
- too few acceptors running to decide the change.
"""

from __future__ import annotations

from dataclasses import dataclass

from paxos_agents.core.configs import majority

from ..faults import Fault
from ..manifest import AgentSpec

ROLES = ("proposer", "acceptor", "learner")


@dataclass(frozen=True, slots=True)
class Decided:
    """The latest configuration the cluster recorded (the agents' reports):
    `epoch` and its `acceptors`, and the latest epoch in force."""

    epoch: int
    acceptors: tuple[str, ...]
    in_force_epoch: int
    #: A decided change's first slot while it is not in force, else -1.
    pending_slot: int = -1

    @property
    def settled(self) -> bool:
        """No decided configuration is waiting to be in force."""
        return self.pending_slot < 0 and self.in_force_epoch >= self.epoch


@dataclass(frozen=True, slots=True)
class Current:
    """What the cluster runs now, as far as a plan needs to know.

    `agents`: the agents it runs (in manifest order); `decided`: the
    latest configuration the agents reported (None: none reported yet);
    `running`: names whose process runs; `retired`: names never to be
    used again; `pending`: a change in progress, in words, or None.
    """

    agents: tuple[AgentSpec, ...]
    decided: Decided | None
    running: frozenset[str]
    retired: frozenset[str] = frozenset()
    pending: str | None = None

    @property
    def acceptors(self) -> tuple[str, ...]:
        """The acceptors as recorded (the manifest's until one reported)."""
        if self.decided is not None:
            return self.decided.acceptors
        return tuple(a.name for a in self.agents if "acceptor" in a.roles)


@dataclass(frozen=True, slots=True)
class Asked:
    """A change asked for: the agents to end with, the names it retires,
    and what the operator asked, one phrase ("scale acceptor 3 -> 5")."""

    target: tuple[AgentSpec, ...]
    retire: frozenset[str]
    why: str


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a change is not allowed now: `fault` (bad request: never as
    asked; unavailable: try again later) and one line for people."""

    fault: Fault
    message: str


@dataclass(frozen=True, slots=True)
class ChangePlan:
    """What a change does: from `running` to `asked.target`, adding and
    removing agents; `reconfigures` when the acceptors change (then
    `acceptors` are proposed as the next configuration)."""

    running: tuple[AgentSpec, ...]
    asked: Asked
    added: tuple[AgentSpec, ...]
    removed: tuple[AgentSpec, ...]
    acceptors: tuple[str, ...]
    reconfigures: bool

    @property
    def why(self) -> str:
        return self.asked.why

    @property
    def target(self) -> tuple[AgentSpec, ...]:
        return self.asked.target

    def summary(self) -> dict:
        """What the change does (the reply of scale, replace and apply): its
        fields, and "changes", one line each for people."""
        retire = self.asked.retire
        added = [a.name for a in self.added]
        retired = sorted(retire)
        removed = [a.name for a in self.removed if a.name not in retire]
        lines = []
        if added:
            lines.append("adding " + ", ".join(added))
        if removed:
            lines.append("removing " + ", ".join(removed) + " (the files stay)")
        if retired:
            lines.append("retiring " + ", ".join(retired) + " (the name is never used again; "
                         "the files stay)")
        acceptors = list(self.acceptors)
        lines.append(f"acceptors: {', '.join(acceptors)} (majority {majority(len(acceptors))})")
        return {"why": self.why, "added": added, "removed": removed, "retired": retired,
                "acceptors": acceptors, "changes": lines}


def acceptors_of(agents: tuple[AgentSpec, ...]) -> tuple[str, ...]:
    return tuple(a.name for a in agents if "acceptor" in a.roles)


def changes_acceptors(current: tuple[str, ...], target: tuple[AgentSpec, ...]) -> bool:
    """Whether going to `target` changes the acceptors `current` (a new
    configuration): the one test of it (reconcile asks here too)."""
    return set(current) != set(acceptors_of(target))


def busy_refusal(pending: str | None) -> Refusal | None:
    """The refusal of any change while `pending` (a change in progress, in
    words) runs; None when none does. Callers that must refuse before they
    can even name a target (`apply` reading its file) ask this first."""
    if pending is None:
        return None
    return Refusal(Fault.UNAVAILABLE, f"a membership change is in progress ({pending}); "
                                      "try again when it is done")


def resumed(running: tuple[AgentSpec, ...], asked: Asked) -> ChangePlan:
    """The plan of a change a previous supervisor began (topology.json's):
    it was allowed then, so nothing is refused now; the acceptors change
    if the target's differ from `running`'s (the transition finds out from
    what the cluster recorded whether the proposal was decided already)."""
    return _plan(running, asked, changes_acceptors(acceptors_of(running), asked.target))


def plan_change(current: Current, asked: Asked) -> ChangePlan | Refusal:
    """The plan for `asked` over `current`, or why it is refused (see the
    module docstring for the refusals; a pending change is checked first)."""
    busy = busy_refusal(current.pending)
    if busy is not None:
        return busy
    for role in ROLES:
        if not any(role in a.roles for a in asked.target):
            return Refusal(Fault.BAD_REQUEST, f"the cluster would have no {role}; "
                                              f"it needs at least one {role}")
    before = {a.name for a in current.agents}
    reused = [a.name for a in asked.target if a.name in current.retired and a.name not in before]
    if reused:
        return Refusal(Fault.BAD_REQUEST, f"{', '.join(reused)}: retired by a replace; a retired "
                                          "name is never used again: pick another name")
    new = acceptors_of(asked.target)
    change = _plan(current.agents, asked, changes_acceptors(current.acceptors, asked.target))
    if not change.reconfigures:
        return change
    decided = current.decided
    if decided is None:
        return Refusal(Fault.UNAVAILABLE, "the cluster's configuration is not known yet (no "
                                          "proposer or learner has reported); try again in a moment")
    if not decided.settled:
        return Refusal(Fault.UNAVAILABLE, f"configuration epoch {decided.epoch} is decided but not "
                                          "yet in force; try again when it is (see paxosctl status)")
    old = decided.acceptors
    need = majority(len(old))
    gone = [n for n in old if n not in new]
    if len(gone) >= need:
        return Refusal(Fault.BAD_REQUEST, f"removing {len(gone)} of {len(old)} acceptors at once "
                                          f"({', '.join(gone)}) is more than a minority; remove at "
                                          f"most {need - 1} per change")
    up = [n for n in old if n in current.running]
    if len(up) < need:
        return Refusal(Fault.UNAVAILABLE, f"only {len(up)} of the {len(old)} acceptors run "
                                          f"({', '.join(up) or 'none'}); deciding a change needs "
                                          f"{need} of them: start them first")
    return change


def _plan(running: tuple[AgentSpec, ...], asked: Asked, reconfigures: bool) -> ChangePlan:
    after = {a.name for a in asked.target}
    before = {a.name for a in running}
    return ChangePlan(running=running, asked=asked,
                      added=tuple(a for a in asked.target if a.name not in before),
                      removed=tuple(a for a in running if a.name not in after),
                      acceptors=acceptors_of(asked.target), reconfigures=reconfigures)
