"""Metrics as a snapshot of the fleet: what the loop hands the scrape thread.

The loop calls `Publisher.publish_if_due` every turn (and `publish` before
a scrape asks); each publish builds an immutable `metrics.Snapshot` from
the fleet's agents and their latest reports and swaps it in for the
collector. Nothing here runs outside the loop's thread.

The publisher also keeps what a snapshot cannot rebuild from the fleet:
how many times the leader changed, and when last, and the slots and
commands decided and refused as expired so far (which only grow).

Decided commands are counted once cluster-wide, not once per learner:
every learner applies the same commands, so the count is the largest
learner's own (its `applied_commands`, summed over its incarnations by
the supervisor; duplicates of an earlier command and expired ones are not
applied, so not counted). A learner that copied slots from a peer counts
the commands in them as it installs them. The publisher keeps the highest
count seen, so the counter never goes back when that learner restarts or
leaves the membership.
"""

from __future__ import annotations

import time
from typing import Callable

from .agents import process_usage
from .fleet import Fleet
from .metrics import AgentSample, Metrics, Snapshot, report_gauges, report_totals
from .restart import AgentState

#: How often the loop publishes a metrics snapshot for scrapes.
PUBLISH_SECONDS = 0.5


class Publisher:
    """Builds `Snapshot`s of one fleet into `metrics.collector`."""

    def __init__(self, fleet: Fleet, metrics: Metrics) -> None:
        self.fleet = fleet
        self.metrics = metrics
        self._next_publish = 0.0
        #: The latest (leader, ballot) seen, to count changes of either.
        self._leader_seen: tuple[str, tuple[int, str] | None] | None = None
        self.leader_changes = 0
        self.leader_changed_at = 0.0  # Unix time
        self.decided_slots = 0
        self.decided_commands = 0
        self.expired = 0
        #: Whether a membership change is in progress (the supervisor sets it).
        self.changing: Callable[[], bool] = lambda: False

    def publish_if_due(self, now: float) -> None:
        if now >= self._next_publish:
            self._next_publish = now + PUBLISH_SECONDS
            self.publish(now)

    def publish(self, now: float) -> None:
        """Hand the metrics HTTP thread a fresh, immutable snapshot."""
        fleet = self.fleet
        leader = fleet.leader()
        seen = (leader.name, leader.report.ballot) if leader else None
        if seen is not None and seen != self._leader_seen:
            if self._leader_seen is not None:
                self.leader_changes += 1
            self._leader_seen = seen
            self.leader_changed_at = time.time()
        samples = []
        decided_slot = -1
        for agent in fleet.agents.values():
            usage = process_usage(agent.pid)
            if usage["cpu_s"] is not None:
                agent.cpu_current = usage["cpu_s"]
            report = agent.report if agent.process is not None else None
            totals = agent.past_totals + report_totals(report) if report else agent.past_totals
            ballot = report.ballot if report else None
            if report is not None and report.decided_up_to is not None:
                decided_slot = max(decided_slot, report.decided_up_to)
            samples.append(AgentSample(
                name=agent.name, role=agent.spec.role,
                # As status shows it: an unresponsive agent (late heartbeats) is not up.
                up=fleet.shown_state(agent, now) == AgentState.RUNNING.value,
                stopped=agent.held,
                restarts=dict(agent.restarts_by_reason), health_failures=agent.health_failures,
                cpu_seconds=agent.cpu_past + agent.cpu_current, rss_bytes=usage["rss_bytes"],
                backoff_seconds=agent.lifecycle.backoff_remaining(now),
                ballot_round=ballot[0] if ballot else None, totals=dict(totals),
                gauges=report_gauges(report) if report else {}))
        # Learners restore their decisions from disk, so this only grows.
        self.decided_slots = max(self.decided_slots, decided_slot + 1)
        learners = fleet.roster.membership.learners

        def learned(key: str) -> int:
            # Every learner applies the same commands: the furthest one's count.
            return max((sample.totals.get(key, 0) for sample in samples
                        if sample.name in learners), default=0)
        self.decided_commands = max(self.decided_commands, learned("applied_commands"))
        self.expired = max(self.expired, learned("expired"))
        config = fleet.roster.config
        in_force = set(config.in_force) if config else set(fleet.roster.membership.acceptors)
        self.metrics.collector.snapshot = Snapshot(
            cluster=fleet.manifest.name,
            agents=tuple(samples),
            has_leader=leader is not None,
            leader_changes=self.leader_changes,
            leader_changed_at=self.leader_changed_at,
            decided_commands=self.decided_commands,
            decided_slots=self.decided_slots,
            decided_slot=decided_slot,
            expired=self.expired,
            # The configuration in force, not the processes: during a
            # membership change both old and new acceptors run.
            acceptors=len(in_force),
            acceptors_up=sum(1 for sample in samples if sample.up and sample.name in in_force),
            config_epoch=config.epoch if config else 0,
            config_in_force_epoch=config.in_force_epoch if config else 0,
            changing=self.changing(),
            chaos_active=fleet.chaos.describe(),
        )
