"""An agent's front desk for its client connections (see `clientwire`).

It keeps the connections and routes each frame to the desk of the role
that serves it: `ProposalDesk` (proposals.py) at a proposer, `LearnerDesk`
(watches.py) at a learner; a replica has both. A frame no role here
serves, or one that is malformed or over a limit, is refused with one
line (a REPLY with an error and a code), counted, and never ends the loop.

Nothing here blocks: answers are queued on the connection and written
with everything else once per loop turn.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Iterable

from ..core.node import Node
from ..core.ready import AppliedSlot
from ..core.commands import Value
from . import clientwire as wire
from .proposals import ProposalDesk
from .storage import Storage
from .transport import Connection, Transport
from .watches import LearnerDesk


class Clients:
    """The client connections of one agent, and the desks that serve them."""

    def __init__(self, node: Node, storage: Storage, transport: Transport,
                 max_value_bytes: int = 1 << 20) -> None:
        self._node = node
        self._transport = transport
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
                "client_refused": self.counts["refused_frames"]}

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
