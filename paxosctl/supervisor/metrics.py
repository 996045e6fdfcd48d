"""Prometheus metrics: one registry, owned by the supervisor.

Agents report their counters with every heartbeat (an `AgentReport`;
`report_totals`, `report_gauges` read it). The supervisor keeps,
per agent, the totals of its ended incarnations (`past`), so a restarted
agent, whose own counters start again at zero, never makes a `_total`
series go backwards. The supervisor's loop publishes an immutable
`Snapshot` a few times a second (paxosctl.supervisor.snapshot builds it from the
fleet); the HTTP thread only reads the latest one, so a scrape never
races with the loop.

Every series about one agent carries `agent` and `role` labels (role as
the manifest names it: proposer, acceptor, learner or replica); series
without them are about the whole cluster. The README's Metrics section
lists them all, and examples/alerts.yml and examples/grafana-dashboard.json
use only these names (tests/metrics holds them against a live scrape).

(prometheus_client's multiprocess mode fits badly here: it leaves a file
behind for every restarted pid and drops custom collectors.)
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from paxos_agents.runtime.identity import REASONS
from prometheus_client import (
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.registry import Collector

from paxos_agents.core.committime import COMMIT_BUCKETS
from paxos_agents.core.configs import majority
from paxos_agents.core.messages import MESSAGE_TYPES
from paxos_agents.runtime.persister import PERSIST_BUCKETS
from paxos_agents.runtime.report import AgentReport

from .. import __version__
from .restart import RESTART_REASONS

#: The node's stats (`AgentReport.stats`) that are counters, summed into
#: `_total` series. Each is some role's stat: tests/metrics/test_report_fields.py
#: holds these names against real agents' reports, so a renamed stat fails there.
COUNTER_STATS = (
    "proposer_retries_requested", "proposer_retries_performed", "proposer_retries_suppressed",
    "proposer_accept_resends", "prepares_rejected", "accepts_rejected",
    "proposer_leader_changes", "proposer_elections",
    "dropped", "installed", "fetches_sent", "chunks_served", "expired", "compacted_refusals",
    "applied_commands", "client_refused", "clients_cut", "accept_backoffs",
    "client_admin_refused", "id_filter_saves",
)

#: The transport's drop reasons (`AgentReport.dropped`, `.chaos`), as the
#: `reason` label of paxos_messages_dropped_total shows them.
DROP_REASONS = ("unreachable", "chaos_drop", "partition", "malformed", "wrong_role",
                "not_admitted")

#: Why an agent refused an inbound connection (`AgentReport.refused`), as the
#: `reason` label of paxos_connections_refused_total shows them.
#: Over TLS, also the certificate problems, on whichever side saw them
#: (`identity.REASONS`' counter names: "tls_unknown_ca", "tls_wrong_identity"...).
REFUSE_REASONS = ("handshake_timeout", "too_many_connections", "bad_hello", "stale_incarnation",
                  *sorted({counter for counter, _ in REASONS.values()}))


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
    for reason, count in report.refused.items():
        totals[f"refused:{reason}"] = count
    for kind, count in report.received.items():
        totals[f"received:{kind}"] = count
    for kind, count in report.sent.items():
        totals[f"sent:{kind}"] = count
    totals["malformed"] = report.malformed
    for prefix, histogram in (("persist", report.persist), ("commit", report.commit)):
        if histogram.count:
            totals[f"{prefix}_count"] = histogram.count
            totals[f"{prefix}_sum"] = histogram.sum
            for i, n in enumerate(histogram.buckets):
                totals[f"{prefix}_bucket:{i}"] = n
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


def plays(role: str, protocol_role: str) -> bool:
    """Whether an agent of manifest `role` plays `protocol_role` (a replica plays all)."""
    return role in (protocol_role, "replica")


@dataclass(frozen=True, slots=True)
class AgentSample:
    """One agent's metrics at one moment."""

    name: str
    role: str
    up: bool
    #: Stopped by the operator (`paxosctl stop`): down on purpose.
    stopped: bool
    restarts: dict[str, int]
    health_failures: int
    cpu_seconds: float
    rss_bytes: int | None
    backoff_seconds: float
    ballot_round: int | None
    totals: dict[str, float]
    #: Gauges from the latest heartbeat report (see `report_gauges`); empty when down.
    gauges: dict[str, float] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        """The values of the `agent` and `role` labels."""
        return [self.name, self.role]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a scrape reports, published by the supervisor's loop."""

    cluster: str = ""
    agents: tuple[AgentSample, ...] = ()
    has_leader: bool = False
    leader_changes: int = 0
    leader_changed_at: float = 0.0
    #: Commands the learners applied, each once cluster-wide (see snapshot.Publisher).
    decided_commands: int = 0
    #: Slots decided (the highest gapless slot + 1), never going back.
    decided_slots: int = 0
    decided_slot: int = -1
    expired: int = 0
    acceptors: int = 0
    #: Of those, how many are up (running and heartbeating).
    acceptors_up: int = 0
    #: The latest configuration epoch decided, the latest in force.
    config_epoch: int = 0
    config_in_force_epoch: int = 0
    #: A membership change (scale, replace) is in progress.
    changing: bool = False
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
        yield from _process_metrics(s)
        yield from _cluster_metrics(s)
        yield from agent_families(s)


