"""The control operations: one function per op, and the `OPS` table.

Each operation takes the cluster it acts on (a `Cluster`: the supervisor
provides one), the client connection and its parsed `Request`. It returns
the reply, or None when it answers later (or never: `down`); it refuses a
request by raising `OpError` (`BadRequest` for a bad field), which
`dispatch` turns into the error reply. Every operation runs in the
supervisor's loop thread.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from typing import Any, Callable, Mapping, Protocol

from .. import __version__
from .agents import AgentProcess, monotonic, process_usage
from .control import ClientConnection, Fault, OpError, Request
from .fleet import STOP_GRACE_SECONDS, Fleet
from .metrics import Metrics
from ..durations import format_duration
from .ownership import manifest_digest
from .restart import AgentState, ExitCause, exit_text
from ..membership.driver import Driver

log = logging.getLogger("paxosctl.supervisor")

#: The node's stats (`AgentReport.stats`) that `status` shows per agent, when
#: the agent has them (tests/metrics/test_report_fields.py holds these names).
STATUS_STATS = ("compacted", "log_start", "installed", "catchup_remaining", "client_commands")


class Cluster(Protocol):
    """What the operations act on."""

    fleet: Fleet
    metrics: Metrics
    metrics_url: str | None
    #: The membership change in progress, if any (paxosctl.membership).
    driver: Driver

    def stop(self, reply_to: tuple[ClientConnection, Any]) -> None:
        """Stop the cluster; answer `reply_to` (connection, request id) once stopped."""

    def apply(self, path: str, reply_to: tuple[ClientConnection, Any] | None,
              timeout: float | None) -> Any:
        """Reconcile with the manifest at `path`; answer `reply_to` once in force."""

    def scale(self, group: str, replicas: int, reply_to: tuple[ClientConnection, Any] | None,
              timeout: float | None) -> dict[str, Any]:
        """Resize an agent group; answer `reply_to` once in force."""

    def replace(self, name: str, force: bool, reply_to: tuple[ClientConnection, Any] | None,
                timeout: float | None) -> dict[str, Any]:
        """Replace an agent by a new member; answer `reply_to` once in force."""


class BadRequest(OpError):
    """A control request names a field wrongly; the message says which and how."""

    def __init__(self, message: str) -> None:
        super().__init__(Fault.BAD_REQUEST, message)


Reply = dict[str, Any]
Operation = Callable[[Cluster, ClientConnection, Request], Reply | None]


def dispatch(cluster: Cluster, connection: ClientConnection, request: Request) -> None:
    """Run `request`'s operation (`OPS`); answer now, or later when it returns None."""
    op = request.op
    operation = OPS.get(op)
    if operation is None:
        connection.fail(request.id, Fault.UNKNOWN_OP,
                        f"unknown op {op!r}; known: {', '.join(OPS)}")
        return
    try:
        reply = operation(cluster, connection, request)
    except OpError as e:
        message = f"bad {op} request: {e.message}" if e.fault is Fault.BAD_REQUEST else e.message
        connection.fail(request.id, e.fault, message, **e.extra)
        return
    except Exception:  # a bug: answer, log, and keep the cluster running
        log.exception("%s request failed", op)
        connection.fail(request.id, Fault.INTERNAL,
                        f"the supervisor failed to handle {op!r}; see its log")
        return
    if reply is not None:
        reply["id"] = request.id
        connection.reply(reply)


def ping(cluster: Cluster, connection: ClientConnection, request: Request) -> Reply:
    return {"ok": True, "cluster": cluster.fleet.manifest.name, "pid": os.getpid(),
            "version": __version__}


def status(cluster: Cluster, connection: ClientConnection, request: Request) -> Reply:
    return {"ok": True, **describe(cluster, wide=bool(request.get("wide")))}


