"""A proposer's desk for its clients: PROPOSE frames in, refusals and LEADER out.

Each command of a PROPOSE frame goes to the node, which proposes it as
leader or forwards it to the leader. Refused here, never proposed: a
value over `max_value_bytes` (TOO_LARGE), and a request id this proposer
holds in flight with another payload (CONFLICT). A client whose command
was forwarded, or held until a leader shows, hears who leads (LEADER), so
it sends there next. See `clientwire` for the frames.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from ..core.commands import Command
from ..core.node import Node
from . import clientwire as wire
from .transport import Connection, Transport

#: Commands remembered as taken (see `ProposalDesk._taken`) before the decided ones are pruned.
TAKEN_PRUNE_AT = 65_536
_NO_DIGEST = b"\0" * 8


class ProposalDesk:
    """The commands a proposer's clients send it."""

    def __init__(self, node: Node, transport: Transport, max_value_bytes: int,
                 counts: Counter[str]) -> None:
        """`counts`: the agent's client counters, shared with the other desk."""
        self._node = node
        self._transport = transport
        self._max_value_bytes = max_value_bytes
        self.counts = counts
        #: request id -> payload, for the commands this proposer took and has
        #: not seen decided: the same id with another payload is refused.
        self._taken: dict[str, bytes] = {}

    def on_propose(self, conn: Connection, body: bytes) -> None:
        """A PROPOSE frame's body (`WireError` if malformed)."""
        self._propose(conn, wire.decode_commands(body))

    def _propose(self, conn: Connection, commands: tuple[Command, ...]) -> None:
        node = self._node
        limit = self._max_value_bytes
        taken = self._taken
        if len(taken) > TAKEN_PRUNE_AT:
            self._prune_taken()
        refused = []
        accepted = []
        for command in commands:
            rid, payload = command.request_id, command.payload
            if len(payload) > limit:
                refused.append(wire.Outcome(rid, wire.TOO_LARGE, limit, 0, _NO_DIGEST))
                continue
            first = taken.setdefault(rid, payload)
            if first != payload:
                if node.proposer.is_outstanding(rid):
                    refused.append(wire.Outcome(rid, wire.CONFLICT, -1, 0, wire.digest(first)))
                    continue
                taken[rid] = payload
            accepted.append(command)
        node.propose_batch(tuple(accepted) if refused else commands)
        self.counts["commands"] += len(commands) - len(refused)
        if refused:
            self.counts["refused"] += len(refused)
            self._transport.reply(conn, wire.OUTCOMES + wire.encode_outcomes(refused))
        if not node.is_leader:
            # It was forwarded (or held until a leader shows): say where to send next.
            leader = node.proposer.leader if node.proposer else None
            self._transport.reply(conn, wire.LEADER + (leader or "").encode())

    def _prune_taken(self) -> None:
        """Forget the commands no longer outstanding here (decided, or gone)."""
        outstanding = self._node.proposer.is_outstanding
        self._taken = {rid: p for rid, p in self._taken.items() if outstanding(rid)}

    def leader_changed(self, leader: str | None, clients: Iterable[Connection]) -> None:
        """Tell every client of this proposer who leads now."""
        frame = wire.LEADER + (leader or "").encode()
        for conn in clients:
            self._transport.reply(conn, frame)
