"""What clients and agents say to each other on the data path.

A client (`paxosctl.Client`, `paxosctl propose`) connects straight to the
proposers and to one learner (see `transport`: HELLO from "client", then
WELCOME with the agent's incarnation and what it knows). After the
handshake every frame starts with one kind byte:

client -> proposer
    PROPOSE + commands: decide these (see `encode_commands`).
client -> learner
    SUBSCRIBE: from now on, send me every slot you apply (SLOT frames).
    WATCH + request ids: tell me where each is decided (`encode_ids`):
    for commands that may have been applied before the subscription.
    LOOKUP + request ids: tell me now what you know of each (LOOKED_UP):
    before the first send of a request id the client did not make itself.
    QUERY + JSON {"op": "decided", "from": slot, "limit": n}.
proposer -> client
    LEADER + name: the leader I know of (empty: none); send there. A
    proposer that is not the leader forwards what it got there anyway.
    OUTCOMES (status TOO_LARGE, CONFLICT): commands refused, never proposed.
learner -> client
    SUBSCRIBED + i64 slot: subscribed; every slot up to this one was applied
    before, so a command first sent from now on is stamped with it.
    SLOT (`encode_slot`): a slot just applied: its value's bytes as they
    were decided, and the commands of it not applied there (decided
    before: where; or expired). The client finds its commands in the
    value: the learner does no work per command for it.
    LOOKED_UP + i64 stamp + records: per request id, DECIDED (where), or
    UNKNOWN (not decided at or below `stamp`, a slot applied and durable
    here: the command may be stamped with it), or WATCHING (decided just
    now: an OUTCOMES frame follows).
    OUTCOMES + records (`encode_outcomes`): for each watched request id,
    the *position* where it was first decided (slot, and index of the
    command in that slot's value), or that it expired.
    REPLY + JSON: the answer to a QUERY.

Positions. A slot decides a batch of commands, so a command's position is
the pair (slot, index in the slot's value): unique, totally ordered
(by slot, then index) and the same on every learner, since every learner
decides the same values. A request id decided more than once (a retry)
keeps the position of its first decision; the later copies are not
applied. Text form: "SLOT.INDEX" (e.g. 7.0, 7.1); compare as pairs.

Exactly-once rests on the learners' durable request index, not on any
client or supervisor memory: a WATCH for a request id applied long ago
is answered from that index (with the first position), so a retry after
any restart gets the first answer. The digest of the first decided
payload lets the client tell "decided with my value" from "this request
id was decided with another value" (`request_id_conflict`).

All integers little-endian. Every decoder raises `WireError` on bytes that
are not exactly a well-formed frame body, nothing else.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Iterable, NamedTuple

from ..core.commands import BatchError, Command, Value

# client -> agent
PROPOSE = b"P"
WATCH = b"W"
QUERY = b"Q"
SUBSCRIBE = b"S"
LOOKUP = b"K"
# agent -> client
LEADER = b"L"
OUTCOMES = b"O"
REPLY = b"R"
SUBSCRIBED = b"s"
LOOKED_UP = b"k"
SLOT = b"A"
CUT = b"X"  # agent -> client: fell behind past the bound; disconnected (JSON body)

#: Outcome statuses.
DECIDED = 0
EXPIRED = 1  # refused: issued before the log learners retain (see Learner)
NOT_RETAINED = 2  # decided at a slot learners no longer keep: its value cannot be compared
TOO_LARGE = 3  # refused by the proposer: over [paxos] max_value_bytes (slot: the limit)
CONFLICT = 4  # refused by the proposer: the request id is in flight there with another value
UNKNOWN = 5  # LOOKUP: not decided at or below the stamp
WATCHING = 6  # LOOKUP: decided this moment; its OUTCOMES follows

_OUTCOME = struct.Struct("<BqI8sH")  # status, slot, index, digest, request id length
_SLOT = struct.Struct("<qI")  # slot, skipped commands
_SKIPPED = struct.Struct("<IBqI8s")  # index, status, first slot, first index, digest
_I64 = struct.Struct("<q")
MAX_REQUEST_ID_BYTES = 1024


class WireError(ValueError):
    """Bytes that are not a well-formed client frame body."""


def digest(payload: bytes) -> bytes:
    """8 bytes that tell one payload from another (blake2b)."""
    return hashlib.blake2b(payload, digest_size=8).digest()


def encode_commands(commands: Iterable[Command]) -> bytes:
    """Commands as one PROPOSE body: the same layout as a slot's value
    (`Value`, struct of arrays), so a batch decodes in a few C calls."""
    return Value.of(tuple(commands)).data


def decode_commands(data: bytes) -> tuple[Command, ...]:
    """The commands of a PROPOSE body; `WireError` if malformed (or empty)."""
    try:
        commands = Value.from_bytes(bytes(data)).commands
    except BatchError as e:
        raise WireError(f"malformed command batch ({e})") from None
    if not commands:
        raise WireError("an empty command batch")
    return commands


def encode_ids(request_ids: Iterable[str]) -> bytes:
    """Request ids as a WATCH body: u16 length + UTF-8, back to back."""
    parts = []
    for rid in request_ids:
        raw = rid.encode()
        parts.append(struct.pack("<H", len(raw)))
        parts.append(raw)
    return b"".join(parts)


def decode_ids(data: bytes) -> list[str]:
    out = []
    at = 0
    end = len(data)
    try:
        while at < end:
            (size,) = struct.unpack_from("<H", data, at)
            at += 2
            if at + size > end or not size:
                raise WireError("truncated or empty request id")
            out.append(data[at:at + size].decode())
            at += size
    except (struct.error, UnicodeDecodeError):
        raise WireError("malformed request id list") from None
    return out


class Outcome(NamedTuple):
    """Where a watched request id stands (see the module doc, "Positions")."""

    request_id: str
    status: int
    slot: int
    index: int
    digest: bytes


def encode_outcomes(outcomes: Iterable[Outcome]) -> bytes:
    pack = _OUTCOME.pack
    parts = []
    for o in outcomes:
        raw = o.request_id.encode()
        parts.append(pack(o.status, o.slot, o.index, o.digest, len(raw)))
        parts.append(raw)
    return b"".join(parts)


def decode_outcomes(data: bytes) -> list[Outcome]:
    out = []
    at = 0
    end = len(data)
    size = _OUTCOME.size
    try:
        while at < end:
            status, slot, index, dig, n = _OUTCOME.unpack_from(data, at)
            at += size
            if at + n > end:
                raise WireError("truncated outcome")
            out.append(Outcome(data[at:at + n].decode(), status, slot, index, dig))
            at += n
    except (struct.error, UnicodeDecodeError):
        raise WireError("malformed outcomes") from None
    return out


class Skipped(NamedTuple):
    """A command of an applied slot that was skipped, not applied there:
    `status` DECIDED (its request id was first decided at `slot`.`index`,
    whose payload has `digest`), NOT_RETAINED (first decided at `slot`, no
    longer kept), or EXPIRED."""

    status: int
    slot: int
    index: int
    digest: bytes


def encode_subscribed(slot: int) -> bytes:
    return SUBSCRIBED + _I64.pack(slot)


def decode_subscribed(body: bytes) -> int:
    try:
        return _I64.unpack(body)[0]
    except struct.error:
        raise WireError("malformed SUBSCRIBED") from None


def encode_slot(slot: int, skipped: dict[int, Skipped], value: bytes) -> bytes:
    """A SLOT frame: the slot, its skipped commands by index, the value's bytes."""
    parts = [SLOT, _SLOT.pack(slot, len(skipped))]
    pack = _SKIPPED.pack
    for index, e in skipped.items():
        parts.append(pack(index, e.status, e.slot, e.index, e.digest))
    parts.append(value)
    return b"".join(parts)


def decode_slot(body: bytes) -> tuple[int, dict[int, Skipped], bytes]:
    """(slot, skipped commands by index, value bytes) of a SLOT frame's body."""
    try:
        slot, n = _SLOT.unpack_from(body)
        at = _SLOT.size
        skipped = {}
        for _ in range(n):
            index, status, first, first_index, dig = _SKIPPED.unpack_from(body, at)
            at += _SKIPPED.size
            skipped[index] = Skipped(status, first, first_index, dig)
    except struct.error:
        raise WireError("malformed SLOT frame") from None
    return slot, skipped, body[at:]


def encode_looked_up(stamp: int, outcomes: Iterable[Outcome]) -> bytes:
    return LOOKED_UP + _I64.pack(stamp) + encode_outcomes(outcomes)


def decode_looked_up(body: bytes) -> tuple[int, list[Outcome]]:
    try:
        (stamp,) = _I64.unpack_from(body)
    except struct.error:
        raise WireError("malformed LOOKED_UP") from None
    return stamp, decode_outcomes(body[_I64.size:])
