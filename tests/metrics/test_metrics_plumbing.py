"""Every metric fed by agents' heartbeats moves when its workload happens.

The heartbeat's counters reach the scrape through keys that the agent, the
supervisor and the metrics agree on; a renamed stat would silently leave a
metric at zero. Here real agents (in this process, on real pipes) do the
work that must move each metric; their heartbeats go through the same
`beat_totals`/`beat_gauges` the supervisor uses, and the scrape must show it.
"""

from __future__ import annotations

import os
from multiprocessing import Pipe

from paxos_agents.core import (
    NOOP, Accept, Accepted, Ballot, Chunk, Command, Membership, Prepare, Promise, Retry, Settings,
    Stored,
)
from paxos_agents.runtime.agent import Agent
from paxos_agents.runtime.codec import encode
from paxos_agents.runtime.spec import AgentSpec
from paxos_agents.runtime.storage import SqliteStorage
from paxosctl.metrics import AgentSample, Metrics, Snapshot, beat_gauges, beat_totals

MEMBERS = Membership(proposers=("p1",), acceptors=("a1", "a2", "a3"), learners=("l1", "l2"))


class Driven:
    """One agent in this process: feed it messages and ticks, read its heartbeat."""

    def __init__(self, name: str, tmp_path) -> None:
        spec = AgentSpec(name=name, membership=MEMBERS, settings=Settings(retry_cooldown_ticks=50),
                         tick_seconds=0.01, heartbeat_seconds=0.2,
                         state_path=str(tmp_path / f"{name}.db"),
                         log_path=str(tmp_path / f"{name}.log"), seed=1)
        inbox_r, self._inbox_w = Pipe(duplex=False)
        self._outbox_r, outbox_w = Pipe(duplex=False)
        os.set_blocking(self._outbox_r.fileno(), False)
        self.agent = Agent(spec, inbox_r, outbox_w, SqliteStorage(spec.state_path))

    def step(self, *messages) -> None:
        for m in messages:  # as the transport hands them over
            self.agent._on_message(m.src, encode(m))
        self.agent._flush()
        self.drain()

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.agent.node.tick()
            self.agent._flush()
        self.drain()

    def drain(self) -> None:
        self.agent.transport.flush()
        self.agent._write_outbox()
        try:
            while os.read(self._outbox_r.fileno(), 1 << 20):
                pass
        except BlockingIOError:
            pass

    def sample(self, role: str) -> AgentSample:
        beat = self.agent.heartbeat()
        return AgentSample(name=self.agent.name, role=role, up=True, restarts={},
                           health_failures=0, cpu_seconds=0.0, rss_bytes=None,
                           backoff_seconds=0.0, ballot_round=None,
                           totals=dict(beat_totals(beat)), gauges=beat_gauges(beat))


def scrape(samples) -> dict[str, float]:
    metrics = Metrics()
    metrics.collector.snapshot = Snapshot(cluster="t", agents=tuple(samples), decided_slot=10)
    values = {}
    for line in metrics.text().splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            values[series] = float(value)
    return values


def test_heartbeat_counters_reach_the_scrape(tmp_path):
    b1, low = Ballot(1, "p1"), Ballot(0, "p1")
    # A proposer that leads, then gets the same Retry twice inside the cooldown.
    p1 = Driven("p1", tmp_path)
    p1.tick(25)  # runs for leader
    ballot = p1.agent.node.proposer.ballot
    p1.step(*(Promise(src=a, dst="p1", ballot=ballot, first_slot=0, votes=()) for a in ("a1", "a2")))
    assert p1.agent.node.is_leader
    p1.agent.node.propose(Command("r", b"v"))
    p1.agent._flush()
    p1.step(Retry(src="l1", dst="p1", slot=5))
    p1.step(Retry(src="l1", dst="p1", slot=5))
    # An acceptor that accepts, refuses a stale Prepare, and compacts.
    a1 = Driven("a1", tmp_path)
    a1.step(Accept(src="p1", dst="a1", ballot=b1, slot=0, value=NOOP))
    a1.step(Prepare(src="p1", dst="a1", ballot=low, first_slot=0))
    a1.step(Stored(src="l1", dst="a1", upto=0), Stored(src="l2", dst="a1", upto=0))
    # A learner that decides by votes and copies a slot from a peer.
    l1 = Driven("l1", tmp_path)
    l1.step(*(Accepted(src=a, dst="l1", ballot=b1, slot=0, value=NOOP) for a in ("a1", "a2")))
    l1.step(Chunk(src="l2", dst="l1", asked=1, first_slot=1, decisions=((1, NOOP),), first_slots=()))
    values = scrape([p1.sample("proposer"), a1.sample("acceptor"), l1.sample("learner")])
    must_move = [
        "paxos_retries_requested_total",
        "paxos_retries_performed_total",
        "paxos_retries_suppressed_total",
        "paxos_prepare_rejections_total",
        'paxos_messages_total{type="Accept"}',
        'paxos_messages_total{type="Retry"}',
        'paxos_messages_total{type="Stored"}',
        "paxos_acceptor_persist_duration_seconds_count",
        'paxos_acceptor_compaction_slot{agent="a1",role="acceptor"}',
        'paxos_learner_applied_slot{agent="l1",role="learner"}',
        'paxos_learner_installed_slots_total{agent="l1",role="learner"}',
        'paxosctl_agent_state_bytes{agent="a1",role="acceptor"}',
    ]
    missing = [name for name in must_move if values.get(name, 0) <= 0]
    assert not missing, missing
