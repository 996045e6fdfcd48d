"""A proposer's intake: client commands queued to propose, or forwarded to the leader.

Work here is per batch, not per command: a client's PROPOSE frame is a
`Value` (commands.py) kept as the bytes it arrived as, and what waits to be
proposed is `pending`, a queue of runs (value, first index, end) of such
values; `next_batch` builds a slot's value by joining slices of the runs at
its front (`Value.join`: equal to `Value.of` of the same commands, with no
object per command).

Every batch that reaches a proposer goes through `route`: with a live
leader elsewhere it is forwarded there (`ClientRequest`, one per command,
built in one place: `_forward`), else queued in `pending` for this
proposer to propose when it leads. `outstanding` maps the request id of
every command queued or in flight here and not yet seen decided to the
value it arrived in, so a command a client sends twice (or a leader hears
from two proposers) is queued once, and the same request id with another
payload is a `Conflict`: `route` returns it; for a client's batch
(`from_client`) the runtime turns it into the client's CONFLICT answer,
while a single command (`receive`: a peer proposer's forward,
`Node.propose`) that repeats an id is dropped: no caller there waits for
an answer. This is the proposer's one request-id table: it holds a
reference to the value, never a copy, and nothing is hashed or compared
per command in Python: the common batch of fresh ids is checked and added
in a few C-level dict operations; payloads are compared (and the runtime
digests the first) only for an id that repeats. It forgets an id once
decided, or forwarded to the leader, so it is bounded by what is queued
or in flight. A follower that forwards a command does not hold its id.

Commands of slots this proposer proposed that did not get decided with
its value go back to the front of the queue through `requeue`, as runs of
those slots' values (learners apply a request id once, so proposing one
again is always safe).

When the queued commands arrived is kept per run of commands queued at
one time (`arrivals`, beside `pending`), never per command: commands
queued in one loop turn share the runtime's clock reading and one run, and
`next_batch` says when the oldest command of a slot arrived
(committime.py says what is timed from where).
"""

from __future__ import annotations

from collections import deque
from itertools import repeat
from typing import Iterable, Iterator, NamedTuple

from .commands import Command, Value
from .committime import CommitTimes
from .configs import is_config_request
from .messages import ClientRequest
from .outbox import Outbox
from .stats import ProposerStats

#: A batch's encoding (commands.py, "Batch layout") starts with a u32 count.
_BATCH_HEAD = 4


class Conflict(NamedTuple):
    """A client's command refused: its request id is outstanding here with another payload."""

    #: The command refused (never proposed).
    command: Command
    #: The command outstanding here under the same request id (the first one).
    first: Command
    #: Where the refused command is in the batch it came in (0-based).
    index: int


class Pending:
    """Commands to propose, in order: a queue of runs [value, start, stop]
    (the commands [start, stop) of `value`), and how many commands they hold."""

    __slots__ = ("runs", "count")

    def __init__(self) -> None:
        self.runs: deque[list] = deque()
        self.count = 0

    def add(self, value: Value, start: int, stop: int, front: bool = False) -> None:
        if start >= stop:
            return
        if front:
            self.runs.appendleft([value, start, stop])
        else:
            self.runs.append([value, start, stop])
        self.count += stop - start

    def clear(self) -> None:
        self.runs.clear()
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0

    def __iter__(self) -> Iterator[Command]:
        """The commands, front to back (built here: for tests and messages, not the data path)."""
        for value, start, stop in self.runs:
            yield from value.commands[start:stop]

    def __repr__(self) -> str:
        return f"Pending({list(self)!r})"


