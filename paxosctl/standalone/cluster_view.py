"""What one standalone agent knows of its cluster, as Prometheus series.

The supervisor (`paxosctl up`) exports cluster-wide series it computes
from every agent's heartbeat: a leader exists, acceptors up against the
quorum, commands decided, leader changes, the configuration epochs, each
agent's state size. An agent run on its own (`paxosctl agent`) is its
own scrape target and has no supervisor to add them, so it exports the
per-agent parts here and Prometheus adds them up across the cluster's
targets (examples/alerts.yml and examples/grafana-dashboard.json use
either kind, grouped by the `cluster` label the scrape config gives):

- `paxos_proposer_leading`: 1 while this proposer leads (phase 2 for
  its ballot); `max by (cluster)` is the supervisor's `paxos_has_leader`.
- `paxos_proposer_leading_since_timestamp_seconds`: when these probes
  first saw it lead in its current term (a heartbeat's resolution: the
  probes read the latest heartbeat at scrape time), 0 when not leading.
- `paxos_proposer_elections_won_total`: times it became leader; summed
  by cluster, the supervisor's `paxos_leader_changes_total` (plus one:
  the supervisor does not count the first leader).
- `paxos_learner_applied_commands_total`,
  `paxos_learner_proposals_expired_total`: a learner's own counts; the
  supervisor's `paxos_decided_commands_total` and
  `paxos_proposals_expired_total` are the largest of them.
- `paxos_acceptor_up`: 1 if this agent is an acceptor of the
  configuration in force and its loop turns (a heartbeat newer than
  `stale_after`), else 0. Every agent exports it, so `sum by (cluster)`
  (the supervisor's `paxos_acceptors_up`) is 0, not absent, while any
  agent of the cluster answers.
- `paxos_acceptors_configured`, `paxos_acceptor_quorum`: the acceptors
  in force and their majority, as this agent knows them.
- `paxos_config_epoch`, `paxos_config_in_force_epoch`: the latest
  configuration decided, and in force (agents that know configurations:
  proposers and learners).
- `paxosctl_agent_state_bytes`: its state files (as the supervisor's).

"In force" is the agent's own report's configuration (proposers,
learners, replicas); an acceptor-only agent does not learn
configurations, so it counts itself by the membership it runs.
Every series carries `agent` and `role`, as the agent's other series do.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from paxos_agents.core.configs import majority
from paxos_agents.core.settings import Membership
from paxos_agents.runtime.control import Board
from paxos_agents.runtime.report import AgentReport

from ..supervisor.metrics import AGENT, plays

#: Per-agent counters from the report's stats: (metric, stat, help, protocol role).
COUNTERS = (
    ("paxos_proposer_elections_won", "proposer_leader_changes",
     "Times this proposer became leader (elections it won).", "proposer"),
    ("paxos_learner_applied_commands", "applied_commands",
     "Client commands this learner applied (duplicates and expired ones not counted).",
     "learner"),
    ("paxos_learner_proposals_expired", "expired",
     "Proposals this learner refused as issued before its retained log.", "learner"),
)


class ClusterViewCollector(Collector):
    """The series above, from the latest heartbeat on `board`."""

    def __init__(self, board: Board, role: str, membership: Membership,
                 stale_after: float) -> None:
        self._board = board
        self._role = role
        self._membership = membership
        self._stale_after = stale_after
        #: Unix time this proposer was first seen leading in its current term.
        self._leading_since = 0.0

    def collect(self) -> Iterator[Any]:
        beat = self._board.latest
        if beat is None:
            return
        report = AgentReport.from_json(beat.report)
        labels = [report.name, self._role]
        answering = time.monotonic() - beat.at <= self._stale_after

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=AGENT)
            family.add_metric(labels, value)
            return family

        if plays(self._role, "proposer"):
            if not report.leader:
                self._leading_since = 0.0
            elif not self._leading_since:
                self._leading_since = time.time()
            yield gauge("paxos_proposer_leading", "1 while this proposer leads.",
                        1.0 if report.leader else 0.0)
            yield gauge("paxos_proposer_leading_since_timestamp_seconds",
                        "Unix time this proposer was first seen leading in its current term "
                        "(0: not leading).", self._leading_since)
        for name, stat, doc, role in COUNTERS:
            if plays(self._role, role):
                family = CounterMetricFamily(name, doc, labels=AGENT)
                family.add_metric(labels, report.stats.get(stat, 0))
                yield family
        config = report.config
        in_force = config.in_force if config is not None else self._membership.acceptors
        yield gauge("paxos_acceptor_up",
                    "1 if this agent is an acceptor of the configuration in force and its "
                    "loop turns, else 0 (sum by cluster: acceptors up).",
                    1.0 if answering and report.name in in_force else 0.0)
        yield gauge("paxos_acceptors_configured",
                    "Acceptors of the configuration in force, as this agent knows it.",
                    len(in_force))
        yield gauge("paxos_acceptor_quorum",
                    "Acceptors that must be up for slots to be decided (a majority), as this "
                    "agent knows the configuration in force.", majority(len(in_force)))
        if config is not None:
            yield gauge("paxos_config_epoch",
                        "The latest acceptor configuration decided, as this agent knows it.",
                        config.epoch)
            yield gauge("paxos_config_in_force_epoch",
                        "The latest acceptor configuration in force, as this agent knows it.",
                        config.in_force_epoch)
        yield gauge("paxosctl_agent_state_bytes",
                    "Bytes of the agent's state files (database and WAL).", report.state_bytes)
