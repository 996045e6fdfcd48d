"""What an agent says of itself: its WELCOME, its heartbeat report, its own view.

Three answers, built from the agent's parts handed over at construction
(node, store, transport, control channel, clients, persister, traffic
counters) and, per call, the membership record in force (it changes while
the agent runs: `Agent.set_membership`):

- `welcome`: what a connecting client learns at once (transport.py sends
  it; paxosctl.client.probe.survey reads it);
- `heartbeat`: the `AgentReport` the supervisor turns into status and
  metrics (and, with no supervisor, the agent's own scrape);
- `own_view`: both, and what only the process knows (pid, uptime, files,
  CPU, RSS), for `paxosctl describe` asked of the agent (queries.py).

Nothing here changes the agent's state, except that a heartbeat logs an
event when it first sees a configuration decided or in force.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from ..core.node import Node
from ..core.status import ConfigStatus
from .clients import Clients
from .control import Control
from .members import MembersRecord
from .persister import Persister
from .records import event
from .report import AgentReport, ConfigReport, Histogram
from .spec import AgentSpec
from .storage import Storage
from .transport import PeerTransport

log = logging.getLogger("paxos_agents.agent")


@dataclass
class Traffic:
    """The agent's own message counters (the transport and control channel keep theirs)."""

    #: Protocol messages stepped, and sent, by kind.
    received: Counter[str] = field(default_factory=Counter)
    sent: Counter[str] = field(default_factory=Counter)
    #: Frames and messages dropped as malformed, misaddressed or refused.
    malformed: int = 0