def agent_families(s: Snapshot) -> Iterator[Any]:
    """The families every agent reports itself (its heartbeat's counters and
    gauges, one series per agent of `s`): the supervisor's scrape, and
    `paxosctl agent`'s own /metrics (paxosctl.standalone), which has one agent."""
    yield from _protocol_metrics(s)
    yield from _message_metrics(s)
    yield from _connection_metrics(s)
    yield from _history_metrics(s)


AGENT = ["agent", "role"]


def _process_metrics(s: Snapshot) -> Iterator[Any]:
    """The supervisor's view of each agent process: up, restarts, CPU, memory, disk."""
    up = GaugeMetricFamily("paxosctl_agent_up", "1 if the agent process runs and heartbeats.",
                           labels=AGENT)
    stopped = GaugeMetricFamily("paxosctl_agent_stopped",
                                "1 if the operator stopped the agent (paxosctl stop).",
                                labels=AGENT)
    restarts = CounterMetricFamily("paxosctl_agent_restarts", "Agent restarts, by reason.",
                                   labels=[*AGENT, "reason"])
    health = CounterMetricFamily("paxosctl_health_check_failures",
                                 "Agents killed for missing heartbeats.", labels=AGENT)
    cpu = CounterMetricFamily("paxosctl_agent_cpu_seconds",
                              "CPU time of the agent, all incarnations.", labels=AGENT)
    rss = GaugeMetricFamily("paxosctl_agent_resident_memory_bytes",
                            "Resident memory of the agent process.", labels=AGENT)
    backoff = GaugeMetricFamily("paxosctl_agent_backoff_seconds",
                                "Seconds until a backing-off agent is restarted.", labels=AGENT)
    state = GaugeMetricFamily("paxosctl_agent_state_bytes",
                              "Bytes of the agent's state files (database and WAL).", labels=AGENT)
    for a in s.agents:
        up.add_metric(a.labels, 1.0 if a.up else 0.0)
        stopped.add_metric(a.labels, 1.0 if a.stopped else 0.0)
        for reason in RESTART_REASONS:
            restarts.add_metric([*a.labels, reason], a.restarts.get(reason, 0))
        health.add_metric(a.labels, a.health_failures)
        cpu.add_metric(a.labels, a.cpu_seconds)
        if a.rss_bytes is not None:
            rss.add_metric(a.labels, a.rss_bytes)
        backoff.add_metric(a.labels, a.backoff_seconds)
        if "state_bytes" in a.gauges:
            state.add_metric(a.labels, a.gauges["state_bytes"])
    yield from (up, stopped, restarts, health, cpu, rss, backoff, state)


