"""An agent's front desk for its client connections (see `clientwire`).

It keeps the connections and routes each frame to the desk of the role
that serves it: `ProposalDesk` (proposals.py) at a proposer, `LearnerDesk`
(watches.py) at a learner; a replica has both. A frame no role here
serves, or one that is malformed or over a limit, is refused with one
line (a REPLY with an error and a code), counted, and never ends the loop.

Admin frames (clientwire.ADMIN: membership, reconfiguration, chaos) steer
the agent itself, as the supervisor's pipe does (control.py), and are
taken only from the operator: over TLS, from a connection whose
certificate is of kind "operator" (the transport verified it at the
handshake: `Connection.identity`); over Unix sockets, from any connection,
since the socket's folder (run/) is 0700 and the socket 0600, so whoever
connects is the cluster's owner. A client certificate's admin frame is
refused with one line (code "forbidden") and counted
(`client_admin_refused` in the heartbeat's stats).

INFO frames (queries.py: describe, events, logs) are read-only and
taken from a client certificate as well as the operator's.

Nothing here blocks: answers are queued on the connection and written
with everything else once per loop turn.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import TYPE_CHECKING, Callable, Iterable

from ..core.node import Node
from ..core.ready import AppliedSlot
from ..core.commands import Value
from . import clientwire as wire
from .proposals import ProposalDesk
from .ratelog import clip
from .records import event
from . import queries
from .storage import Storage
from .transport import Connection, Transport
from .watches import LearnerDesk

if TYPE_CHECKING:
    from .control import Steering
    from .queries import Asked

log = logging.getLogger("paxos_agents.agent")


class Clients:
    """The client connections of one agent, and the desks that serve them."""

    def __init__(self, node: Node, storage: Storage, transport: Transport,
                 max_value_bytes: int = 1 << 20, steering: "Steering | None" = None,
                 asked: "Asked | None" = None) -> None:
        self._node = node
        self._transport = transport
        #: Who admin frames steer (the agent); None: admin frames are refused.
        self._steering = steering
        #: Who INFO frames ask (the agent); None: INFO frames are refused.
        self._asked = asked
        self._connections: set[Connection] = set()
        self.counts: Counter[str] = Counter()
        self.proposals = (ProposalDesk(node, transport, max_value_bytes, self.counts)
                          if node.proposer is not None else None)
        self.learning = (LearnerDesk(node, storage, transport, self.counts, self._error)
                         if node.learner is not None else None)

    def stats(self) -> dict[str, int]:
        learning = self.learning
        return {"client_connections": len(self._connections),
                "client_commands": self.counts["commands"],
                "client_watches": len(learning.watches) if learning else 0,
                "client_subscribers": len(learning.subscribers) if learning else 0,
                "client_answers": self.counts["answers"],
                "client_refused": self.counts["refused_frames"],
                "client_admin_refused": self.counts["admin_refused"]}

    # -------------------------------------------------------------- frames

    def on_frame(self, conn: Connection, frame: bytes | None) -> None:
        """A new client (None), one of its frames, or its end (b"")."""
        if frame is None:
            self._connections.add(conn)
            return
        if not frame:
            self._connections.discard(conn)
            if self.learning is not None:
                self.learning.forget(conn)
            return
        kind = frame[:1]
        proposals, learning = self.proposals, self.learning
        try:
            if kind == wire.PROPOSE and proposals is not None:
                proposals.on_propose(conn, frame[1:])
            elif kind == wire.ADMIN:
                self._admin(conn, frame[1:])
            elif kind == wire.INFO:
                self._info(conn, frame[1:])
            elif learning is None or kind not in _LEARNER_FRAMES:
                self._error(conn, f"{self._node.node_id} cannot serve a {kind!r} frame")
            elif kind == wire.SUBSCRIBE:
                learning.subscribe(conn)
            elif kind == wire.WATCH:
                learning.watch(conn, wire.decode_ids(frame[1:], wire.MAX_IDS_PER_FRAME))
            elif kind == wire.LOOKUP:
                learning.lookup(conn, wire.decode_ids(frame[1:], wire.MAX_IDS_PER_FRAME))
            elif kind == wire.PAGE:
                learning.page(conn, *wire.decode_page_query(frame[1:]))
            else:  # QUERY
                learning.query(conn, json.loads(frame[1:]))
        except wire.OverLimit as e:  # refused, not served: counted (client_refused)
            self.counts["refused_frames"] += 1
            self._error(conn, f"refused a {kind!r} frame: {e}", code="over_limit")
        except (ValueError, RecursionError, OverflowError) as e:  # WireError, JSON (too deep too)
            self._error(conn, f"malformed {kind!r} frame: {type(e).__name__}: {e}"[:300])

    # -------------------------------------------------------- admin frames

    def _admin(self, conn: Connection, body: bytes) -> None:
        """An ADMIN frame: checked against who sent it, then handed to the agent."""
        ident = conn.identity
        if ident is not None:
            allowed = ident.kind == "operator"
            shown = ident.uri
        else:  # no certificate: a Unix socket in the owner's 0700 folder
            allowed = not self._transport.net.secure
            shown = "no certificate"
        if not allowed or self._steering is None:
            self.counts["admin_refused"] += 1
            self._transport.rlog.log(logging.WARNING, "admin-refused", "refused an admin frame "
                                     "from %s: not the operator", shown, extra=event("admin_refused"))
            self._error(conn, f"admin frames need the operator certificate; this connection has "
                              f"{shown}", code="forbidden")
            return
        request = json.loads(body)  # ValueError: answered as malformed by on_frame
        op = request.get("op") if isinstance(request, dict) else None
        handler = _ADMIN_OPS.get(op) if isinstance(op, str) else None
        if handler is None:
            raise ValueError(f"unknown admin op {op!r:.40}; allowed: {', '.join(_ADMIN_OPS)}")
        why = handler(self._steering, request)
        if why is not None:
            log.warning("admin frame %s from %s refused: %s", op, shown, clip(why, 300),
                        extra=event("admin_refused"))
            self._error(conn, why, code="refused")
            return
        log.info("admin frame %s from %s: done", op, shown, extra=event("admin_taken"))
        self._transport.reply(conn, wire.REPLY + json.dumps({"id": None, "ok": True, "op": op}).encode())

    def _info(self, conn: Connection, body: bytes) -> None:
        """An INFO frame: a read-only question (queries.py), from a client or the operator."""
        ident = conn.identity
        allowed = ident.kind in queries.ASKERS if ident is not None \
            else not self._transport.net.secure  # no certificate: the owner's Unix socket
        if not allowed or self._asked is None:
            self._error(conn, f"info frames need a client or operator certificate; this "
                              f"connection has {ident.uri if ident else 'none'}", code="forbidden")
            return
        body_out = queries.answer(self._asked, json.loads(body))  # ValueError: malformed
        self._transport.reply(conn, wire.REPLY + json.dumps(body_out).encode())

    def _error(self, conn: Connection, message: str, query_id: object = None,
               code: str = "bad_request") -> None:
        self.counts["errors"] += 1
        self._transport.rlog.warning("client-error", "client: %s", message[:300])
        self._transport.reply(conn, wire.REPLY + json.dumps(
            {"id": query_id, "error": message, "code": code}).encode())

    # ------------------------------------------------- what the agent tells

    def leader_changed(self, leader: str | None) -> None:
        """Tell every client of this proposer who leads now."""
        if self.proposals is not None:
            self.proposals.leader_changed(leader, self._connections)

    def applied(self, slots: list[AppliedSlot],
                pending: Iterable[tuple[int, Value]] = (), upto: int | None = None) -> None:
        """The learner applied (or installed) slots: see `LearnerDesk.applied`."""
        if self.learning is not None:
            self.learning.applied(slots, pending, upto)


#: The frames a learner's desk serves.
_LEARNER_FRAMES = frozenset((wire.SUBSCRIBE, wire.WATCH, wire.LOOKUP, wire.PAGE, wire.QUERY))


def _members(steering: "Steering", request: dict) -> str | None:
    """A versioned membership record; one without a version is refused (only
    the supervisor's pipe may send unversioned ones)."""
    version = request.get("version")
    if type(version) is not int or version < 1:
        return f"a members frame needs a version (an integer from 1), got {version!r:.40}"
    return steering.set_membership(request)


def _reconfig(steering: "Steering", request: dict) -> str | None:
    return steering.reconfigure(request)


def _chaos(steering: "Steering", request: dict) -> str | None:
    from .chaos import ChaosSettings

    settings = request.get("settings")
    if not isinstance(settings, dict):
        raise ValueError(f"chaos: settings must be an object, got {settings!r:.60}")
    try:
        chosen = ChaosSettings.from_json(settings)
    except TypeError as e:  # a value of the wrong type: malformed, as a ValueError is
        raise ValueError(f"chaos: {e}") from None
    steering.set_chaos(chosen)
    return None


#: Admin frames' operations and their handlers (each returns None or why it refused).
_ADMIN_OPS: dict[str, Callable[["Steering", dict], "str | None"]] = {
    "members": _members, "reconfig": _reconfig, "chaos": _chaos}
