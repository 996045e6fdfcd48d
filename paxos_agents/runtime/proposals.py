"""A proposer's desk for its clients: PROPOSE frames in, refusals and LEADER out.

A PROPOSE frame goes to the node as the `Value` it carries (its columns
read once, no object per command), which proposes its commands as leader
or forwards them to the leader. Refused, never proposed: a value
over `max_value_bytes` (TOO_LARGE, checked here), and a request id this
proposer holds queued or in flight with another payload (CONFLICT: the
node's intake keeps the one request-id table and returns the refusals
from `Node.propose_batch`; the desk digests the first payload for the
answer). A client whose command was forwarded, or held until a leader
shows, hears who leads (LEADER), so it sends there next. See `clientwire`
for the frames.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from ..core.commands import Value
from ..core.intake import Conflict
from ..core.node import Node
from . import clientwire as wire
from .transport import Connection, Transport

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

    def on_propose(self, conn: Connection, body: bytes) -> None:
        """A PROPOSE frame's body (`WireError` if malformed)."""
        self._propose(conn, wire.decode_batch(body))

    def _propose(self, conn: Connection, batch: Value) -> None:
        node = self._node
        limit = self._max_value_bytes
        too_large: list[int] = []
        accepted = batch
        sizes = batch.payload_sizes()
        if max(sizes) > limit:
            # Rare: the batch is cut into the commands within the limit.
            too_large = [i for i, size in enumerate(sizes) if size > limit]
            kept = [i for i, size in enumerate(sizes) if size <= limit]
            accepted = Value.join([(batch, i, i + 1) for i in kept])
        conflicts = node.propose_batch(accepted) if accepted else []
        if too_large:
            # Their indexes in `accepted`, back to the batch the client sent.
            conflicts = [c._replace(index=kept[c.index]) for c in conflicts]
        refused = len(too_large) + len(conflicts)
        self.counts["commands"] += len(sizes) - refused
        if refused:
            self.counts["refused"] += refused
            self._transport.reply(conn, wire.OUTCOMES + wire.encode_outcomes(
                self._refusals(batch, too_large, conflicts)))
        if not node.is_leader:
            # It was forwarded (or held until a leader shows): say where to send next.
            leader = node.proposer.leader if node.proposer else None
            self._transport.reply(conn, wire.LEADER + (leader or "").encode())

    def _refusals(self, batch: Value, too_large: list[int],
                  conflicts: list[Conflict]) -> list[wire.Outcome]:
        """The answers to the commands refused (`too_large`: their positions),
        in the order the client sent them. A conflict's answer carries the
        digest of the payload outstanding under its request id."""
        limit = self._max_value_bytes
        rids = batch.request_ids()
        answers = [(i, wire.Outcome(rids[i], wire.TOO_LARGE, limit, 0, _NO_DIGEST))
                   for i in too_large]
        answers += [(c.index, wire.Outcome(c.command.request_id, wire.CONFLICT, -1, 0,
                                           wire.digest(c.first.payload))) for c in conflicts]
        answers.sort(key=lambda answer: answer[0])
        return [outcome for _, outcome in answers]

    def leader_changed(self, leader: str | None, clients: Iterable[Connection]) -> None:
        """Tell every client of this proposer who leads now."""
        frame = wire.LEADER + (leader or "").encode()
        for conn in clients:
            self._transport.reply(conn, frame)
