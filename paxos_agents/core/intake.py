"""A proposer's intake: client commands queued to propose, or forwarded to the leader.

Every command that reaches a proposer goes through `route`: with a live
leader elsewhere it is forwarded there (`ClientRequest`, built in one
place: `_forward`), else queued in `pending` for this proposer to propose
when it leads. `outstanding` maps the request id of every command queued
or in flight here and not yet seen decided to that command, so a command a
client sends twice (or a leader hears from two proposers) is queued once,
and the same request id with another payload is a `Conflict`: `route`
returns it; for a client's batch (`from_client`) the runtime turns it into
the client's CONFLICT answer, while a single command (`receive`: a peer
proposer's forward, `Node.propose`) that repeats an id is dropped: no
caller there waits for an answer. This is the proposer's one request-id table: it holds a reference
to each command, never a copy, and nothing is hashed or compared per
command: the common batch of fresh ids is checked and added in a few
C-level dict operations; payloads are compared (and the runtime digests
the first) only for an id that repeats. It forgets an id once decided, or
forwarded to the leader, so it is bounded by what is queued or in flight.
A follower that forwards a command does not hold its id.

Commands of slots this proposer proposed that did not get decided with
its value go back to the front of the queue through `requeue` (learners
apply a request id once, so proposing one again is always safe).

When the queued commands arrived is kept per run of commands queued at
one time (`arrivals`, beside `pending`), never per command: commands
queued in one loop turn share the runtime's clock reading and one run, and
`next_batch` says when the oldest command of a slot arrived
(committime.py says what is timed from where).
"""

from __future__ import annotations

from collections import deque
from typing import Iterable, NamedTuple, Sequence

from .commands import Command, Value
from .committime import CommitTimes
from .configs import is_config_request
from .messages import ClientRequest
from .outbox import Outbox
from .stats import ProposerStats

#: A batch's encoding (commands.py, "Batch layout"): a u32 count, then per
#: command a u16 id length, a u32 payload length and an i64 stamp.
_BATCH_HEAD = 4
_PER_COMMAND = 2 + 4 + 8


class Conflict(NamedTuple):
    """A client's command refused: its request id is outstanding here with another payload."""

    #: The command refused (never proposed).
    command: Command
    #: The command outstanding here under the same request id (the first one).
    first: Command