def kill(cluster: Cluster, connection: ClientConnection, request: Request) -> Reply:
    """Signal an agent; an operator's KILL or TERM restarts it, never counted as a failure."""
    agent = _agent(cluster.fleet, request)
    given = request.get("signal", "KILL")
    name = given.upper().removeprefix("SIG") if isinstance(given, str) else ""
    signum = getattr(signal, f"SIG{name}", None) if name.isalnum() else None
    if not isinstance(signum, signal.Signals):
        raise BadRequest(f'"signal": unknown signal {_show(given)}; e.g. KILL, TERM, STOP, CONT')
    pid = agent.pid
    ending = signum in (signal.SIGKILL, signal.SIGTERM)
    if not agent.signal(signum, ExitCause.OPERATOR_KILL if ending else None):
        raise OpError(Fault.NOT_RUNNING, f"{agent.name} is not running ({agent.state.value})")
    return {"ok": True, "agent": agent.name, "pid": pid, "signal": signum.name}


def restart(cluster: Cluster, connection: ClientConnection, request: Request) -> Reply:
    agent = _agent(cluster.fleet, request)
    cluster.fleet.restart(agent, monotonic())
    return {"ok": True, "agent": agent.name}


def stop(cluster: Cluster, connection: ClientConnection, request: Request) -> Reply:
    """Stop one agent and keep it stopped until `start` (whatever the policy)."""
    agent = _agent(cluster.fleet, request)
    changed = cluster.fleet.stop_agent(agent, monotonic(), STOP_GRACE_SECONDS)
    return {"ok": True, "agent": agent.name, "changed": changed}


def start(cluster: Cluster, connection: ClientConnection, request: Request) -> Reply:
    """Start one agent that is stopped or fatal; a running one is left alone."""
    agent = _agent(cluster.fleet, request)
    changed = cluster.fleet.start_agent(agent, monotonic())
    return {"ok": True, "agent": agent.name, "changed": changed,
            "state": cluster.fleet.shown_state(agent, monotonic())}


def events(cluster: Cluster, connection: ClientConnection, request: Request) -> Reply:
    """The lifecycle events numbered above `after` (0: all kept), oldest
    first; `agent` keeps one agent's. `last` is the newest number, to ask
    from next time."""
    after = request.get("after", 0)
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise BadRequest(f'"after": {_show(after)} is not an event number (an integer >= 0)')
    name = request.get("agent")
    if name is not None:
        _agent(cluster.fleet, request)
    log = cluster.fleet.events
    return {"ok": True, "last": log.last_seq,
            "events": [e.to_json() for e in log.after(after, name)]}


def describe_agent(cluster: Cluster, connection: ClientConnection, request: Request) -> Reply:
    """Everything the supervisor knows of one agent (`paxosctl describe`)."""
    fleet = cluster.fleet
    agent = _agent(fleet, request)
    now = monotonic()
    row = _agent_row(fleet, agent, now, wide=True)
    life = agent.lifecycle
    report = agent.report
    state_file = fleet.state_file(agent.name)
    row.update({
        "incarnation": agent.incarnation,
        "member_id": fleet.members.member(agent.name).member_id,
        "consecutive_failures": life.consecutive_failures,
        "restarts_by_reason": dict(agent.restarts_by_reason),
        "health_failures": agent.health_failures,
        "leader": bool(report is not None and report.leader),
        "ballot": list(report.ballot) if report is not None and report.ballot else None,
        # Its own view of the acceptor configurations (None at an acceptor).
        "configuration": report.config.to_json() if report is not None and report.config else None,
        "files": {
            "state": str(state_file),
            "state_bytes": _size(state_file),
            "log": str(fleet.log_file(agent.name)),
            "endpoint": str(fleet.endpoint_file(agent.name)),
        },
        "events": [e.to_json() for e in fleet.events.latest(agent.name, 20)],
    })
    return {"ok": True, "agent": row}


def chaos(cluster: Cluster, connection: ClientConnection, request: Request) -> Reply:
    fleet = cluster.fleet
    changes = {k: request.get(k) for k in ("drop", "duplicate", "delay", "partition", "drop_kinds",
                                             "drop_to", "heal")
               if k in request}
    if changes:
        try:
            fleet.set_chaos(changes)
        except ValueError as e:
            raise BadRequest(str(e)) from None
    return {"ok": True, "chaos": fleet.chaos.describe()}


