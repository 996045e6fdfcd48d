"""Commands and the values that slots decide.

A *command* is what a client submits: an opaque payload of bytes and the
request id that makes it idempotent, stamped with `issued`: a slot that
was already decided when the request id was first issued, so the command
cannot have been decided at or below it. Learners that keep only a window
of the log use the stamp to tell a retry they can still recognise from
one too old to check (see `Learner`, "expired").

The *value* of a slot is a batch of commands (Multi-Paxos batches several
commands per slot), held as its encoding: a `Value` is bytes that only
the roles which apply commands ever decode. Acceptors, storage and the
wire codec pass `Value.data` along untouched, so a vote costs no parsing.
The empty batch is the no-op a new leader uses to fill a hole in the log.

Batch layout (little-endian, struct-of-arrays, n >= 1 commands):

    u32 n
    n x u16   request id lengths (bytes of UTF-8)
    n x u32   payload lengths
    n x i64   issued stamps (each >= -1)
    the n request ids, UTF-8, concatenated
    the n payloads, concatenated

and the no-op (n = 0) is the empty string of bytes, nothing else. Each
list of commands has exactly one encoding and each valid encoding one
list of commands, so two values are equal iff their bytes are. The
arrays are read with one `struct` call per batch, not one per command.

Because each array is contiguous, the commands [a, b) of a batch are a
slice of each of its columns (id lengths, payload lengths and stamps,
parsed once per value with one `struct` call) and two contiguous slices of
its bytes (their ids and their payloads). `Value.join` encodes several
such runs back to back with one `struct` pack for the head and one join
for the rest: the leader builds a slot's value from the batches clients
sent without a Python object per command, and the result is byte for
byte `Value.of` of the same commands.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from bisect import bisect_right
from itertools import accumulate
from typing import Iterable, Iterator, Sequence

__all__ = ["Command", "Value", "BatchError", "NOOP", "is_noop"]


@dataclass(frozen=True, slots=True)
class Command:
    """One client command. `request_id` is unique per logical request.

    `issued` is -1 when unknown (then, with a bounded log, the command
    counts as issued at the start of the log). Retries of one request
    must carry the stamp of its first issue.
    """

    request_id: str
    payload: bytes
    issued: int = -1


class BatchError(ValueError):
    """Bytes that are not the encoding of a batch, or commands that cannot be encoded."""


_COUNT = struct.Struct("<I")
#: Bytes of the per-command arrays: u16 + u32 + i64.
_PER_COMMAND = 2 + 4 + 8
#: The head of a batch of one command: count, id length, payload length, stamp.
_ONE = struct.Struct("<IHIq")
#: A run's payloads above this many bytes are joined from a memoryview, not a copy.
_VIEW_BYTES = 4096


class Value:
    """The value of one slot: a batch of commands, held as its encoding `data`.

    Build one with `Value.of(commands)` (encodes once and keeps the
    commands, so whoever built it never decodes it) or wrap received or
    stored bytes with `Value.from_bytes(data)` (no decoding). The commands
    are decoded on first use of `commands`, iteration or `len`, once per
    object; malformed bytes raise `BatchError` there. Equality, hashing
    and truth (false only for the no-op) look at `data` alone.
    """

    __slots__ = ("data", "_commands", "_layout")

    data: bytes
    _commands: tuple[Command, ...] | None
    _layout: _Layout | None

    def __init__(self, data: bytes, commands: tuple[Command, ...] | None = None) -> None:
        """Prefer `of` or `from_bytes`; `commands`, if given, must be what `data` encodes."""
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "_commands", commands)
        object.__setattr__(self, "_layout", None)

    @classmethod
    def of(cls, commands: Iterable[Command]) -> "Value":
        """The batch of `commands`, in order (payloads must be bytes).

        Raises `BatchError` if a request id is longer than 65535 bytes of
        UTF-8 or is not encodable, a payload is 4 GiB or more, or a stamp
        does not fit in 64 bits.
        """
        batch = tuple(commands)
        if not batch:
            return NOOP
        n = len(batch)
        try:
            ids = [c.request_id.encode("utf-8") for c in batch]
            payloads = [c.payload for c in batch]
            head = struct.pack(f"<I{n}H{n}I{n}q", n, *map(len, ids), *map(len, payloads),
                               *[c.issued for c in batch])
        except (struct.error, UnicodeEncodeError) as exc:
            raise BatchError(f"cannot encode a batch of {n} command(s): {exc}") from None
        return cls(b"".join((head, *ids, *payloads)), batch)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> "Value":
        """Wrap the encoding `data` without decoding it (checked on first use)."""
        return cls(data if type(data) is bytes else bytes(data))

    @property
    def commands(self) -> tuple[Command, ...]:
        """The commands, decoded from `data` on first access; raises `BatchError`."""
        commands = self._commands
        if commands is None:
            commands = _decode(self.data, self._columns())
            object.__setattr__(self, "_commands", commands)
        return commands

    def _columns(self) -> _Layout:
        layout = self._layout
        if layout is None:
            layout = _layout(self.data)
            object.__setattr__(self, "_layout", layout)
        return layout

    def request_ids(self) -> list[str]:
        """The commands' request ids, in order, without building the commands."""
        if self._commands is not None:
            return [c.request_id for c in self._commands]
        return self._columns().ids

    def lowest_issued(self) -> int:
        """The lowest `issued` stamp of the commands (-1 for the no-op)."""
        if self._commands is not None:
            return min([c.issued for c in self._commands], default=-1)
        return min(self._columns().issued, default=-1)

    def payload_sizes(self) -> tuple[int, ...]:
        """Each command's payload length, in order, without building the commands."""
        return self._columns().pay_lens

    def position(self, request_id: str) -> int:
        """The index of the first command with `request_id`; `KeyError` if none.
        Builds a table once per value: for the rare repeated id, not the common path."""
        layout = self._columns()
        positions = layout.positions
        if positions is None:
            ids = layout.ids
            # Reversed, so the first occurrence of an id is the one kept.
            positions = layout.positions = dict(zip(reversed(ids), range(len(ids) - 1, -1, -1)))
        return positions[request_id]

    def span_bytes(self, start: int, stop: int) -> int:
        """Bytes the commands [start, stop) add to an encoding (their array
        entries, ids and payloads; the 4-byte count apart)."""
        layout = self._columns()
        id_ends, ends = layout.id_ends, layout.ends
        return (_PER_COMMAND * (stop - start) + id_ends[stop] - id_ends[start]
                + ends[stop] - ends[start])

    def fit(self, start: int, stop: int, budget: int) -> int:
        """The largest `end` in [start, stop] with `span_bytes(start, end) <= budget`."""
        if self.span_bytes(start, stop) <= budget:
            return stop
        return bisect_right(range(start, stop + 1), budget,
                            key=lambda end: self.span_bytes(start, end)) - 1 + start

    @classmethod
    def join(cls, runs: Sequence[tuple["Value", int, int]]) -> "Value":
        """The batch of the commands [start, stop) of each (value, start, stop)
        of `runs`, in order: equal to `Value.of` of those commands, built from
        the values' parsed columns and slices of their bytes (one struct pack
        for the head, no object per command). A single run that is a whole
        value is that value."""
        if len(runs) == 1:
            value, start, stop = runs[0]
            if start == 0 and stop == len(value):
                return value
        id_lens: list[int] = []
        pay_lens: list[int] = []
        issued: list[int] = []
        ids: list[str] = []
        id_blocks: list = []
        pay_blocks: list = []
        add_ids, add_payloads = id_blocks.append, pay_blocks.append
        for value, start, stop in runs:
            if start >= stop:
                continue
            layout = value._layout or value._columns()
            data = value.data
            id_ends, ends = layout.id_ends, layout.ends
            if start == 0 and stop == len(id_ends) - 1:
                # A whole batch (a client's frame, usually): no column slicing.
                id_lens += layout.id_lens
                pay_lens += layout.pay_lens
                issued += layout.issued
                ids += layout.ids
            else:
                id_lens += layout.id_lens[start:stop]
                pay_lens += layout.pay_lens[start:stop]
                issued += layout.issued[start:stop]
                ids += layout.ids[start:stop]
            add_ids(data[id_ends[start]:id_ends[stop]])
            a, b = ends[start], ends[stop]
            # Large payloads are copied once (into the join), small ones
            # sliced: a memoryview costs more than copying a few bytes.
            add_payloads(memoryview(data)[a:b] if b - a > _VIEW_BYTES else data[a:b])
        n = len(ids)
        if not n:
            return NOOP
        head = struct.pack(f"<I{n}H{n}I{n}q", n, *id_lens, *pay_lens, *issued)
        joined = cls(b"".join([head, *id_blocks, *pay_blocks]))
        # The columns are known already: the leader reads the ids again when
        # the slot is decided, and need not parse what it just built.
        id_ends = list(accumulate(id_lens, initial=len(head)))
        object.__setattr__(joined, "_layout", _Layout(
            ids, tuple(issued), list(accumulate(pay_lens, initial=id_ends[-1])), id_ends,
            tuple(pay_lens), tuple(id_lens)))
        return joined

    def payload(self, index: int) -> bytes:
        """The payload of command `index`, without building the commands."""
        if self._commands is not None:
            return self._commands[index].payload
        ends = self._columns().ends
        return self.data[ends[index]:ends[index + 1]]

    def __len__(self) -> int:
        if self._commands is not None:
            return len(self._commands)
        return len(self._columns().ids)

    def __iter__(self) -> Iterator[Command]:
        return iter(self.commands)

    def __reversed__(self) -> Iterator[Command]:
        return reversed(self.commands)

    def __bool__(self) -> bool:
        return bool(self.data)  # only the no-op is empty; no decoding needed

    def __eq__(self, other: object) -> bool:
        if type(other) is not Value:
            return NotImplemented
        return self.data == other.data

    def __hash__(self) -> int:
        return hash(self.data)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Value is immutable; cannot set {name!r}")

    def __reduce__(self) -> tuple:
        # Pickle and copy the bytes only; the decoded commands are a cache.
        return (Value.from_bytes, (self.data,))

    def __repr__(self) -> str:
        if not self.data:
            return "NOOP"
        try:
            return f"Value.of({list(self.commands)!r})"
        except BatchError:
            return f"Value.from_bytes({self.data!r:.80})"


