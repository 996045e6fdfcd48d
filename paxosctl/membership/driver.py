"""The driver: one membership change at a time, through an `Engine`.

The driver plans a change (`plan.plan_change`), keeps topology.json in
step with it (so a supervisor killed in the middle finishes it: `resume`),
and each turn hands the engine's `View` to the `Transition` and the
actions it returns back to the engine. The engine is whatever runs the
agents: today the local supervisor's fleet (`paxosctl.supervisor.engine`), in a
test a fake one (tests/membership/test_driver.py). The driver never
assumes an action worked; the transition sees its result in a later view.

Who waits for the change (the caller's reply and its deadline) is the
supervisor's one pending long operation (paxosctl.supervisor.pending), not the
driver's: the driver only says when a change has finished.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Protocol

from paxos_agents.core.configs import History

from ..faults import OpError
from ..manifest import AgentSpec
from .change import Action, Transition, View
from .plan import Asked, ChangePlan, Current, Refusal, busy_refusal, plan_change, resumed
from .topology import Topology, save

log = logging.getLogger("paxosctl.supervisor")


class Engine(Protocol):
    """What runs the agents, as the driver sees it."""

    def view(self) -> View:
        """The agents and what the cluster recorded, now."""

    def carry_out(self, action: Action, now: float) -> None:
        """Start the request `action` names (its completion shows in a later view)."""

    def history(self) -> History | None:
        """The configuration history as last reported (None: none yet)."""


class Driver:
    """The membership change in progress, if any (see the module docstring).

    `on_done(agents)` is called with the agents the cluster runs once a
    change has finished: the target if it is in force, the old agents if
    it was undone.
    """

    def __init__(self, engine: Engine, path: Path, topology: Topology | None,
                 on_done: Callable[[tuple[AgentSpec, ...]], None]) -> None:
        self.engine = engine
        self.path = path
        #: Names never used again (`replace`'s), whatever the manifest says.
        self.retired: frozenset[str] = topology.retired if topology is not None else frozenset()
        self.transition: Transition | None = None
        self._on_done = on_done

    @property
    def busy(self) -> str | None:
        """The change in progress, in words ("why: what it waits for"), or None."""
        t = self.transition
        return None if t is None else f"{t.plan.why}: {t.pending(self.engine.view())}"

    def waiting(self) -> str | None:
        """What the change in progress waits for now, one phrase, or None."""
        t = self.transition
        return None if t is None else t.pending(self.engine.view())

    def refuse_if_busy(self) -> None:
        """Raise OpError (one line) if a change is in progress."""
        _raise(busy_refusal(self.busy))

    def plan(self, current: Current, asked: Asked) -> ChangePlan:
        """The plan of `asked` over `current`, or OpError (one line) if it is
        refused. Changes nothing: `start` does."""
        found = plan_change(current, asked)
        _raise(found)
        assert isinstance(found, ChangePlan)
        return found

    def start(self, found: ChangePlan, now: float) -> None:
        """Start the planned change (its first step runs now)."""
        self.retired |= found.asked.retire
        self._save(found.running, found.asked)
        log.info("membership change: %s", found.why)
        self._run(found, now)

    def resume(self, running: tuple[AgentSpec, ...], asked: Asked, now: float) -> None:
        """Finish a change a previous supervisor began (topology.json's)."""
        log.info("membership change: resuming %s", asked.why)
        self._run(resumed(running, asked), now)

    def advance(self, now: float) -> Transition | None:
        """Step the change in progress; the transition, once, when it has finished."""
        t = self.transition
        if t is None:
            return None
        self._step(t, now)
        if not t.done:
            return None
        self.transition = None
        agents = t.plan.target if t.error is None else t.plan.running
        self._save(agents, None)
        self._on_done(agents)
        log.info("membership change %s: %s", "done" if t.error is None else "undone", t.plan.why)
        return t

    def describe(self) -> dict | None:
        """The change in progress for `status` (JSON), or None."""
        t = self.transition
        return t.describe(self.engine.view()) if t is not None else None

    def save_agents(self, agents: tuple[AgentSpec, ...]) -> None:
        """Record `agents` as what the cluster runs (no change in progress)."""
        self._save(agents, None)

    # ---------------------------------------------------------------- helpers

    def _run(self, found: ChangePlan, now: float) -> None:
        self.transition = Transition(found)
        self._step(self.transition, now)

    def _step(self, t: Transition, now: float) -> None:
        for action in t.step(self.engine.view(), now):
            self.engine.carry_out(action, now)

    def _save(self, agents: tuple[AgentSpec, ...], change: Asked | None) -> None:
        save(self.path, Topology(agents=tuple(agents), retired=self.retired,
                                 history=self.engine.history(), change=change))


def _raise(found: ChangePlan | Refusal | None) -> None:
    if isinstance(found, Refusal):
        raise OpError(found.fault, found.message)
