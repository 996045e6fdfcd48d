"""The heartbeat report: agent -> supervisor, in every HEARTBEAT frame.

One type both ends import. The agent builds an `AgentReport` each
heartbeat (`Agent.heartbeat`) and sends its `to_json()`; the supervisor
parses that once with `AgentReport.from_json` and from then on reads
typed fields. A field renamed here breaks both ends at once, loudly,
instead of leaving a metric silently at zero.

`stats` stays a mapping: it is the node's own counters and gauges
(`Node.stats()`, `Clients.stats()`), named by the core and different per
role. Which of them the supervisor reads is declared where it reads them
(`paxosctl.supervisor.metrics`, `paxosctl.supervisor.ops`), and a test holds those names
against real agents' reports.

Counts are cumulative for the incarnation that sends them: a restarted
agent starts again at zero, and the supervisor keeps the totals of ended
incarnations itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from paxos_agents.core.configs import ConfigError, History, majority


class ReportError(ValueError):
    """A heartbeat body that is not an `AgentReport` (an agent misbehaved)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Histogram:
    """A histogram an agent keeps over its incarnation: how many, their sum,
    and per bucket.

    `buckets[i]` counts the observations of at most the i-th bound of its
    bucket bounds and more than the bound before it; the last bucket counts
    those above every bound. Not cumulative per bucket. The bounds are the
    producer's constant, which the supervisor imports (`persist`: the
    `persister.PERSIST_BUCKETS`; `commit`: the core's `COMMIT_BUCKETS`).
    """

    count: int = 0
    sum: float = 0.0  # seconds, all observations together
    buckets: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "sum": self.sum, "buckets": list(self.buckets)}

    @classmethod
    def from_json(cls, obj: Any, key: str) -> Histogram:
        """The histogram field `key` of a report; `ReportError` naming what is wrong."""
        if not isinstance(obj, dict):
            raise ReportError(f"{key}: expected an object, got {type(obj).__name__}")
        where = f"{key}."
        buckets = _field(obj, "buckets", list, where=where)
        if not all(_is_int(n) for n in buckets):
            raise ReportError(f"{key}.buckets: expected a list of integers")
        total = _field(obj, "sum", (int, float), where=where)
        return cls(count=_int(obj, "count", where=where), sum=float(total), buckets=tuple(buckets))