class _Layout:
    """A batch's columns, parsed once: request ids, stamps, payload offsets."""

    __slots__ = ("ids", "issued", "ends", "id_ends", "pay_lens", "id_lens", "positions")

    def __init__(self, ids: list[str], issued: tuple[int, ...], ends: list[int],
                 id_ends: list[int], pay_lens: tuple[int, ...], id_lens: tuple[int, ...]) -> None:
        self.ids = ids
        self.issued = issued
        #: Payload i is data[ends[i]:ends[i + 1]].
        self.ends = ends
        #: Request id i is data[id_ends[i]:id_ends[i + 1]] (UTF-8).
        self.id_ends = id_ends
        self.pay_lens = pay_lens
        #: Bytes of each request id's UTF-8.
        self.id_lens = id_lens
        #: Request id -> index of its first command, built on first need (`Value.position`).
        self.positions: dict[str, int] | None = None


def _layout(data: bytes) -> _Layout:
    """The columns of `data` (see the module docstring); raises `BatchError`."""
    size = len(data)
    if size == 0:
        return _Layout([], (), [0], [0], (), ())
    if size < _COUNT.size:
        raise BatchError(f"batch of {size} bytes is shorter than its count")
    (n,) = _COUNT.unpack_from(data)
    if n == 0:
        raise BatchError("batch counts 0 commands; the no-op is encoded as no bytes")
    if n == 1:
        return _layout_one(data)
    # Check the arrays fit before unpacking them: n comes from the bytes and
    # could ask for a huge format.
    start = _COUNT.size + n * _PER_COMMAND
    if start > size:
        raise BatchError(f"batch of {n} commands needs {start} bytes of header, has {size}")
    fields = struct.unpack_from(f"<{n}H{n}I{n}q", data, _COUNT.size)
    id_lens, pay_lens, issued = fields[:n], fields[n:2 * n], fields[2 * n:]
    id_ends = list(accumulate(id_lens, initial=start))
    pay_ends = list(accumulate(pay_lens, initial=id_ends[-1]))
    if pay_ends[-1] != size:
        raise BatchError(f"batch of {n} commands should be {pay_ends[-1]} bytes, is {size}")
    if min(issued) < -1:
        raise BatchError(f"batch has an issued stamp below -1: {min(issued)}")
    id_block = data[start:id_ends[-1]]
    try:
        if id_block.isascii():
            # One decode for the lot; byte offsets are then character offsets.
            text = id_block.decode("ascii")
            ids = [text[a - start:b - start] for a, b in zip(id_ends, id_ends[1:])]
        else:
            ids = [data[a:b].decode("utf-8") for a, b in zip(id_ends, id_ends[1:])]
    except UnicodeDecodeError as exc:
        raise BatchError(f"batch has a request id that is not UTF-8: {exc}") from None
    return _Layout(ids, issued, pay_ends, id_ends, pay_lens, id_lens)