def _cluster_metrics(s: Snapshot) -> Iterator[Any]:
    """The cluster as a whole: leader, progress, acceptor quorum."""
    yield GaugeMetricFamily("paxos_has_leader", "1 if a proposer leads.",
                            value=1.0 if s.has_leader else 0.0)
    yield CounterMetricFamily("paxos_leader_changes", "Times the leader changed.",
                              value=s.leader_changes)
    yield GaugeMetricFamily("paxos_leader_change_timestamp_seconds",
                            "Unix time a leader was last elected (0: never).",
                            value=s.leader_changed_at)
    yield CounterMetricFamily(
        "paxos_decided_commands",
        "Client commands decided and applied, each once cluster-wide (the learner that "
        "applied the most; duplicates and expired commands not counted).",
        value=s.decided_commands)
    yield CounterMetricFamily("paxos_decided_slots",
                              "Slots decided (a slot holds a batch of commands, or a no-op).",
                              value=s.decided_slots)
    # Deprecated aliases, kept for 0.3 only (CHANGELOG.md): dashboards move to
    # paxos_decided_commands_total and paxos_decided_slots_total.
    proposals = CounterMetricFamily(
        "paxos_proposals", "Deprecated (removed in 0.4): paxos_decided_commands_total.",
        labels=["result"])
    proposals.add_metric(["decided"], s.decided_commands)
    yield proposals
    yield CounterMetricFamily("paxos_decisions",
                              "Deprecated (removed in 0.4): paxos_decided_slots_total.",
                              value=s.decided_slots)
    yield GaugeMetricFamily("paxos_decided_slot",
                            "Highest slot with no undecided slot below it (-1: none).",
                            value=s.decided_slot)
    yield CounterMetricFamily("paxos_proposals_expired",
                              "Proposals refused as issued before the retained log.",
                              value=s.expired)
    yield GaugeMetricFamily("paxos_acceptors_configured",
                            "Acceptors of the configuration in force (replicas included).",
                            value=s.acceptors)
    yield GaugeMetricFamily("paxos_acceptors_up",
                            "Acceptors of the configuration in force that are up (running and "
                            "heartbeating): what a quorum is counted from.",
                            value=s.acceptors_up)
    yield GaugeMetricFamily("paxos_config_epoch",
                            "The latest acceptor configuration decided (0: the manifest's).",
                            value=s.config_epoch)
    yield GaugeMetricFamily("paxos_config_in_force_epoch",
                            "The latest acceptor configuration in force (every learner stored "
                            "every slot before it).", value=s.config_in_force_epoch)
    yield GaugeMetricFamily("paxosctl_membership_change_in_progress",
                            "1 while paxosctl scale, replace or apply changes the members.",
                            value=1.0 if s.changing else 0.0)
    yield GaugeMetricFamily("paxos_acceptor_quorum",
                            "Acceptors that must be up for slots to be decided (a majority).",
                            value=majority(s.acceptors) if s.acceptors else 0)
    active = GaugeMetricFamily("paxosctl_chaos_active", "1 while a chaos fault is in force.",
                               labels=["fault"])
    for fault in ("drop", "duplicate", "delay_s", "partition", "drop_kinds"):
        active.add_metric([fault.removesuffix("_s")], 1.0 if fault in s.chaos_active else 0.0)
    yield active