def _command(value: Value, index: int) -> Command:
    return value.commands[index]


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
        #: Commands to propose, in order, once we lead (runs of values).
        self.pending = Pending()
        #: When the commands of `pending` arrived, front to back: runs of
        #: [how many commands, the clock reading they were queued at],
        #: covering `pending` exactly.
        self.arrivals: deque[list] = deque()
        #: Request id -> the value its command queued or in flight here came
        #: in (the first command of that id there), not seen decided.
        self.outstanding: dict[str, Value] = {}

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
        self.route(Value.of((command,)), None if forwarded_once else leader)

    def from_client(self, batch: Value, leader: str | None) -> list[Conflict]:
        """A batch straight from a client, routed as `receive` routes each of
        its commands; one call per batch a client sent. Returns those refused
        as conflicts (see `route`), with their indexes in `batch`."""
        rids = batch.request_ids()
        if not any(map(is_config_request, rids)):
            return self.route(batch, leader)
        kept = [i for i, rid in enumerate(rids) if not is_config_request(rid)]
        self._stats.config_refused += len(rids) - len(kept)
        refused = self.route(Value.join([(batch, i, i + 1) for i in kept]), leader)
        return [c._replace(index=kept[c.index]) for c in refused]

    def route(self, batch: Value, leader: str | None, *, front: bool = False) -> list[Conflict]:
        """Forward the commands of `batch` to `leader` (those not outstanding
        here), or, if `leader` is None, queue them (at the front if `front`)
        to propose here.

        A command whose request id is outstanding here is dropped if its
        payload is the one outstanding, else returned as a `Conflict` (the
        caller refuses it, or drops it if nobody waits for an answer).
        """
        if leader is None:
            return self.queue(batch, front=front)
        outstanding = self.outstanding
        if not outstanding:
            self._forward(batch.commands, leader)  # a follower's usual case: nothing held here
            return []
        refused: list[Conflict] = []
        forward = []
        for index, command in enumerate(batch.commands):
            first = outstanding.get(command.request_id)
            if first is None:
                forward.append(command)
            else:
                conflict = self._conflict(batch, index, first)
                if conflict is not None:
                    refused.append(conflict)
        self._forward(forward, leader)
        return refused

    @staticmethod
    def _conflict(batch: Value, index: int, first: Value) -> Conflict | None:
        """Command `index` of `batch` repeats an id outstanding in `first`: a
        `Conflict` if its payload is another, else None (a repeat: dropped)."""
        command = _command(batch, index)
        held = _command(first, first.position(command.request_id))
        if held.payload == command.payload:
            return None
        return Conflict(command, held, index)

    def forward_pending(self, leader: str) -> None:
        """A leader is known: hand it every command queued here."""
        pop = self.outstanding.pop
        for command in self.pending:
            pop(command.request_id, None)
            self._forward((command,), leader)
        self.pending.clear()
        self.arrivals.clear()

    def _forward(self, commands: Iterable[Command], leader: str) -> None:
        for command in commands:
            self._stats.forwarded += 1
            self._out.send.append(ClientRequest(src=self.node_id, dst=leader, command=command))

    def queue(self, batch: Value, *, front: bool = False) -> list[Conflict]:
        """Queue the commands of `batch` not outstanding here (each request id
        once, the first); return the repeats with another payload (see `route`)."""
        rids = batch.request_ids()
        outstanding = self.outstanding
        if outstanding.keys().isdisjoint(rids) and len(set(rids)) == len(rids):
            # The usual case, in a few C-level passes: the batch is one run.
            outstanding.update(zip(rids, repeat(batch)))
            self.pending.add(batch, 0, len(rids), front)
            self._arrived(len(rids), front)
            return []
        refused: list[Conflict] = []
        fresh: list[int] = []
        for index, rid in enumerate(rids):
            first = outstanding.get(rid)
            if first is None:
                outstanding[rid] = batch
                fresh.append(index)
            elif first is not batch or first.position(rid) != index:
                conflict = self._conflict(batch, index, first)
                if conflict is not None:
                    refused.append(conflict)
        if fresh:
            self.pending.add(Value.join([(batch, i, i + 1) for i in fresh]), 0, len(fresh), front)
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
        pending = self.pending
        queued = 0
        for value in values:
            count = len(value)
            if only_outstanding:
                rids = value.request_ids()
                if not all(map(outstanding.__contains__, rids)):
                    value = Value.join([(value, i, i + 1) for i, rid in enumerate(rids)
                                        if rid in outstanding])
                    count = len(value)
            pending.add(value, 0, count, front=True)
            queued += count
        # Timed from now: re-proposed after a leader change (committime.py).
        self._arrived(queued, front=True)

    def decided(self, value: Value) -> None:
        """`value` was decided somewhere: its commands are no longer outstanding."""
        forget = self.outstanding.pop
        for request_id in value.request_ids():
            forget(request_id, None)

    def next_batch(self, batch: int, slot_bytes: int) -> tuple[Value, float]:
        """The value of a new slot, taken from the front of `pending`: up to
        `batch` commands, while the slot's encoded value stays within
        `slot_bytes` (`Value`'s layout: a 4-byte count, then per command 14
        bytes, its request id's UTF-8 and its payload). The first is always
        taken, so a command larger than the budget goes alone in its slot:
        every slot fits in one frame (see `Settings.slot_bytes`).

        Returns the value (slices of the queued runs joined: at least one
        command; `pending` must not be empty) and when the oldest of its
        commands arrived (the earliest stamp of their runs)."""
        pending = self.pending
        runs = pending.runs
        budget = slot_bytes - _BATCH_HEAD
        left = batch
        parts: list[tuple[Value, int, int]] = []
        while runs and left > 0:
            run = runs[0]
            value, start, stop = run
            end = value.fit(start, min(stop, start + left), budget)
            if end == start and not parts:
                end = start + 1  # the first command goes, whatever its size
            if end > start:
                parts.append((value, start, end))
                budget -= value.span_bytes(start, end)
                left -= end - start
            if end < stop:
                run[1] = end
                break  # the count or the budget stopped us inside this run
            runs.popleft()
        taken = batch - left
        pending.count -= taken
        # Per run, not per command: a slot spans the runs of a few loop turns at most.
        arrivals, left = self.arrivals, taken
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
        return Value.join(parts), oldest
