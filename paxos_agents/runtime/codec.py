"""Messages to bytes and back, for the queues between agents and the supervisor.

Wire format (version 3), little-endian, no padding:

    u8 VERSION (3), u8 TYPE, then the fields in dataclass order

with TYPE the message's code in `TYPE_CODES` and each field as

- str: u16 byte length, then UTF-8 (src, dst, node ids, request ids);
- int: i64 (slots, rounds, counts the core keeps: -1 allowed);
- ballot: i64 round, then str node id;
- value: u32 byte length, then `Value.data` as it is (a batch in the
  layout of paxos_agents/core/commands.py; the codec never decodes it,
  so an acceptor handles an Accept without parsing its commands);
- vote: i64 slot, ballot, value;
- command (ClientRequest only): str request id, u32 length + payload
  bytes, i64 issued (>= -1);
- a tuple: u32 count, then its items (Promise.votes; Chunk.decisions as
  i64 slot + value; Chunk.first_slots as str request id + i64 slot);
- a configuration history (Stored.history, Chunk.history, last): u32 byte
  length, then `History.to_json()` as UTF-8 JSON; length 0 for None.

For example `Retry(src="l1", dst="p1", slot=2)` is
`03 08 0200 "l1" 0200 "p1" 0200000000000000` (spaces for reading).

Each type has a hand-written encoder and decoder in the tables below: this
runs once per message per hop. Adding a message type means a code and a
row in both tables; importing this module fails if a type in
`MESSAGE_TYPES` has none.

`decode` trusts nothing: any input that is not exactly one version-3
message (short, trailing bytes, bad UTF-8, unknown type, a count larger
than the bytes could hold, a history whose numbers are not exact i64 ints
or whose JSON nests too deep) raises `CodecError`, never another exception.
`encode` raises `CodecError` for a field it cannot represent (an int
outside i64, a string that is not encodable UTF-8 or longer than 65535
bytes); the core never builds one.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Callable

from paxos_agents.core.commands import Command, Value
from paxos_agents.core.configs import ConfigError, History
from paxos_agents.core.ids import Ballot
from paxos_agents.core.messages import (
    MESSAGE_TYPES,
    Accept,
    Accepted,
    Chunk,
    ClientRequest,
    Decide,
    Fetch,
    Heartbeat,
    Message,
    Nack,
    Prepare,
    Promise,
    Retry,
    Stored,
    Vote,
)

__all__ = ["VERSION", "TYPE_CODES", "CodecError", "encode", "decode", "values_of"]

#: The wire format version; the first byte of every encoded message.
VERSION = 3

#: Message type -> its TYPE byte. Codes are never reused for another type.
TYPE_CODES: dict[type, int] = {
    Prepare: 1, Promise: 2, Accept: 3, Accepted: 4, Nack: 5, Decide: 6, Heartbeat: 7,
    Retry: 8, Stored: 9, Fetch: 10, Chunk: 11, ClientRequest: 12,
}


class CodecError(ValueError):
    """Bytes that are not a well-formed message of this version, or a message
    with a field the format cannot carry."""


_HEAD = struct.Struct("<BB")
_H = struct.Struct("<H")
_I = struct.Struct("<I")
_Q = struct.Struct("<q")
_QH = struct.Struct("<qH")  # a ballot's round and its node id's length


# --- encoding ------------------------------------------------------------------
# Each encoder appends the fields' bytes to `out`; `encode` joins them once.


def _w_str(out: list, text: str) -> None:
    raw = text.encode("utf-8")
    out.append(_H.pack(len(raw)))
    out.append(raw)


def _w_int(out: list, number: int) -> None:
    out.append(_Q.pack(number))


def _w_ballot(out: list, ballot: Ballot) -> None:
    raw = ballot.node_id.encode("utf-8")
    out.append(_QH.pack(ballot.round, len(raw)))
    out.append(raw)


def _w_value(out: list, value: Value) -> None:
    data = value.data
    out.append(_I.pack(len(data)))
    out.append(data)


def _w_vote(out: list, vote: Vote) -> None:
    _w_int(out, vote.slot)
    _w_ballot(out, vote.ballot)
    _w_value(out, vote.value)


def _w_command(out: list, command: Command) -> None:
    _w_str(out, command.request_id)
    out.append(_I.pack(len(command.payload)))
    out.append(command.payload)
    _w_int(out, command.issued)


def _w_history(out: list, history: History | None) -> None:
    if history is None:
        out.append(_I.pack(0))
        return
    raw = json.dumps(history.to_json(), separators=(",", ":")).encode("utf-8")
    out.append(_I.pack(len(raw)))
    out.append(raw)


def _w_src_dst(out: list, m: Any) -> None:
    _w_str(out, m.src)
    _w_str(out, m.dst)


def _e_prepare(out: list, m: Prepare) -> None:
    _w_src_dst(out, m)
    _w_ballot(out, m.ballot)
    _w_int(out, m.first_slot)


def _e_promise(out: list, m: Promise) -> None:
    _w_src_dst(out, m)
    _w_ballot(out, m.ballot)
    _w_int(out, m.first_slot)
    out.append(_I.pack(len(m.votes)))
    for vote in m.votes:
        _w_vote(out, vote)
    _w_int(out, m.compacted)


def _e_accept(out: list, m: Accept | Accepted) -> None:  # Accepted has the same fields
    _w_src_dst(out, m)
    _w_ballot(out, m.ballot)
    _w_int(out, m.slot)
    _w_value(out, m.value)


def _e_nack(out: list, m: Nack) -> None:
    _w_src_dst(out, m)
    _w_ballot(out, m.ballot)
    _w_ballot(out, m.promised)
    _w_int(out, m.compacted)


def _e_decide(out: list, m: Decide) -> None:
    _w_src_dst(out, m)
    _w_int(out, m.slot)
    _w_value(out, m.value)


def _e_heartbeat(out: list, m: Heartbeat) -> None:
    _w_src_dst(out, m)
    _w_ballot(out, m.ballot)
    _w_int(out, m.highest_slot)
    _w_int(out, m.decided_up_to)


def _e_retry(out: list, m: Retry) -> None:
    _w_src_dst(out, m)
    _w_int(out, m.slot)


def _e_stored(out: list, m: Stored) -> None:
    _w_src_dst(out, m)
    _w_int(out, m.upto)
    _w_history(out, m.history)


def _e_fetch(out: list, m: Fetch) -> None:
    _w_src_dst(out, m)
    _w_int(out, m.first_slot)


def _e_chunk(out: list, m: Chunk) -> None:
    _w_src_dst(out, m)
    _w_int(out, m.asked)
    _w_int(out, m.first_slot)
    out.append(_I.pack(len(m.decisions)))
    for slot, value in m.decisions:
        _w_int(out, slot)
        _w_value(out, value)
    out.append(_I.pack(len(m.first_slots)))
    for request_id, slot in m.first_slots:
        _w_str(out, request_id)
        _w_int(out, slot)
    _w_history(out, m.history)


def _e_client_request(out: list, m: ClientRequest) -> None:
    _w_src_dst(out, m)
    _w_command(out, m.command)


_ENCODERS: dict[type, Callable[[list, Any], None]] = {
    Prepare: _e_prepare,
    Promise: _e_promise,
    Accept: _e_accept,
    Accepted: _e_accept,
    Nack: _e_nack,
    Decide: _e_decide,
    Heartbeat: _e_heartbeat,
    Retry: _e_retry,
    Stored: _e_stored,
    Fetch: _e_fetch,
    Chunk: _e_chunk,
    ClientRequest: _e_client_request,
}


# --- decoding ------------------------------------------------------------------


class _Reader:
    """A cursor over one message's bytes. Reading past the end raises
    `struct.error` or `CodecError`; `decode` turns every failure into `CodecError`."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def int(self) -> int:
        (number,) = _Q.unpack_from(self.data, self.pos)
        self.pos += 8
        return number

    def _bytes(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise CodecError(f"a field of {size} bytes runs past the end")
        raw = self.data[self.pos:end]
        self.pos = end
        return raw

    def str(self) -> str:
        (size,) = _H.unpack_from(self.data, self.pos)
        self.pos += 2
        return self._bytes(size).decode("utf-8")

    def ballot(self) -> Ballot:
        round_, size = _QH.unpack_from(self.data, self.pos)
        self.pos += 10
        return Ballot(round_, self._bytes(size).decode("utf-8"))

    def value(self) -> Value:
        (size,) = _I.unpack_from(self.data, self.pos)
        self.pos += 4
        return Value.from_bytes(self._bytes(size))

    def count(self, min_item_bytes: int) -> int:
        """A tuple's length, refused if its items could not fit in what is left."""
        (n,) = _I.unpack_from(self.data, self.pos)
        self.pos += 4
        if n * min_item_bytes > len(self.data) - self.pos:
            raise CodecError(f"a count of {n} items runs past the end")
        return n

    def history(self) -> History | None:
        (size,) = _I.unpack_from(self.data, self.pos)
        self.pos += 4
        if size == 0:
            return None
        try:
            return History.from_json(json.loads(self._bytes(size)))
        except RecursionError:
            raise CodecError("bad configuration history: JSON nested too deep") from None
        except (ValueError, ConfigError) as exc:  # JSON or UTF-8 errors are ValueErrors
            raise CodecError(f"bad configuration history: {exc}") from None

    def vote(self) -> Vote:
        return Vote(self.int(), self.ballot(), self.value())

    def command(self) -> Command:
        request_id = self.str()
        (size,) = _I.unpack_from(self.data, self.pos)
        self.pos += 4
        payload = self._bytes(size)
        issued = self.int()
        if issued < -1:
            raise CodecError(f"command issued must be >= -1, got {issued}")
        return Command(request_id, payload, issued)


# Minimum encoded sizes, for `_Reader.count`: a vote (slot, round, empty
# node id, empty value), a decision (slot, empty value), a first slot.
_VOTE_MIN, _DECISION_MIN, _FIRST_SLOT_MIN = 8 + 10 + 4, 8 + 4, 2 + 8


def _d_prepare(r: _Reader) -> Prepare:
    return Prepare(src=r.str(), dst=r.str(), ballot=r.ballot(), first_slot=r.int())


def _d_promise(r: _Reader) -> Promise:
    src, dst, ballot, first_slot = r.str(), r.str(), r.ballot(), r.int()
    votes = tuple([r.vote() for _ in range(r.count(_VOTE_MIN))])
    return Promise(src=src, dst=dst, ballot=ballot, first_slot=first_slot, votes=votes,
                   compacted=r.int())


def _d_accept(r: _Reader) -> Accept:
    return Accept(src=r.str(), dst=r.str(), ballot=r.ballot(), slot=r.int(), value=r.value())


def _d_accepted(r: _Reader) -> Accepted:
    return Accepted(src=r.str(), dst=r.str(), ballot=r.ballot(), slot=r.int(), value=r.value())


def _d_nack(r: _Reader) -> Nack:
    return Nack(src=r.str(), dst=r.str(), ballot=r.ballot(), promised=r.ballot(),
                compacted=r.int())


def _d_decide(r: _Reader) -> Decide:
    return Decide(src=r.str(), dst=r.str(), slot=r.int(), value=r.value())


def _d_heartbeat(r: _Reader) -> Heartbeat:
    return Heartbeat(src=r.str(), dst=r.str(), ballot=r.ballot(), highest_slot=r.int(),
                     decided_up_to=r.int())


def _d_retry(r: _Reader) -> Retry:
    return Retry(src=r.str(), dst=r.str(), slot=r.int())


def _d_stored(r: _Reader) -> Stored:
    return Stored(src=r.str(), dst=r.str(), upto=r.int(), history=r.history())


def _d_fetch(r: _Reader) -> Fetch:
    return Fetch(src=r.str(), dst=r.str(), first_slot=r.int())


def _d_chunk(r: _Reader) -> Chunk:
    src, dst, asked, first_slot = r.str(), r.str(), r.int(), r.int()
    decisions = tuple([(r.int(), r.value()) for _ in range(r.count(_DECISION_MIN))])
    firsts = tuple([(r.str(), r.int()) for _ in range(r.count(_FIRST_SLOT_MIN))])
    return Chunk(src=src, dst=dst, asked=asked, first_slot=first_slot, decisions=decisions,
                 first_slots=firsts, history=r.history())


def _d_client_request(r: _Reader) -> ClientRequest:
    return ClientRequest(src=r.str(), dst=r.str(), command=r.command())


_DECODERS: dict[type, Callable[[_Reader], Any]] = {
    Prepare: _d_prepare,
    Promise: _d_promise,
    Accept: _d_accept,
    Accepted: _d_accepted,
    Nack: _d_nack,
    Decide: _d_decide,
    Heartbeat: _d_heartbeat,
    Retry: _d_retry,
    Stored: _d_stored,
    Fetch: _d_fetch,
    Chunk: _d_chunk,
    ClientRequest: _d_client_request,
}

# Fail at import, not at the first message of a new type, if a table lags
# behind `MESSAGE_TYPES`.
_missing = (set(MESSAGE_TYPES) ^ set(_ENCODERS)) | (set(MESSAGE_TYPES) ^ set(_DECODERS))
_missing |= set(MESSAGE_TYPES) ^ set(TYPE_CODES)
if _missing or len(set(TYPE_CODES.values())) != len(TYPE_CODES):  # pragma: no cover
    raise ImportError("codec tables out of step with MESSAGE_TYPES: "
                      f"{sorted(t.__name__ for t in _missing)} (or a TYPE code used twice)")
del _missing

#: TYPE byte -> (type, decoder); type -> (header bytes, encoder).
_BY_CODE: dict[int, tuple[type, Callable[[_Reader], Any]]] = {
    code: (cls, _DECODERS[cls]) for cls, code in TYPE_CODES.items()}
_BY_TYPE: dict[type, tuple[bytes, Callable[[list, Any], None]]] = {
    cls: (_HEAD.pack(VERSION, code), _ENCODERS[cls]) for cls, code in TYPE_CODES.items()}


# --- public API --------------------------------------------------------------


def values_of(msg: Message) -> list[Value]:
    """Every `Value` `msg` carries (`decode` leaves them undecoded: see the
    module doc), for a receiver that will read them to check first."""
    if isinstance(msg, (Accept, Accepted, Decide)):
        return [msg.value]
    if isinstance(msg, Promise):
        return [vote.value for vote in msg.votes]
    if isinstance(msg, Chunk):
        return [value for _, value in msg.decisions]
    return []


def encode(msg: Message) -> bytes:
    """The wire bytes of `msg` (see the module doc).

    Raises `CodecError` if `msg` is not an instance of a type in
    `MESSAGE_TYPES` or has a field the format cannot carry.
    """
    entry = _BY_TYPE.get(type(msg))
    if entry is None:
        raise CodecError(f"cannot encode {type(msg).__name__}: not a message type")
    head, encoder = entry
    out = [head]
    try:
        encoder(out, msg)
        return b"".join(out)
    except (struct.error, UnicodeEncodeError, AttributeError, TypeError) as exc:
        raise CodecError(f"cannot encode {type(msg).__name__}: {exc}") from None


def decode(data: bytes) -> Message:
    """The message `data` encodes; `decode(encode(m)) == m` for every message.

    Raises `CodecError` (a `ValueError`) if `data` is not bytes, is shorter
    than its header, has a version other than `VERSION`, an unknown type,
    a field that is cut short or not UTF-8, or bytes left over.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    if len(data) < _HEAD.size:
        raise CodecError(f"not a message: {len(data)} bytes, shorter than the header")
    version, code = _HEAD.unpack_from(data)
    if version != VERSION:
        raise CodecError(f"unknown codec version {version}; this paxosctl speaks {VERSION}")
    entry = _BY_CODE.get(code)
    if entry is None:
        raise CodecError(f"unknown message type code {code}")
    cls, decoder = entry
    reader = _Reader(bytes(data) if type(data) is not bytes else data, _HEAD.size)
    try:
        msg = decoder(reader)
    except CodecError as exc:
        raise CodecError(f"malformed {cls.__name__} message: {exc}") from None
    except struct.error:
        raise CodecError(f"malformed {cls.__name__} message: cut short") from None
    except UnicodeDecodeError:
        raise CodecError(f"malformed {cls.__name__} message: a string is not UTF-8") from None
    except (RecursionError, OverflowError, MemoryError, ValueError, TypeError) as exc:
        # Belt and braces: each field's reader checks its own; whatever a
        # peer's bytes still provoke must not end the agent's loop.
        raise CodecError(f"malformed {cls.__name__} message: {type(exc).__name__}") from None
    if reader.pos != len(data):
        raise CodecError(
            f"malformed {cls.__name__} message: {len(data) - reader.pos} bytes left over")
    return msg
