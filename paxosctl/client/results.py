"""What the control requests of `paxosctl.Client` return: typed, frozen results.

The supervisor answers with JSON objects (`paxosctl.supervisor.ops`); these classes
are those answers parsed once, at the edge, so a caller reads
`status.leader` rather than `reply["leader"]` and a type checker knows
what it gets. `Client.request` still returns the raw dict, for scripts
that want the wire form (`paxosctl status -o json` prints it).

Parsing is lenient by design: a newer supervisor may add keys (or change
the type of one), and an older client must keep working. A key this
client does not know lands in `extra`; a known key whose value has an
unexpected type reads as None and its raw value goes to `extra` too.
Nothing in a well-formed reply makes parsing fail.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, NamedTuple, TypeVar

from ..errors import OutcomeUnknown, PaxosctlError

__all__ = ["AgentStatus", "ClusterStatus", "KillResult", "RestartResult", "DownResult",
           "AgentChange", "Decision", "Proposed", "json_value", "retry_hint"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})

T = TypeVar("T")


class _Fields:
    """Reads the keys of one reply object, remembering those it did not take."""

    def __init__(self, obj: Mapping[str, Any], ignore: tuple[str, ...] = ("id", "ok")) -> None:
        self._obj = obj
        self._left = {k: v for k, v in obj.items() if k not in ignore}

    def get(self, key: str, kind: type[T] | tuple[type, ...]) -> T | None:
        """`obj[key]` if it is of `kind`, else None (kept in `extra` if present)."""
        if key not in self._obj:
            return None
        value = self._obj[key]
        if value is None:  # a known key, empty: not news
            del self._left[key]
            return None
        # bool is an int in Python; a JSON true is never a count or a pid.
        if isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool):
            del self._left[key]
            return value  # type: ignore[return-value]
        return None

    def number(self, key: str) -> float | None:
        """A JSON number as float (JSON does not tell 3 from 3.0)."""
        value = self.get(key, (int, float))
        return float(value) if value is not None else None

    def text(self, key: str, default: str = "") -> str:
        value = self.get(key, str)
        return value if value is not None else default

    def extra(self) -> Mapping[str, Any]:
        return MappingProxyType(self._left) if self._left else _EMPTY


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStatus:
    """One agent's row of `paxosctl status` (`paxosctl.supervisor.ops._agent_row`).

    `state` is the supervisor's word for it ("running", "backoff", "fatal",
    ... : a str, since newer supervisors add states). The progress fields
    are None until the agent's first report, or when its role has none.
    `cpu_s`, `rss_bytes` and `last_heartbeat_s` are filled only by
    `status(wide=True)`.
    """

    name: str
    role: str
    state: str
    pid: int | None
    restarts: int
    uptime_s: float | None
    decided_up_to: int | None = None
    log_start: int | None = None
    compacted: int | None = None
    installed: int | None = None
    catchup_remaining: int | None = None
    client_commands: int | None = None
    state_bytes: int | None = None
    #: Seconds left before the next start, while in backoff.
    backoff_s: float | None = None
    #: Why it last failed to run, as the supervisor words it.
    error: str | None = None
    #: How its last incarnation ended (reason, code, ...), as the reply gives it.
    last_exit: Mapping[str, Any] | None = None
    cpu_s: float | None = None
    rss_bytes: int | None = None
    last_heartbeat_s: float | None = None
    #: False while the operator keeps it stopped (`paxosctl stop`): not "down".
    should_run: bool = True
    #: Why it is not simply running, or how its last run ended ("" if nothing).
    note: str = ""
    #: Keys of the reply this client does not know (from a newer supervisor).
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @property
    def running(self) -> bool:
        return self.state == "running"

    @classmethod
    def from_wire(cls, row: Mapping[str, Any]) -> AgentStatus:
        """Parse one agent object of a status reply (leniently: see the module doc)."""
        f = _Fields(row)
        last_exit = f.get("last_exit", dict)
        return cls(
            name=f.text("name"), role=f.text("role"), state=f.text("state", "unknown"),
            pid=f.get("pid", int), restarts=f.get("restarts", int) or 0,
            uptime_s=f.number("uptime_s"),
            decided_up_to=f.get("decided_up_to", int), log_start=f.get("log_start", int),
            compacted=f.get("compacted", int), installed=f.get("installed", int),
            catchup_remaining=f.get("catchup_remaining", int),
            client_commands=f.get("client_commands", int),
            state_bytes=f.get("state_bytes", int), backoff_s=f.number("backoff_s"),
            error=f.get("error", str),
            last_exit=MappingProxyType(last_exit) if last_exit is not None else None,
            cpu_s=f.number("cpu_s"), rss_bytes=f.get("rss_bytes", int),
            last_heartbeat_s=f.number("last_heartbeat_s"),
            should_run=_true_unless_false(f.get("should_run", bool)),
            note=f.text("note"),
            extra=f.extra())


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterStatus:
    """The cluster as `paxosctl status` shows it (`paxosctl.supervisor.ops.describe`).

    `ballot` is the leader's (round, node_id); `decided_up_to` the highest
    slot any running learner applied (None before the first decision).
    """

    cluster: str
    leader: str | None
    ballot: tuple[int, str] | None
    decided_up_to: int | None
    metrics_url: str | None
    #: The chaos settings in force (empty when none), as the reply gives them.
    chaos: Mapping[str, Any]
    agents: tuple[AgentStatus, ...]
    #: The manifest the supervisor runs: {"path": ..., "digest": ...}
    #: (`paxosctl apply` changes it); None from an older supervisor.
    manifest: Mapping[str, Any] | None = None
    #: The acceptor configurations as the agents reported them: epoch,
    #: acceptors, majority, in_force_epoch, in_force, pending_slot, and
    #: change (a membership change in progress, else None); None before any
    #: proposer or learner reported, or from an older supervisor.
    configuration: Mapping[str, Any] | None = None
    #: Keys of the reply this client does not know (from a newer supervisor).
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def agent(self, name: str) -> AgentStatus:
        """The agent called `name`; KeyError if the cluster has none."""
        for agent in self.agents:
            if agent.name == name:
                return agent
        raise KeyError(name)

    @property
    def healthy(self) -> bool:
        """True when there is a leader and every agent that should run runs
        (one the operator stopped does not count; `paxosctl status` exits 3
        otherwise)."""
        return self.leader is not None and all(a.running or not a.should_run
                                               for a in self.agents)

    @classmethod
    def from_wire(cls, reply: Mapping[str, Any]) -> ClusterStatus:
        """Parse a status reply (leniently: see the module doc)."""
        f = _Fields(reply)
        ballot = f.get("ballot", list)
        rows = f.get("agents", list) or []
        chaos = f.get("chaos", dict)
        manifest = f.get("manifest", dict)
        configuration = f.get("configuration", dict)
        return cls(
            cluster=f.text("cluster"), leader=f.get("leader", str),
            ballot=(ballot[0], ballot[1]) if ballot and len(ballot) == 2 and isinstance(
                ballot[0], int) and isinstance(ballot[1], str) else None,
            decided_up_to=f.get("decided_up_to", int), metrics_url=f.get("metrics_url", str),
            chaos=MappingProxyType(chaos or {}),
            agents=tuple(AgentStatus.from_wire(r) for r in rows if isinstance(r, dict)),
            manifest=MappingProxyType(manifest) if manifest is not None else None,
            configuration=MappingProxyType(configuration) if configuration is not None else None,
            extra=f.extra())


@dataclass(frozen=True, slots=True)
class KillResult:
    """The signal was sent: to `agent`, then running as `pid`; `signal` is
    its full name ("SIGKILL", "SIGSTOP")."""

    agent: str
    pid: int | None
    signal: str

    @classmethod
    def from_wire(cls, reply: Mapping[str, Any]) -> KillResult:
        f = _Fields(reply)
        return cls(f.text("agent"), f.get("pid", int), f.text("signal"))


def _true_unless_false(value: bool | None) -> bool:
    return value is not False


@dataclass(frozen=True, slots=True)
class AgentChange:
    """`stop`/`start` of `agent`: `changed` is False when it already was so."""

    agent: str
    changed: bool

    @classmethod
    def from_wire(cls, reply: Mapping[str, Any]) -> AgentChange:
        f = _Fields(reply)
        return cls(f.text("agent"), bool(f.get("changed", bool)))


@dataclass(frozen=True, slots=True)
class MembershipChange:
    """A `scale` or `replace` (paxosctl.membership): what it did, and whether the
    new configuration is in force yet (False with `wait=0`).

    `epoch` is the configuration epoch of the new acceptors (None when the
    acceptors did not change); `retired` names are never used again.
    """

    why: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    retired: tuple[str, ...]
    acceptors: tuple[str, ...]
    epoch: int | None
    in_force: bool

    @classmethod
    def from_wire(cls, reply: Mapping[str, Any]) -> MembershipChange:
        f = _Fields(reply)

        def names(key: str) -> tuple[str, ...]:
            return tuple(str(n) for n in f.get(key, list) or ())
        if f.get("unchanged", bool):
            return cls(f.text("why"), (), (), (), (), None, True)
        return cls(f.text("why"), names("added"), names("removed"), names("retired"),
                   names("acceptors"), f.get("epoch", int), bool(f.get("in_force", bool)))


@dataclass(frozen=True, slots=True)
class RestartResult:
    """`agent` is being restarted (it may not run yet: see `status`)."""

    agent: str

    @classmethod
    def from_wire(cls, reply: Mapping[str, Any]) -> RestartResult:
        return cls(_Fields(reply).text("agent"))


@dataclass(frozen=True, slots=True)
class DownResult:
    """The supervisor stopped every agent and is exiting."""

    stopped: bool

    @classmethod
    def from_wire(cls, reply: Mapping[str, Any]) -> DownResult:
        return cls(bool(reply.get("stopped", True)))


# ------------------------------------------------- proposals (the data path)


def retry_hint(request_id: str, issued: int | None = None) -> str:
    """How to find out, or to retry without deciding the value twice."""
    stamp = f" --issued {issued}" if issued is not None and issued >= 0 else ""
    return (f"retry safely with the same request id: paxosctl propose --request-id "
            f"{request_id}{stamp} VALUE (the same value; never decided twice), or look for "
            f"{request_id} in: paxosctl decided")


class Decision(NamedTuple):
    """A decided proposal: the position where its request id was first decided.

    `slot` and `index` (the command's place in that slot's batch) make the
    position: unique, ordered by slot then index; `position` is its text
    form "SLOT.INDEX".

    Immutable, as the other results. A NamedTuple, not a frozen dataclass:
    one is made per decided command on the client's I/O thread, and a
    frozen dataclass takes four times as long to make (a checked setattr
    per field: 0.67 against 0.15 µs here). So it is also a tuple (it
    unpacks, and compares by its fields in order: slot first, then index).
    """

    slot: int
    # The field shadows tuple's `index` method (a Decision is not searched).
    index: int  # type: ignore[assignment]
    value: bytes
    request_id: str
    seconds: float

    @property
    def position(self) -> str:
        return f"{self.slot}.{self.index}"


class Proposed(NamedTuple):
    """What one value of a `propose_many` call came to: its `decision`, or the
    typed `error` a single `propose` of it would raise; always its `request_id`.

    An `unknown` one (`ProposalTimeout`, `ConnectionLost`: exit 124) may
    still be decided: retry it by id, `propose(p.value, request_id=p.request_id)`,
    which is never decided twice.

    A NamedTuple (immutable, as the other results), not a frozen dataclass:
    one is made per value of a batch, and a frozen dataclass takes twice as
    long to make (a checked setattr per field).
    """

    request_id: str
    #: The value as sent (bytes; a str was sent as UTF-8).
    value: bytes
    decision: Decision | None = None
    error: PaxosctlError | None = None

    @property
    def ok(self) -> bool:
        """Decided (under this request id, with this value)."""
        return self.decision is not None

    @property
    def unknown(self) -> bool:
        """Its outcome is unknown (exit 124): it may still be decided; retry by id."""
        return isinstance(self.error, OutcomeUnknown)

    def result(self) -> Decision:
        """The `Decision`, or raise the `error`."""
        if self.decision is None:
            assert self.error is not None
            raise self.error
        return self.decision


def json_value(value: bytes | None) -> Any:
    """A payload as JSON shows it: the text when it is UTF-8, else
    {"base64": "..."} (the bytes, base64-encoded). None for a no-op."""
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(value).decode()}
