"""Prometheus metrics: one registry, owned by the supervisor.

Agents report their counters with every heartbeat (an `AgentReport`;
`report_totals`, `report_gauges` read it). The supervisor keeps,
per agent, the totals of its ended incarnations (`past`), so a restarted
agent, whose own counters start again at zero, never makes a `_total`
series go backwards. The supervisor's loop publishes an immutable
`Snapshot` a few times a second (paxosctl.snapshot builds it from the
fleet); the HTTP thread only reads the latest one, so a scrape never
races with the loop.

(prometheus_client's multiprocess mode fits badly here: it leaves a file
behind for every restarted pid and drops custom collectors.)
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.registry import Collector

from paxos_agents.core.messages import MESSAGE_TYPES
from paxos_agents.runtime.agent import PERSIST_BUCKETS
from paxos_agents.runtime.report import AgentReport

from . import __version__
from .restart import RESTART_REASONS

#: The node's stats (`AgentReport.stats`) that are counters, summed into
#: `_total` series. Each is some role's stat: tests/metrics/test_report_fields.py
#: holds these names against real agents' reports, so a renamed stat fails there.
COUNTER_STATS = (
    "proposer_retries_requested", "proposer_retries_performed", "proposer_retries_suppressed",
    "prepares_rejected", "accepts_rejected", "proposer_leader_changes", "proposer_elections",
    "dropped", "installed", "fetches_sent", "chunks_served", "expired", "compacted_refusals",
    "applied_commands",
)


def report_totals(report: AgentReport) -> collections.Counter[str]:
    """The cumulative counters in one heartbeat report, flattened to `name -> value`."""
    totals: collections.Counter[str] = collections.Counter()
    stats = report.stats
    for key in COUNTER_STATS:
        if key in stats:
            totals[key] = stats[key]
    # The transport's counts, by reason or fault.
    for reason, count in report.dropped.items():
        totals[f"dropped:{reason}"] = count
    for fault, count in report.chaos.items():
        totals[f"chaos:{fault}"] = count
    for kind, count in report.received.items():
        totals[f"received:{kind}"] = count
    totals["malformed"] = report.malformed
    persist = report.persist
    if persist.count:
        totals["persist_count"] = persist.count
        totals["persist_sum"] = persist.sum
        for i, n in enumerate(persist.buckets):
            totals[f"persist_bucket:{i}"] = n
    return totals


#: The node's stats exported as per-agent gauges: stat -> (metric, help, role that has it).
GAUGES = {
    "compacted": ("paxos_acceptor_compaction_slot",
                  "Acceptor's compaction point: votes below this slot are deleted.", "acceptor"),
    "log_start": ("paxos_learner_log_start_slot",
                  "First slot of the learner's retained log.", "learner"),
    "decided_up_to": ("paxos_learner_applied_slot",
                      "Highest slot the learner applied, with no gap below (-1: none).", "learner"),
    "catchup_remaining": ("paxos_learner_catchup_remaining_slots",
                          "Slots peer learners stored that this learner has not applied yet.",
                          "learner"),
}


def report_gauges(report: AgentReport) -> dict[str, float]:
    """The gauges in one heartbeat report (`GAUGES` keys, and state_bytes)."""
    stats = report.stats
    gauges = {key: float(stats[key]) for key in GAUGES if key in stats}
    gauges["state_bytes"] = float(report.state_bytes)
    return gauges


@dataclass(frozen=True, slots=True)
class AgentSample:
    """One agent's metrics at one moment."""

    name: str
    role: str
    up: bool
    restarts: dict[str, int]
    health_failures: int
    cpu_seconds: float
    rss_bytes: int | None
    backoff_seconds: float
    ballot_round: int | None
    totals: dict[str, float]
    #: Gauges from the latest heartbeat report (see `report_gauges`); empty when down.
    gauges: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a scrape reports, published by the supervisor's loop."""

    cluster: str = ""
    agents: tuple[AgentSample, ...] = ()
    has_leader: bool = False
    leader_changes: int = 0
    leader_changed_at: float = 0.0
    proposals: dict[str, int] = field(default_factory=dict)
    decisions: int = 0
    decided_slot: int = -1
    dropped: dict[str, int] = field(default_factory=dict)
    chaos_duplicated: int = 0
    chaos_delayed: int = 0
    chaos_active: dict[str, Any] = field(default_factory=dict)