class SelfView:
    """An agent's answers about itself (see the module docstring)."""

    def __init__(self, spec: AgentSpec, node: Node, storage: Storage, transport: PeerTransport,
                 control: Control, clients: Clients, persister: Persister, traffic: Traffic,
                 clock: Callable[[], float]) -> None:
        self.name = spec.name
        self._spec = spec
        self._node = node
        self._storage = storage
        self._transport = transport
        self._control = control
        self._clients = clients
        self._persister = persister
        self._traffic = traffic
        self._clock = clock
        self._started = (time.time(), clock())  # (wall, clock) at the start, for the uptime
        self._config_seen: tuple[int, int] | None = None  # (latest epoch, in force) last reported

    def welcome(self, members_version: int, record: MembersRecord | None) -> dict:
        """What a connecting client learns at once: roles, leader, the highest
        ballot it knows of (its proposer's or its acceptor's promise), the highest slot known
        decided and the slot applied (a learner: lag is their difference),
        every member this agent knows of (`members`: paxosctl learns the
        cluster from it, paxosctl.client.probe.survey), the membership
        record's version and, for a client only (greeting.py), the record
        itself (`membership`), whether the store was admitted, and the
        configurations as this proposer or learner knows them."""
        node = self._node
        out: dict = {"roles": sorted(self._spec.membership.roles(self.name)),
                     "members": sorted(self._transport.members)}
        ballots = [b for b in (node.proposer.ballot if node.proposer else None,
                               node.acceptor.promised if node.acceptor else None) if b is not None]
        if ballots:
            ballot = max(ballots)  # the highest it knows of: its own, or the one it promised
            out["ballot"] = [ballot.round, ballot.node_id]
        if node.proposer is not None:
            out["leader"] = self.name if node.is_leader else node.proposer.leader
        if node.learner is not None:
            out["applied"] = node.learner.decided_up_to
            # Not "decided": the handshake's own flag of that name (handshake.py).
            out["highest_decided"] = max(node.learner.highest_known, node.learner.decided_up_to)
            out["log_start"] = self._storage.log_start
        out["members_version"] = members_version
        out["admitted"] = self._transport.greeter.admitted  # a new store waits for its peers
        if record is not None:  # the CLI learns the members from any agent
            out["membership"] = record.to_json()
        config = node.configuration()
        if config is not None:  # a proposer's or learner's view (paxosctl.client.members)
            out["epoch"] = config.history.latest.epoch
            out["in_force_epoch"] = config.in_force.epoch
            out["acceptors"] = list(config.history.latest.acceptors)
        return out

    def own_view(self, members_version: int, record: MembersRecord | None) -> dict:
        """Everything this agent knows of itself, for `paxosctl describe` with
        no supervisor (queries.py): its heartbeat report, and what only the
        process knows: pid, uptime, start counter, members, files, CPU, RSS."""
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        spec = self._spec
        wall, started = self._started
        return {**self.heartbeat(), **self.welcome(members_version, record), "pid": os.getpid(),
                "incarnation": self._transport.incarnation, "member_id": spec.member_id or None,
                "started_at": wall, "uptime_s": self._clock() - started,
                "members_version": members_version,
                "cpu_s": usage.ru_utime + usage.ru_stime, "rss_bytes": usage.ru_maxrss * 1024,
                "files": {"state": spec.state_path, "state_bytes": self._state_bytes()}}

    def heartbeat(self) -> dict:
        """This incarnation's `AgentReport`, as the JSON object a HEARTBEAT
        frame carries (`AgentReport.to_json()`; the supervisor parses it back)."""
        node = self._node
        status = node.status()  # one typed view of the node: no reaching into its roles
        ballot = status.ballot
        transport = self._transport
        traffic = self._traffic
        report = AgentReport(
            name=self.name,
            incarnation=transport.incarnation,
            leader=status.leading,
            ballot=(ballot.round, ballot.node_id) if ballot is not None else None,
            leader_hint=status.leader,
            decided_up_to=status.decided_up_to,
            stats={**node.stats(), **self._clients.stats(), **transport.stats()},
            received=dict(traffic.received),
            sent=dict(traffic.sent),
            malformed=traffic.malformed + transport.malformed + self._control.malformed,
            dropped=dict(transport.dropped),
            chaos=dict(transport.chaos.counts),
            persist=self._persister.histogram(),
            commit=_commit_histogram(node),
            state_bytes=self._state_bytes(),
            config=_config_report(status.config),
            refused=dict(transport.refused),
        )
        if report.config is not None:
            self._note_config(report.config)
        return report.to_json()

    def _note_config(self, config: ConfigReport) -> None:
        """An event when a configuration is newly decided or newly in force
        (seen at a heartbeat: a change takes many of them)."""
        seen = (config.epoch, config.in_force_epoch)
        before = self._config_seen
        if seen == before:
            return
        self._config_seen = seen
        if before is None or config.epoch != before[0]:
            log.info("configuration %d decided: acceptors %s", config.epoch,
                     ", ".join(config.acceptors), extra=event("config_decided"))
        if before is None or config.in_force_epoch != before[1]:
            log.info("configuration %d in force: acceptors %s", config.in_force_epoch,
                     ", ".join(config.in_force), extra=event("config_in_force"))

    def _state_bytes(self) -> int:
        """Bytes of this agent's state files on disk (the database and its WAL)."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.stat(self._spec.state_path + suffix).st_size
            except OSError:
                pass
        return total


def _commit_histogram(node: Node) -> Histogram:
    """A proposer's commit durations so far (core committime.py); empty elsewhere."""
    times = node.commit_times
    if times is None:
        return Histogram()
    return Histogram(count=times.count, sum=times.sum, buckets=tuple(times.buckets))


def _config_report(status: ConfigStatus | None) -> ConfigReport | None:
    """The heartbeat's configuration part, from the node's typed status."""
    if status is None:
        return None
    latest = status.history.latest
    return ConfigReport(epoch=latest.epoch, acceptors=latest.acceptors,
                        in_force_epoch=status.in_force.epoch,
                        in_force=status.in_force.acceptors,
                        pending_slot=status.pending.first_slot if status.pending else -1,
                        history=status.history)