def _layout_one(data: bytes) -> _Layout:
    """`_layout` of a batch of one command: a client's lone PROPOSE is the
    common frame, and the general parse costs several times this one."""
    size = len(data)
    if size < _ONE.size:
        raise BatchError(f"batch of 1 command needs {_ONE.size} bytes of header, has {size}")
    _, id_len, pay_len, issued = _ONE.unpack_from(data)
    id_end = _ONE.size + id_len
    if id_end + pay_len != size:
        raise BatchError(f"batch of 1 command should be {id_end + pay_len} bytes, is {size}")
    if issued < -1:
        raise BatchError(f"batch has an issued stamp below -1: {issued}")
    try:
        rid = data[_ONE.size:id_end].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BatchError(f"batch has a request id that is not UTF-8: {exc}") from None
    return _Layout([rid], (issued,), [id_end, size], [_ONE.size, id_end], (pay_len,), (id_len,))


def _decode(data: bytes, layout: _Layout) -> tuple[Command, ...]:
    """The commands of `data`, whose columns are `layout`."""
    ends = layout.ends
    payloads = [data[a:b] for a, b in zip(ends, ends[1:])]
    return tuple(map(Command, layout.ids, payloads, layout.issued))


#: The no-op value: decides the slot and applies nothing.
NOOP: Value = Value(b"", ())


def is_noop(value: Value) -> bool:
    """True for the hole-filling no-op."""
    return not value.data
