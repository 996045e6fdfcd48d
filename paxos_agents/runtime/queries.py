"""Read-only questions any client of the cluster may ask an agent: the INFO frame.

`paxosctl describe`, `events` and `logs` against agents that no supervisor
runs (`paxosctl agent NAME` on hosts of their own) ask the agents
themselves, on their data endpoint:

    INFO + JSON {"op": "describe"}
    INFO + JSON {"op": "events", "since": seq}     (seq: 0 for all kept)
    INFO + JSON {"op": "logs", "since": seq}
    INFO + JSON {"op": "protocol", "since": seq}

answered with REPLY + JSON {"ok": true, "op", ...}: for `describe`,
{"agent": the agent's own view (`Agent.own_view`)}; for `events` and
`logs`, {"incarnation", "items": [...], "last": seq, "missed": bool}
(records.py: bounded rings, paged by sequence number); `protocol` answers
the same and {"first": the oldest seq kept}, its items the agent's
protocol records (protocolrecords.py: the record format; no items when the
agent keeps none). A bad request is
answered with {"error": one line, "code": "bad_request"}.

Who may ask: over TLS, a connection with a client or an operator
certificate of this cluster (the transport checked the cluster at the
handshake; clients.py checks the kind); over Unix sockets, whoever can
open the socket (the owner: the folder is 0700). The answers hold no
values (never a command's bytes) and nothing here is on the per-command
path: a question costs one copy of a bounded ring.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from .protocolrecords import ProtocolRecords
from .records import PAGE, Records


class Asked(Protocol):
    """What a question reads (agent.Agent implements it)."""

    records: Records
    protocol: ProtocolRecords
    incarnation: int

    def own_view(self) -> dict[str, Any]: ...


#: Certificate kinds whose connections may ask (over TLS).
ASKERS = frozenset(("client", "operator"))


def answer(asked: Asked, request: object) -> dict[str, Any]:
    """The REPLY body for one INFO `request`; ValueError (one line) for a bad one."""
    op = request.get("op") if isinstance(request, dict) else None
    handler = OPS.get(op) if isinstance(op, str) else None
    if handler is None:
        raise ValueError(f"unknown info op {op!r:.40}; allowed: {', '.join(OPS)}")
    assert isinstance(request, dict)
    return {"id": None, "ok": True, "op": op, **handler(asked, request)}


def _since(request: dict) -> int:
    since = request.get("since", 0)
    if type(since) is not int or since < 0:
        raise ValueError(f"since: expected a record number from 0, got {since!r:.40}")
    return since


def _describe(asked: Asked, request: dict) -> dict[str, Any]:
    return {"agent": asked.own_view()}


def _events(asked: Asked, request: dict) -> dict[str, Any]:
    page = asked.records.events.since(_since(request), PAGE)
    return {"incarnation": asked.incarnation, "items": page.items, "last": page.last,
            "missed": page.missed}


def _logs(asked: Asked, request: dict) -> dict[str, Any]:
    page = asked.records.logs.since(_since(request), PAGE)
    return {"incarnation": asked.incarnation, "items": page.items, "last": page.last,
            "missed": page.missed}


def _protocol(asked: Asked, request: dict) -> dict[str, Any]:
    page = asked.protocol.since(_since(request), PAGE)
    return {"incarnation": asked.incarnation, "items": page.items, "last": page.last,
            "missed": page.missed, "first": page.first}


#: The INFO operations and their handlers.
OPS: dict[str, Callable[[Asked, dict], dict[str, Any]]] = {
    "describe": _describe, "events": _events, "logs": _logs, "protocol": _protocol}
