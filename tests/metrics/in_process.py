"""Agents in this process, on real pipes, a real store and a real transport:
feed them messages and ticks, read their heartbeat reports as the supervisor does.

Peers are never started: messages to them are dropped as unreachable,
which nothing here depends on.
"""

from __future__ import annotations

import os
from multiprocessing import Pipe

from paxos_agents.core import Membership, Settings
from paxos_agents.runtime.agent import Agent
from paxos_agents.runtime.control import PipeControl
from paxos_agents.runtime.codec import encode
from paxos_agents.runtime.report import AgentReport
from paxos_agents.runtime.spec import AgentSpec
from paxos_agents.runtime.storage import SqliteStorage
from paxosctl.supervisor.metrics import AgentSample, report_gauges, report_totals

MEMBERS = Membership(proposers=("p1",), acceptors=("a1", "a2", "a3"), learners=("l1", "l2"))


class Driven:
    """One agent of `MEMBERS`, driven by hand."""

    def __init__(self, name: str, tmp_path) -> None:
        run = tmp_path / "run"
        run.mkdir(mode=0o700, exist_ok=True)
        spec = AgentSpec(name=name, membership=MEMBERS, settings=Settings(retry_cooldown_ticks=50),
                         tick_seconds=0.01, heartbeat_seconds=0.2,
                         state_path=str(tmp_path / f"{name}.db"),
                         log_path=str(tmp_path / f"{name}.log"), seed=1, run_dir=str(run))
        inbox_r, self._inbox_w = Pipe(duplex=False)
        self._outbox_r, outbox_w = Pipe(duplex=False)
        os.set_blocking(self._outbox_r.fileno(), False)
        self.agent = Agent(spec, PipeControl(inbox_r, outbox_w), SqliteStorage(spec.state_path))

    def step(self, *messages) -> None:
        """Deliver `messages` as if each came over its sender's connection."""
        for m in messages:
            self.agent._on_message(m.src, encode(m))
        self.agent._flush()

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.agent.node.tick()
            self.agent._flush()

    def report(self) -> AgentReport:
        """The agent's heartbeat, through the JSON a HEARTBEAT frame carries."""
        return AgentReport.from_json(self.agent.heartbeat())

    def sample(self, role: str) -> AgentSample:
        report = self.report()
        return AgentSample(name=self.agent.name, role=role, up=True, stopped=False, restarts={},
                           health_failures=0, cpu_seconds=0.0, rss_bytes=None,
                           backoff_seconds=0.0, ballot_round=None,
                           totals=dict(report_totals(report)), gauges=report_gauges(report))

    def close(self) -> None:
        self.agent.transport.close()