def metrics(cluster: Cluster, connection: ClientConnection, request: Request) -> Reply:
    return {"ok": True, "text": cluster.metrics.text(), "url": cluster.metrics_url}


def down(cluster: Cluster, connection: ClientConnection, request: Request) -> None:
    cluster.stop((connection, request.id))  # answered once every agent has stopped
    return None


def apply(cluster: Cluster, connection: ClientConnection, request: Request) -> Reply | None:
    """Reconcile the cluster with the manifest file "file" (an absolute path).

    Answers once every change is in force, or with a `timeout` fault after
    "wait" seconds (default 60; the rollout goes on), or at once with
    {"changes": []} when nothing differs. A refused change is a
    bad_request whose "refused" lists each refusal, one line; nothing
    changed then.
    """
    from ..errors import PaxosctlError

    path = request.get("file")
    if not isinstance(path, str) or not os.path.isabs(path):
        raise BadRequest(f'"file": expected the absolute path of a manifest, got {_show(path)}')
    timeout = request.get("wait", 60)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 3600:
        raise BadRequest(f'"wait": expected seconds from 0 to 3600, got {_show(timeout)}')
    try:
        plan = cluster.apply(path, (connection, request.id), float(timeout))
    except PaxosctlError as e:  # the file is invalid (the CLI checked it; it may have changed)
        raise BadRequest(e.message) from None
    if not plan.changes:
        return {"ok": True, "changes": [], "restarted": []}
    return None  # answered once in force


def scale(cluster: Cluster, connection: ClientConnection, request: Request) -> Reply | None:
    """Resize agent group "group" to "replicas" (paxosctl.membership).

    With "wait" (seconds, default 60) it answers once the change is in
    force, or with a `timeout` fault (the change goes on); with "wait":
    0 at once, with what the change does. Refusals are bad_request or
    unavailable, one line, nothing changed.
    """
    group = request.get("group")
    if not isinstance(group, str) or not group:
        raise BadRequest(f'"group": expected an agent group name, got {_show(group)}')
    replicas = request.get("replicas")
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise BadRequest(f'"replicas": expected an integer from 0 to 64, got {_show(replicas)}')
    timeout = _wait(request)
    reply_to = (connection, request.id) if timeout else None
    body = cluster.scale(group, replicas, reply_to, timeout)
    if reply_to is None or body.get("unchanged"):
        return {"ok": True, **body}
    return None  # answered once in force


def replace(cluster: Cluster, connection: ClientConnection, request: Request) -> Reply | None:
    """Replace agent "agent" by a new member under its group's next name
    ("force": even if it runs). Answers as `scale` does."""
    name = request.get("agent")
    if not isinstance(name, str) or not name:
        raise BadRequest(f'"agent": expected an agent name, got {_show(name)}')
    timeout = _wait(request)
    reply_to = (connection, request.id) if timeout else None
    body = cluster.replace(name, bool(request.get("force")), reply_to, timeout)
    return {"ok": True, **body} if reply_to is None else None


def _wait(request: Request) -> float:
    timeout = request.get("wait", 60)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 <= timeout <= 3600:
        raise BadRequest(f'"wait": expected seconds from 0 to 3600, got {_show(timeout)}')
    return float(timeout)


#: Every control operation: its name on the wire, and its function.
OPS: Mapping[str, Operation] = {
    "ping": ping,
    "status": status,
    "kill": kill,
    "restart": restart,
    "stop": stop,
    "start": start,
    "events": events,
    "describe": describe_agent,
    "metrics": metrics,
    "chaos": chaos,
    "down": down,
    "apply": apply,
    "scale": scale,
    "replace": replace,
}


def describe(cluster: Cluster, wide: bool = False) -> dict[str, Any]:
    """The cluster as `paxosctl status -o json` shows it."""
    fleet = cluster.fleet
    now = monotonic()
    leader = fleet.leader()
    learned = [a.report.decided_up_to for a in fleet.running()
               if a.report is not None and a.report.decided_up_to is not None]
    decided = max(learned, default=-1)
    return {
        "cluster": fleet.manifest.name,
        "metrics_url": cluster.metrics_url,
        "leader": leader.name if leader else None,
        "ballot": list(leader.report.ballot) if leader else None,
        "decided_up_to": decided if decided >= 0 else None,
        "chaos": fleet.chaos.describe(),
        # What the supervisor runs (see reconcile.drifted): `apply` changes it.
        "manifest": {"path": str(fleet.manifest.path), "digest": manifest_digest(fleet.manifest)},
        "agents": [_agent_row(fleet, agent, now, wide) for agent in _in_manifest_order(fleet)],
        "configuration": configuration(cluster),
    }