class Intake:
    """The commands waiting to be proposed here, and those outstanding here by request id."""

    __slots__ = ("node_id", "_out", "_stats", "_times", "pending", "arrivals", "outstanding")

    def __init__(self, node_id: str, out: Outbox, stats: ProposerStats,
                 times: CommitTimes | None = None) -> None:
        self.node_id = node_id
        self._out = out
        self._stats = stats
        #: The clock reading that stamps arrivals (`times.now`).
        self._times = times if times is not None else CommitTimes()
        #: Commands to propose, in order, once we lead.
        self.pending: deque[Command] = deque()
        #: When the commands of `pending` arrived, front to back: runs of
        #: [how many commands, the clock reading they were queued at],
        #: covering `pending` exactly.
        self.arrivals: deque[list] = deque()
        #: Request id -> the command queued or in flight here under it, not seen decided.
        self.outstanding: dict[str, Command] = {}

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

    def from_client(self, commands: tuple[Command, ...], leader: str | None) -> list[Conflict]:
        """Commands straight from a client, routed as `receive` routes each one;
        one call per batch a client sent. Returns those refused as conflicts
        (see `route`)."""
        if any(is_config_request(c.request_id) for c in commands):
            kept = tuple(c for c in commands if not is_config_request(c.request_id))
            self._stats.config_refused += len(commands) - len(kept)
            commands = kept
        return self.route(commands, leader)

    def route(self, commands: Sequence[Command], leader: str | None, *,
              front: bool = False) -> list[Conflict]:
        """Forward `commands` to `leader` (those not outstanding here), or, if
        `leader` is None, queue them (at the front if `front`) to propose here.

        A command whose request id is outstanding here is dropped if its
        payload is the one outstanding, else returned as a `Conflict` (the
        caller refuses it, or drops it if nobody waits for an answer).
        """
        if leader is None:
            return self.queue(commands, front=front)
        outstanding = self.outstanding
        if not outstanding:
            self._forward(commands, leader)  # a follower's usual case: nothing held here
            return []
        refused: list[Conflict] = []
        forward = []
        for command in commands:
            first = outstanding.get(command.request_id)
            if first is None:
                forward.append(command)
            elif first.payload != command.payload:
                refused.append(Conflict(command, first))
        self._forward(forward, leader)
        return refused

    def forward_pending(self, leader: str) -> None:
        """A leader is known: hand it every command queued here."""
        pending = self.pending
        while pending:
            command = pending.popleft()
            self.outstanding.pop(command.request_id, None)
            self._forward((command,), leader)
        self.arrivals.clear()

    def _forward(self, commands: Iterable[Command], leader: str) -> None:
        for command in commands:
            self._stats.forwarded += 1
            self._out.send.append(ClientRequest(src=self.node_id, dst=leader, command=command))

    def queue(self, commands: Iterable[Command], *, front: bool = False) -> list[Conflict]:
        """Queue those of `commands` not outstanding here (each request id
        once, the first); return the repeats with another payload (see `route`)."""
        commands = list(commands)
        rids = [c.request_id for c in commands]
        outstanding = self.outstanding
        refused: list[Conflict] = []
        if outstanding.keys().isdisjoint(rids) and len(set(rids)) == len(rids):
            fresh = commands  # the usual case, in a few C-level passes
            outstanding.update(zip(rids, commands))
        else:
            fresh = []
            for command in commands:
                first = outstanding.get(command.request_id)
                if first is None:
                    outstanding[command.request_id] = command
                    fresh.append(command)
                elif first.payload != command.payload:
                    refused.append(Conflict(command, first))
        if front:
            self.pending.extendleft(reversed(fresh))
        else:
            self.pending.extend(fresh)
        self._arrived(len(fresh), front)
        return refused

    def _arrived(self, count: int, front: bool) -> None:
        """`count` commands were just queued at the front or back of `pending`:
        a run stamped with the clock's reading (one more command for the run
        at that end if it has the same stamp: one run per loop turn)."""
        if not count:
            return
        now, arrivals = self._times.now, self.arrivals
        if arrivals:
            run = arrivals[0] if front else arrivals[-1]
            if run[1] == now:
                run[0] += count
                return
        if front:
            arrivals.appendleft([count, now])
        else:
            arrivals.append([count, now])

    def requeue(self, values: Iterable[Value], *, only_outstanding: bool = True) -> None:
        """Put the commands of `values` (slots we proposed that were not decided
        with them) back at the front of the queue, each value's commands in
        order before those already queued, the last value's first. Only those
        still outstanding, unless `only_outstanding` is False (slots in flight
        when we stop leading: all their commands, as proposed)."""
        outstanding = self.outstanding
        queued = 0
        for value in values:
            commands: Sequence[Command] = value.commands
            if only_outstanding:
                commands = [c for c in commands if c.request_id in outstanding]
            self.pending.extendleft(reversed(commands))
            queued += len(commands)
        # Timed from now: re-proposed after a leader change (committime.py).
        self._arrived(queued, front=True)

    def decided(self, value: Value) -> None:
        """`value` was decided somewhere: its commands are no longer outstanding."""
        forget = self.outstanding.pop
        for request_id in value.request_ids():
            forget(request_id, None)

    def next_batch(self, batch: int, slot_bytes: int) -> tuple[list[Command], float]:
        """The commands of a new slot, taken from the front of `pending`: up
        to `batch` of them, while the slot's encoded value stays within
        `slot_bytes` (`Value`'s layout: a 4-byte count, then per command 14
        bytes, its request id's UTF-8 and its payload). The first is always
        taken, so a command larger than the budget goes alone in its slot:
        every slot fits in one frame (see `Settings.slot_bytes`).

        Returns the commands (at least one: `pending` must not be empty) and
        when the oldest of them arrived (the earliest stamp of their runs)."""
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
        # Per run, not per command: a slot spans the runs of a few loop turns at most.
        arrivals, left = self.arrivals, len(taken)
        oldest = arrivals[0][1]
        while True:
            run = arrivals[0]
            oldest = min(oldest, run[1])
            if run[0] > left:
                run[0] -= left
                break
            left -= run[0]
            arrivals.popleft()
            if not left:
                break
        return taken, oldest