#: How long the agent's persists took (one SQLite transaction each); the
#: name the report's `persist` field had before `commit` joined it.
PersistHistogram = Histogram


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentReport:
    """Agent -> supervisor, every heartbeat_interval: alive, and what it knows and counted."""

    name: str
    incarnation: int
    #: A proposer in phase 2 for its ballot (it believes it leads).
    leader: bool
    #: A proposer's current ballot as (round, node_id), which orders as ballots
    #: do; None at an agent with no proposer.
    ballot: tuple[int, str] | None
    #: Whom a proposer believes leads (None: nobody it knows of, or no proposer).
    leader_hint: str | None
    #: A learner's highest slot applied with no gap below; None without a learner.
    decided_up_to: int | None
    #: The node's and its client endpoint's counters and gauges, by name.
    stats: Mapping[str, int | float]
    #: Protocol messages received and sent, by message type name.
    received: Mapping[str, int]
    sent: Mapping[str, int]
    #: Frames from peers that did not decode.
    malformed: int
    #: Messages the transport could not deliver, by reason.
    dropped: Mapping[str, int]
    #: Messages the chaos settings dropped, duplicated or delayed, by fault.
    chaos: Mapping[str, int]
    #: How long the agent's persists took (one SQLite transaction each).
    persist: Histogram = field(default_factory=Histogram)
    #: At a proposer: how long each slot it led took from the arrival of its
    #: oldest command to its decision (core committime.py); empty elsewhere.
    commit: Histogram = field(default_factory=Histogram)
    #: Bytes of the agent's state files (the database and its WAL).
    state_bytes: int = 0
    #: The configurations as this agent knows them (`ConfigReport`); None at
    #: an acceptor-only agent (acceptors need not know them).
    config: ConfigReport | None = None
    #: Inbound connections the transport refused, by reason (see
    #: `transport.Transport.refused`): "handshake_timeout",
    #: "too_many_connections", "bad_hello", "stale_incarnation".
    refused: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """This report as a JSON object (plain dicts, lists, numbers, strings)."""
        return {
            "name": self.name,
            "incarnation": self.incarnation,
            "leader": self.leader,
            "ballot": list(self.ballot) if self.ballot is not None else None,
            "leader_hint": self.leader_hint,
            "decided_up_to": self.decided_up_to,
            "stats": dict(self.stats),
            "received": dict(self.received),
            "sent": dict(self.sent),
            "malformed": self.malformed,
            "dropped": dict(self.dropped),
            "chaos": dict(self.chaos),
            "persist": self.persist.to_json(),
            "commit": self.commit.to_json(),
            "state_bytes": self.state_bytes,
            "config": self.config.to_json() if self.config is not None else None,
            "refused": dict(self.refused),
        }

    @classmethod
    def from_json(cls, obj: Any) -> AgentReport:
        """The report `obj` (a decoded JSON value) holds; `ReportError` naming
        the first field that is missing or of the wrong type."""
        if not isinstance(obj, dict):
            raise ReportError(f"a report is a JSON object, got {type(obj).__name__}")
        ballot = obj.get("ballot")
        if ballot is not None:
            if not (isinstance(ballot, list) and len(ballot) == 2 and _is_int(ballot[0])
                    and isinstance(ballot[1], str)):
                raise ReportError(f"ballot: expected [round, node_id] or null, got {ballot!r:.60}")
            ballot = (ballot[0], ballot[1])
        persist = Histogram.from_json(_field(obj, "persist", dict), "persist")
        leader_hint = obj.get("leader_hint")
        if leader_hint is not None and not isinstance(leader_hint, str):
            raise ReportError(f"leader_hint: expected a string or null, got {leader_hint!r:.60}")
        decided_up_to = obj.get("decided_up_to")
        if decided_up_to is not None and not _is_int(decided_up_to):
            raise ReportError(f"decided_up_to: expected an integer or null, got {decided_up_to!r:.60}")
        return cls(
            name=_field(obj, "name", str),
            incarnation=_int(obj, "incarnation"),
            leader=_field(obj, "leader", bool),
            ballot=ballot,
            leader_hint=leader_hint,
            decided_up_to=decided_up_to,
            # The core names its stats and may add a gauge that is not a
            # count: any number passes, where a stricter rule would make a
            # whole agent's heartbeats unreadable.
            stats=_counts(obj, "stats", (int, float)),
            received=_counts(obj, "received"),
            sent=_counts(obj, "sent"),
            malformed=_int(obj, "malformed"),
            dropped=_counts(obj, "dropped"),
            chaos=_counts(obj, "chaos"),
            persist=persist,
            # Absent from an agent of an earlier version (a rolling upgrade).
            commit=Histogram.from_json(obj["commit"], "commit") if "commit" in obj else Histogram(),
            state_bytes=_int(obj, "state_bytes"),
            refused=_counts(obj, "refused") if "refused" in obj else {},
            config=ConfigReport.from_json(obj["config"]) if obj.get("config") is not None else None,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigReport:
    """An agent's view of the configurations (core `Node.configuration()`).

    - `epoch`, `acceptors`: the latest configuration decided;
    - `in_force_epoch`, `in_force`: the latest one in force (every learner
      stored every slot before the first slot it governs);
    - `pending_slot`: the first slot a decided change governs while it is
      not yet in force, else -1;
    - `history`: the whole history, which the supervisor hands to agents
      that start with an empty store. Typed on both ends: JSON
      (`History.to_json()`) only on the wire, written once by `to_json`
      and parsed once by `from_json`, so nothing reads it by position.
    """

    epoch: int
    acceptors: tuple[str, ...]
    in_force_epoch: int
    in_force: tuple[str, ...]
    pending_slot: int
    history: History

    def to_json(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "acceptors": list(self.acceptors),
                "in_force_epoch": self.in_force_epoch, "in_force": list(self.in_force),
                "pending_slot": self.pending_slot, "history": self.history.to_json()}

    @classmethod
    def from_json(cls, obj: Any) -> ConfigReport:
        """The configuration part of a report; `ReportError` naming the field
        that is wrong (a history that is not one included)."""
        if not isinstance(obj, dict):
            raise ReportError(f"config: expected an object or null, got {obj!r:.60}")
        names = {}
        for key in ("acceptors", "in_force"):
            value = _field(obj, key, list, where="config.")
            if not all(isinstance(n, str) for n in value):
                raise ReportError(f"config.{key}: expected a list of names")
            names[key] = tuple(value)
        try:
            history = History.from_json(_field(obj, "history", list, where="config."))
        except ConfigError as exc:
            raise ReportError(f"config.history: {exc}") from None
        return cls(epoch=_int(obj, "epoch", where="config."), acceptors=names["acceptors"],
                   in_force_epoch=_int(obj, "in_force_epoch", where="config."),
                   in_force=names["in_force"],
                   pending_slot=_int(obj, "pending_slot", where="config."),
                   history=history)

    def newer_than(self, other: ConfigReport | None) -> bool:
        """Whether this view knows more than `other`: more decided, more in
        force, or fed further (views of one history only grow). The most
        advanced view any agent reported is the cluster's."""
        if other is None:
            return True
        key = (self.epoch, self.in_force_epoch, self.history.known)
        return key > (other.epoch, other.in_force_epoch, other.history.known)

    def to_status(self) -> dict[str, Any]:
        """The configuration as `status` shows it (JSON)."""
        return {
            "epoch": self.epoch,
            "acceptors": list(self.acceptors),
            "majority": majority(len(self.acceptors)),
            "in_force_epoch": self.in_force_epoch,
            "in_force": list(self.in_force),
            "pending_slot": self.pending_slot if self.pending_slot >= 0 else None,
        }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _field(obj: dict, key: str, kind: type | tuple[type, ...], *, where: str = "") -> Any:
    if key not in obj:
        raise ReportError(f"{where}{key}: missing")
    value = obj[key]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ReportError(f"{where}{key}: wrong type {type(value).__name__}")
    return value


def _int(obj: dict, key: str, *, where: str = "") -> int:
    return _field(obj, key, int, where=where)  # _field refuses booleans


def _counts(obj: dict, key: str, kind: type | tuple[type, ...] = int) -> Mapping[str, Any]:
    """A read-only mapping of names to numbers of `kind` (never booleans)."""
    value = _field(obj, key, dict)
    for name, count in value.items():
        if not isinstance(count, kind) or isinstance(count, bool):
            raise ReportError(f"{key}.{name}: expected a number, got {type(count).__name__}")
    return MappingProxyType(dict(value))
