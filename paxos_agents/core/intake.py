"""A proposer's intake: client commands queued to propose, or forwarded to the leader.

Every command that reaches a proposer goes through `route`: with a live
leader elsewhere it is forwarded there (`ClientRequest`, built in one
place: `_forward`), else queued in `pending` for this proposer to propose
when it leads. `outstanding` holds the request id of every command queued
or in flight here and not yet seen decided, so a command a client sends
twice (or a leader hears from two proposers) is queued once. It is kept
per batch: the common batch of fresh ids is checked and added in a few
set operations, not command by command.

Commands of slots this proposer proposed that did not get decided with
its value go back to the front of the queue through `requeue` (learners
apply a request id once, so proposing one again is always safe).
"""

from __future__ import annotations

from collections import deque
from typing import Iterable, Sequence

from .commands import Command, Value
from .configs import is_config_request
from .messages import ClientRequest
from .outbox import Outbox
from .stats import ProposerStats

#: A batch's encoding (commands.py, "Batch layout"): a u32 count, then per
#: command a u16 id length, a u32 payload length and an i64 stamp.
_BATCH_HEAD = 4
_PER_COMMAND = 2 + 4 + 8


class Intake:
    """The commands waiting to be proposed here, and the ids not yet decided."""

    __slots__ = ("node_id", "_out", "_stats", "pending", "outstanding")

    def __init__(self, node_id: str, out: Outbox, stats: ProposerStats) -> None:
        self.node_id = node_id
        self._out = out
        self._stats = stats
        #: Commands to propose, in order, once we lead.
        self.pending: deque[Command] = deque()
        #: Request ids queued or in flight here, not seen decided.
        self.outstanding: set[str] = set()

    def receive(self, m: ClientRequest, leader: str | None, proposers: tuple[str, ...]) -> None:
        """A command from a client, or forwarded by one of `proposers`: dropped
        if outstanding here; refused (counted) if its request id is reserved for
        config commands and a client sent it (only `propose_config` makes one);
        held if a proposer forwarded it already (rather than bounced around);
        else routed to `leader` (None: queued here)."""
        command = m.command
        if command.request_id in self.outstanding:
            return
        forwarded_once = m.src in proposers
        if is_config_request(command.request_id) and not forwarded_once:
            self._stats.config_refused += 1
            return
        self.route((command,), None if forwarded_once else leader)

    def from_client(self, commands: tuple[Command, ...], leader: str | None) -> None:
        """Commands straight from a client, routed as `receive` routes each one;
        one call per batch a client sent."""
        if any(is_config_request(c.request_id) for c in commands):
            kept = tuple(c for c in commands if not is_config_request(c.request_id))
            self._stats.config_refused += len(commands) - len(kept)
            commands = kept
        self.route(commands, leader)

    def route(self, commands: Sequence[Command], leader: str | None, *,
              front: bool = False) -> None:
        """Forward `commands` to `leader` (those not outstanding here), or, if
        `leader` is None, queue them (at the front if `front`) to propose here."""
        if leader is None:
            self.queue(commands, front=front)
            return
        outstanding = self.outstanding
        self._forward([c for c in commands if c.request_id not in outstanding], leader)

    def forward_pending(self, leader: str) -> None:
        """A leader is known: hand it every command queued here."""
        pending = self.pending
        while pending:
            command = pending.popleft()
            self.outstanding.discard(command.request_id)
            self._forward((command,), leader)

    def _forward(self, commands: Iterable[Command], leader: str) -> None:
        for command in commands:
            self._stats.forwarded += 1
            self._out.send.append(ClientRequest(src=self.node_id, dst=leader, command=command))

    def queue(self, commands: Iterable[Command], *, front: bool = False) -> None:
        """Queue those of `commands` not outstanding here (each once)."""
        commands = list(commands)
        rids = [c.request_id for c in commands]
        outstanding = self.outstanding
        if outstanding.isdisjoint(rids) and len(set(rids)) == len(rids):
            fresh = commands  # the usual case, in a few C-level passes
            outstanding.update(rids)
        else:
            fresh = []
            for command in commands:
                if command.request_id not in outstanding:
                    outstanding.add(command.request_id)
                    fresh.append(command)
        if front:
            self.pending.extendleft(reversed(fresh))
        else:
            self.pending.extend(fresh)

    def requeue(self, values: Iterable[Value], *, only_outstanding: bool = True) -> None:
        """Put the commands of `values` (slots we proposed that were not decided
        with them) back at the front of the queue, each value's commands in
        order before those already queued, the last value's first. Only those
        still outstanding, unless `only_outstanding` is False (slots in flight
        when we stop leading: all their commands, as proposed)."""
        outstanding = self.outstanding
        for value in values:
            commands: Sequence[Command] = value.commands
            if only_outstanding:
                commands = [c for c in commands if c.request_id in outstanding]
            self.pending.extendleft(reversed(commands))

    def decided(self, value: Value) -> None:
        """`value` was decided somewhere: its commands are no longer outstanding."""
        self.outstanding.difference_update(value.request_ids())

    def next_batch(self, batch: int, slot_bytes: int) -> list[Command]:
        """The commands of a new slot, taken from the front of `pending`: up
        to `batch` of them, while the slot's encoded value stays within
        `slot_bytes` (`Value`'s layout: a 4-byte count, then per command 14
        bytes, its request id's UTF-8 and its payload). The first is always
        taken, so a command larger than the budget goes alone in its slot:
        every slot fits in one frame (see `Settings.slot_bytes`)."""
        pending = self.pending
        budget = slot_bytes - _BATCH_HEAD
        count = min(batch, len(pending))
        taken: list[Command] = []
        for _ in range(count):
            command = pending[0]
            size = _PER_COMMAND + len(command.payload) + len(command.request_id.encode())
            if taken and size > budget:
                break
            budget -= size
            taken.append(pending.popleft())
        return taken