class ClusterCollector(Collector):
    """Turns the latest `Snapshot` into metric families at scrape time."""

    def __init__(self) -> None:
        self.snapshot = Snapshot()
        #: Asks the supervisor's loop for a fresh snapshot (bounded wait).
        self.refresh: Callable[[], None] | None = None

    def collect(self) -> Iterator[Any]:
        if self.refresh is not None:
            self.refresh()
        s = self.snapshot
        yield InfoMetricFamily("paxosctl_build", "paxosctl version.",
                               value={"version": __version__, "cluster": s.cluster})
        up = GaugeMetricFamily("paxosctl_agent_up", "1 if the agent process runs and heartbeats.",
                               labels=["agent", "role"])
        restarts = CounterMetricFamily("paxosctl_agent_restarts", "Agent restarts, by reason.",
                                       labels=["agent", "role", "reason"])
        health = CounterMetricFamily("paxosctl_health_check_failures",
                                     "Agents killed for missing heartbeats.", labels=["agent"])
        cpu = CounterMetricFamily("paxosctl_agent_cpu_seconds",
                                  "CPU time of the agent, all incarnations.", labels=["agent"])
        rss = GaugeMetricFamily("paxosctl_agent_resident_memory_bytes",
                                "Resident memory of the agent process.", labels=["agent"])
        backoff = GaugeMetricFamily("paxosctl_agent_backoff_seconds",
                                    "Seconds until a backing-off agent is restarted.",
                                    labels=["agent"])
        ballot = GaugeMetricFamily("paxos_ballot_round", "Round of the proposer's current ballot.",
                                   labels=["agent"])
        for a in s.agents:
            up.add_metric([a.name, a.role], 1.0 if a.up else 0.0)
            for reason in RESTART_REASONS:
                restarts.add_metric([a.name, a.role, reason], a.restarts.get(reason, 0))
            health.add_metric([a.name], a.health_failures)
            cpu.add_metric([a.name], a.cpu_seconds)
            if a.rss_bytes is not None:
                rss.add_metric([a.name], a.rss_bytes)
            backoff.add_metric([a.name], a.backoff_seconds)
            if a.ballot_round is not None:
                ballot.add_metric([a.name], a.ballot_round)
        yield from (up, restarts, health, cpu, rss, backoff, ballot)
        yield from self._history_metrics(s)

        yield GaugeMetricFamily("paxos_has_leader", "1 if a proposer leads.",
                                value=1.0 if s.has_leader else 0.0)
        yield CounterMetricFamily("paxos_leader_changes", "Times the leader changed.",
                                  value=s.leader_changes)
        yield GaugeMetricFamily("paxos_leader_change_timestamp_seconds",
                                "Unix time a leader was last elected (0: never).",
                                value=s.leader_changed_at)
        proposals = CounterMetricFamily("paxos_proposals",
                                        "Client commands, by result: decided (applied by the "
                                        "learners; the furthest learner's count).",
                                        labels=["result"])
        # Timeouts and refusals happen at clients now (the supervisor is not on
        # the data path): `paxosctl bench` and the client report them.
        proposals.add_metric(["decided"], s.proposals.get("decided", 0))
        yield proposals
        yield CounterMetricFamily("paxos_decisions", "Slots decided.", value=s.decisions)
        yield GaugeMetricFamily("paxos_decided_slot",
                                "Highest slot with no undecided slot below it (-1: none).",
                                value=s.decided_slot)

        def total(key: str) -> float:
            return sum(a.totals.get(key, 0) for a in s.agents)

        for name, key, doc in (
            ("paxos_retries_requested", "proposer_retries_requested",
             "Retries of a slot that learners asked proposers for."),
            ("paxos_retries_performed", "proposer_retries_performed",
             "Retries a proposer performed (outside the cooldown)."),
            ("paxos_retries_suppressed", "proposer_retries_suppressed",
             "Retries a proposer suppressed inside the per-slot cooldown."),
            ("paxos_prepare_rejections", "prepares_rejected",
             "Prepare requests an acceptor nacked (ballot not above its promise)."),
        ):
            yield CounterMetricFamily(name, doc, value=total(key))
        messages = CounterMetricFamily("paxos_messages", "Protocol messages received by agents.",
                                       labels=["type"])
        kinds: collections.Counter[str] = collections.Counter()
        for a in s.agents:
            for key, value in a.totals.items():
                if key.startswith("received:"):
                    kinds[key[9:]] += value
        for kind in (t.__name__ for t in MESSAGE_TYPES):
            messages.add_metric([kind], kinds.get(kind, 0))
        yield messages
        dropped = CounterMetricFamily("paxos_messages_dropped", "Messages dropped, by reason.",
                                      labels=["reason"])
        for reason, value in s.dropped.items():
            dropped.add_metric([reason], value)
        dropped.add_metric(["malformed"], total("malformed"))
        dropped.add_metric(["wrong_role"], total("dropped"))
        yield dropped
        yield CounterMetricFamily("paxosctl_chaos_duplicated", "Messages the chaos settings duplicated.",
                                  value=s.chaos_duplicated)
        yield CounterMetricFamily("paxosctl_chaos_delayed", "Messages the chaos settings delayed.",
                                  value=s.chaos_delayed)
        active = GaugeMetricFamily("paxosctl_chaos_active", "1 while a chaos fault is in force.",
                                   labels=["fault"])
        for fault in ("drop", "duplicate", "delay_s", "partition"):
            active.add_metric([fault.removesuffix("_s")], 1.0 if fault in s.chaos_active else 0.0)
        yield active
        buckets = []
        cumulative = 0.0
        for i, bound in enumerate(PERSIST_BUCKETS):
            cumulative += total(f"persist_bucket:{i}")
            buckets.append((_le(bound), cumulative))
        cumulative += total(f"persist_bucket:{len(PERSIST_BUCKETS)}")
        buckets.append(("+Inf", cumulative))
        yield HistogramMetricFamily(
            "paxos_acceptor_persist_duration_seconds",
            "Time to commit one batch of state to SQLite (fsync included).",
            buckets=buckets, sum_value=total("persist_sum"))


    def _history_metrics(self, s: Snapshot) -> Iterator[Any]:
        """Bounded history: compaction, retention, state size, learner catch-up."""
        state = GaugeMetricFamily("paxosctl_agent_state_bytes",
                                  "Bytes of the agent's state files (database and WAL).",
                                  labels=["agent", "role"])
        families = {key: GaugeMetricFamily(name, doc, labels=["agent", "role"])
                    for key, (name, doc, _) in GAUGES.items()}
        lag = GaugeMetricFamily(
            "paxos_compaction_lag_slots",
            "Slots decided but not yet compacted at this acceptor: grows while a learner is "
            "down or behind (it holds compaction back).", labels=["agent", "role"])
        installed = CounterMetricFamily("paxos_learner_installed_slots",
                                        "Slots a learner copied from peer learners (state transfer).",
                                        labels=["agent", "role"])
        for a in s.agents:
            if "state_bytes" in a.gauges:
                state.add_metric([a.name, a.role], a.gauges["state_bytes"])
            for key, (_, _, role) in GAUGES.items():
                if key in a.gauges:
                    families[key].add_metric([a.name, a.role], a.gauges[key])
            if "compacted" in a.gauges:
                lag.add_metric([a.name, a.role], max(0.0, s.decided_slot + 1 - a.gauges["compacted"]))
            if "learner" in a.role or a.role == "replica":
                installed.add_metric([a.name, a.role], a.totals.get("installed", 0))
        yield state
        yield from families.values()
        yield lag
        yield installed
        yield CounterMetricFamily("paxos_proposals_expired",
                                  "Proposals refused as issued before the retained log.",
                                  value=s.proposals.get("expired", 0))


def _le(bound: float) -> str:
    return repr(float(bound))


class Metrics:
    """The registry, its collector and the HTTP server."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = ClusterCollector()
        self.registry.register(self.collector)
        self.server: Any = None

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics on host:port (0: any free port); return the bound port."""
        self.server, _ = start_http_server(port, addr=host, registry=self.registry)
        return self.server.server_port

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def text(self) -> str:
        """The current scrape, as the HTTP endpoint would serve it."""
        return generate_latest(self.registry).decode()