#: Per-agent protocol counters: (metric, stat, help, protocol role that counts it).
PROTOCOL_COUNTERS = (
    ("paxos_retries_requested", "proposer_retries_requested",
     "Retries of a slot that learners asked this proposer for.", "proposer"),
    ("paxos_retries_performed", "proposer_retries_performed",
     "Retries this proposer performed (outside the cooldown).", "proposer"),
    ("paxos_retries_suppressed", "proposer_retries_suppressed",
     "Retries this proposer suppressed inside the per-slot cooldown.", "proposer"),
    ("paxos_proposer_accept_timeouts", "proposer_accept_resends",
     "Slots whose Accept round passed accept_timeout without a majority (re-sent).", "proposer"),
    ("paxos_proposer_elections", "proposer_elections",
     "Elections (phase 1) this proposer started.", "proposer"),
    ("paxos_prepare_rejections", "prepares_rejected",
     "Prepare requests this acceptor nacked (ballot not above its promise).", "acceptor"),
    ("paxos_learner_installed_slots", "installed",
     "Slots this learner copied from peer learners (state transfer).", "learner"),
    ("paxos_learner_id_filter_saves", "id_filter_saves",
     "Times this learner saved its request id filter as it ran (every 65,536 ids, or a quarter "
     "of those it holds if more), so that its next start reads only the ids applied after the "
     "last save.", "learner"),
    ("paxos_learner_client_requests_refused", "client_refused",
     "Client frames this learner refused for being over a limit (a WATCH or LOOKUP of more "
     "than 4096 request ids, a page of more than 100,000 entries).", "learner"),
)


def _protocol_metrics(s: Snapshot) -> Iterator[Any]:
    """Per-agent protocol state and counters, for the agents whose role has them."""
    ballot = GaugeMetricFamily("paxos_ballot_round", "Round of the proposer's current ballot.",
                               labels=AGENT)
    for a in s.agents:
        if a.ballot_round is not None:
            ballot.add_metric(a.labels, a.ballot_round)
    yield ballot
    for name, stat, doc, role in PROTOCOL_COUNTERS:
        family = CounterMetricFamily(name, doc, labels=AGENT)
        for a in s.agents:
            if plays(a.role, role):
                family.add_metric(a.labels, a.totals.get(stat, 0))
        yield family
    persist = HistogramMetricFamily(
        "paxos_acceptor_persist_duration_seconds",
        "Time to commit one batch of the agent's state to SQLite (fsync included).",
        labels=AGENT)
    commit = HistogramMetricFamily(
        "paxos_commit_duration_seconds",
        "At the leader, per slot: from the arrival of the slot's oldest command (queueing and "
        "batching included) to the slot's decision as the leader learns it.",
        labels=AGENT)
    for a in s.agents:
        _add_histogram(persist, a, "persist", PERSIST_BUCKETS)
        if plays(a.role, "proposer"):
            _add_histogram(commit, a, "commit", COMMIT_BUCKETS)
    yield persist
    yield commit


def _add_histogram(family: HistogramMetricFamily, a: AgentSample, prefix: str,
                   bounds: tuple[float, ...]) -> None:
    """`a`'s series of `family`, from its totals' `<prefix>_bucket:<i>` (one per
    bound of `bounds`, then one above them all) and `<prefix>_sum`."""
    cumulative, points = 0.0, []
    for i, bound in enumerate((*bounds, float("inf"))):
        cumulative += a.totals.get(f"{prefix}_bucket:{i}", 0)
        points.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
    family.add_metric(a.labels, points, sum_value=a.totals.get(f"{prefix}_sum", 0.0))