def _in_manifest_order(fleet: Fleet) -> list[AgentProcess]:
    """The agents group by group as the manifest lists the groups, then by
    index: agents added by `scale` or `replace` stand with their group."""
    groups: dict[str, int] = {}
    for spec in fleet.manifest.agents:
        groups.setdefault(spec.group, len(groups))
    return sorted(fleet.agents.values(),
                  key=lambda a: (groups.get(a.spec.group, len(groups)), a.spec.index))


def configuration(cluster: Cluster) -> dict[str, Any] | None:
    """The acceptor configurations as the agents reported them, and the
    membership change in progress (paxosctl.membership); None before any
    proposer or learner has reported."""
    config = cluster.fleet.roster.config
    change = cluster.driver.describe()
    if config is None:
        return None if change is None else {"change": change}
    return {**config.to_status(), "change": change}


def _agent_row(fleet: Fleet, agent: AgentProcess, now: float, wide: bool) -> dict[str, Any]:
    uptime = agent.uptime(now)
    row: dict[str, Any] = {
        "name": agent.name,
        "role": agent.spec.role,
        "state": fleet.shown_state(agent, now),
        "should_run": fleet.should_run(agent),
        "pid": agent.pid,
        "restarts": agent.lifecycle.restarts,
        "uptime_s": round(uptime, 3) if uptime is not None else None,
    }
    report = agent.report
    if report is not None:
        if report.decided_up_to is not None:
            row["decided_up_to"] = report.decided_up_to
        for key in STATUS_STATS:
            if key in report.stats:
                row[key] = report.stats[key]
        row["state_bytes"] = report.state_bytes
    if agent.state is AgentState.BACKOFF:
        row["backoff_s"] = round(agent.lifecycle.backoff_remaining(now), 3)
    if agent.last_error:
        row["error"] = agent.last_error
    last = agent.lifecycle.last_exit
    if last is not None:
        code = last.code
        row["last_exit"] = {
            "reason": last.reason, "cause": last.cause.value,
            # As subprocess has it: negative is the signal that ended it.
            "code": code,
            "signal": _signal_name(-code) if code is not None and code < 0 else None,
            "ago_s": round(now - last.at, 3),
        }
    row["note"] = _note(fleet, agent, now)
    if wide:
        row.update(process_usage(agent.pid))
        row["last_heartbeat_s"] = (round(now - agent.last_beat, 3)
                                   if agent.process is not None and report is not None else None)
    return row


def _note(fleet: Fleet, agent: AgentProcess, now: float) -> str:
    """status's NOTE column: why the agent is not simply running, or how its
    last run ended ("" when there is nothing to say)."""
    if agent.held:
        return "stopped by the operator"
    if fleet.shown_state(agent, now) == "unresponsive":
        return (f"no heartbeat for {now - agent.last_beat:.1f}s (killed at "
                f"{fleet.manifest.health.heartbeat_timeout:g}s)")
    if agent.last_error:
        return agent.last_error
    last = agent.lifecycle.last_exit
    if last is None:
        return ""
    return f"last: {exit_text(last.code, last.cause)} {format_duration(round(now - last.at))} ago"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _size(path: Any) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def _agent(fleet: Fleet, request: Request) -> AgentProcess:
    name = request.get("agent")
    agent = fleet.agents.get(name) if isinstance(name, str) else None
    if agent is None:
        raise BadRequest(f'"agent": no agent {_show(name)}; agents: {", ".join(fleet.agents)}')
    return agent


def _show(value: Any, limit: int = 40) -> str:
    """A short, one-line rendering of a client's value for an error message."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= limit else text[:limit] + "..."
