"""A fake engine for the membership driver: agents, a leader and the
cluster's record as plain values, moved on by `tick` (the world between
two steps: started agents come up or fail, stopped ones end, a decided
configuration goes in force one tick after its decision).

It checks, as it carries actions out, the rule "a removed acceptor keeps
running until the change is in force": `early_stops` lists every acceptor
asked to stop while it was still in the configuration in force.
"""

from __future__ import annotations

from paxos_agents.core.configs import Config, History

from paxosctl.manifest import AgentSpec
from paxosctl.membership.change import (
    Action, Announce, Liveness, Propose, StartAgent, StopAgent, View)
from paxosctl.membership.plan import Current, Decided

ALPHA = 8


def specs(group: str, count: int, start: int = 0) -> list[AgentSpec]:
    return [AgentSpec(f"{group}-{i}", group, group, i) for i in range(start, start + count)]


class FakeEngine:
    def __init__(self, agents: list[AgentSpec]) -> None:
        self.agents = list(agents)
        self.live = {a.name: Liveness.RUNNING for a in agents}
        acceptors = tuple(a.name for a in agents if a.role == "acceptor")
        self.configs = [Config(0, 0, acceptors)]
        self.decided = Decided(0, acceptors, 0)
        self.in_force = acceptors
        self.leader: str | None = next(a.name for a in agents if a.role == "proposer")
        #: Names that never come up once started.
        self.never_up: set[str] = set()
        #: Proposals the next leader loses by dying right after receiving them.
        self.kill_leader_on_propose = 0
        self.actions: list[Action] = []
        self.early_stops: list[str] = []
        self.announced = None
        self._stopping: set[str] = set()
        self._going_in_force = False

    # -- Engine --

    def view(self) -> View:
        return View(agents=dict(self.live), leader=self.leader, decided=self.decided)

    def history(self) -> History:
        return History(ALPHA, tuple(self.configs), 0)

    def carry_out(self, action: Action, now: float) -> None:
        self.actions.append(action)
        if isinstance(action, Announce):
            self.announced = action.membership
        elif isinstance(action, StartAgent):
            assert action.spec.name not in self.live, f"{action.spec.name} started twice"
            self.live[action.spec.name] = Liveness.STARTING
        elif isinstance(action, StopAgent):
            if action.name in self.in_force:
                self.early_stops.append(action.name)
            self._stopping.add(action.name)
        elif isinstance(action, Propose):
            assert self.live.get(action.leader) is Liveness.RUNNING
            if self.kill_leader_on_propose:
                self.kill_leader_on_propose -= 1
                del self.live[action.leader]  # dies with the proposal
                self.leader = None
                return
            if set(action.acceptors) != set(self.decided.acceptors):
                epoch = self.decided.epoch + 1
                self.configs.append(Config(epoch, 100 * epoch, tuple(action.acceptors)))
                self.decided = Decided(epoch, tuple(action.acceptors), self.decided.in_force_epoch,
                                       pending_slot=100 * epoch)
                self._going_in_force = False

    # -- the world --

    def tick(self) -> None:
        for name, state in list(self.live.items()):
            if state is Liveness.STARTING:
                self.live[name] = Liveness.FAILED if name in self.never_up else Liveness.RUNNING
        for name in list(self._stopping):
            self.live.pop(name, None)
            self._stopping.discard(name)
        if self.leader is None:
            self.leader = next((n for n in sorted(self.live) if n.startswith("proposer")
                                and self.live[n] is Liveness.RUNNING), None)
        d = self.decided
        if d.in_force_epoch < d.epoch:
            if self._going_in_force:  # one tick after the decision: decided, not yet in force
                self.decided = Decided(d.epoch, d.acceptors, d.epoch)
                self.in_force = d.acceptors
            self._going_in_force = True

    def current(self, retired: frozenset[str] = frozenset()) -> Current:
        return Current(agents=tuple(self.agents), decided=self.decided,
                       running=frozenset(n for n, s in self.live.items() if s is Liveness.RUNNING),
                       retired=retired)

    def running(self) -> set[str]:
        return {n for n, s in self.live.items() if s is Liveness.RUNNING}