def _message_metrics(s: Snapshot) -> Iterator[Any]:
    """Messages each agent received, sent, dropped, and what chaos did to them."""
    received = CounterMetricFamily("paxos_messages", "Protocol messages the agent received.",
                                   labels=[*AGENT, "type"])
    sent = CounterMetricFamily("paxos_messages_sent", "Protocol messages the agent sent.",
                               labels=[*AGENT, "type"])
    dropped = CounterMetricFamily("paxos_messages_dropped",
                                  "Messages the agent dropped, by reason.",
                                  labels=[*AGENT, "reason"])
    duplicated = CounterMetricFamily("paxosctl_chaos_duplicated",
                                     "Messages the chaos settings duplicated at this sender.",
                                     labels=AGENT)
    delayed = CounterMetricFamily("paxosctl_chaos_delayed",
                                  "Messages the chaos settings delayed at this sender.",
                                  labels=AGENT)
    for a in s.agents:
        t = a.totals
        for kind in (m.__name__ for m in MESSAGE_TYPES):
            received.add_metric([*a.labels, kind], t.get(f"received:{kind}", 0))
            sent.add_metric([*a.labels, kind], t.get(f"sent:{kind}", 0))
        by_reason = {
            "unreachable": t.get("dropped:unreachable", 0) + t.get("dropped:overflow", 0),
            "chaos_drop": t.get("chaos:drop", 0),
            "partition": t.get("chaos:partition", 0),
            "malformed": t.get("malformed", 0),
            "wrong_role": t.get("dropped", 0),
            # Sent or received by an agent whose new store is not admitted yet (admission.py).
            "not_admitted": t.get("dropped:not_admitted", 0),
        }
        for reason in DROP_REASONS:
            dropped.add_metric([*a.labels, reason], by_reason[reason])
        duplicated.add_metric(a.labels, t.get("chaos:duplicate", 0))
        delayed.add_metric(a.labels, t.get("chaos:delay", 0))
    yield from (received, sent, dropped, duplicated, delayed)


def _connection_metrics(s: Snapshot) -> Iterator[Any]:
    """What the agents' endpoints refused or cut off (see transport.Limits)."""
    refused = CounterMetricFamily("paxos_connections_refused",
                                  "Connections the agent refused (inbound; over TLS also its own "
                                  "links a peer refused), by reason.",
                                  labels=[*AGENT, "reason"])
    cut = CounterMetricFamily("paxos_clients_cut",
                              "Clients disconnected for falling behind on their answers.",
                              labels=AGENT)
    backoffs = CounterMetricFamily("paxos_accept_backoffs",
                                   "Times the agent stopped accepting for a while, out of "
                                   "descriptors.", labels=AGENT)
    admin = CounterMetricFamily("paxos_admin_frames_refused",
                                "Admin frames (membership, reconfiguration, chaos) the agent "
                                "refused for coming without the operator certificate.",
                                labels=AGENT)
    for a in s.agents:
        t = a.totals
        for reason in REFUSE_REASONS:
            refused.add_metric([*a.labels, reason], t.get(f"refused:{reason}", 0))
        cut.add_metric(a.labels, t.get("clients_cut", 0))
        backoffs.add_metric(a.labels, t.get("accept_backoffs", 0))
        admin.add_metric(a.labels, t.get("client_admin_refused", 0))
    yield from (refused, cut, backoffs, admin)


def _history_metrics(s: Snapshot) -> Iterator[Any]:
    """Bounded history: compaction, retention, learner progress and lag."""
    families = {key: GaugeMetricFamily(name, doc, labels=AGENT)
                for key, (name, doc, _) in GAUGES.items()}
    compaction_lag = GaugeMetricFamily(
        "paxos_compaction_lag_slots",
        "Slots decided but not yet compacted at this acceptor: grows while a learner is "
        "down or behind (it holds compaction back).", labels=AGENT)
    learner_lag = GaugeMetricFamily(
        "paxos_learner_lag_slots",
        "Slots the furthest learner applied that this learner has not (paxos_decided_slot "
        "minus paxos_learner_applied_slot).", labels=AGENT)
    for a in s.agents:
        for key in GAUGES:
            if key in a.gauges:
                families[key].add_metric(a.labels, a.gauges[key])
        if "compacted" in a.gauges:
            compaction_lag.add_metric(a.labels,
                                      max(0.0, s.decided_slot + 1 - a.gauges["compacted"]))
        if "decided_up_to" in a.gauges:
            learner_lag.add_metric(a.labels, max(0.0, s.decided_slot - a.gauges["decided_up_to"]))
    yield from families.values()
    yield compaction_lag
    yield learner_lag


class Metrics:
    """The registry, its collector and the HTTP server.

    The registry also holds the supervisor's own `process_*` metrics (CPU,
    memory, open files of the supervisor process) and `python_info`.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = ClusterCollector()
        self.registry.register(self.collector)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
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
