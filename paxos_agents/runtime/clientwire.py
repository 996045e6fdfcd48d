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
    QUERY + JSON {"op": "decided", "from": slot, "limit": n}: a page of
    the log as JSON (values base64); kept for older clients.
    PAGE (`encode_page_query`): a page of the log, answered with PAGED.
operator -> any agent (admin frames; see clients.py for who may send them)
    ADMIN + JSON {"op": "members", "version": n, "proposers", "acceptors",
    "learners"} (the membership as a versioned record: refused unless n is
    newer than the agent's), {"op": "reconfig", "acceptors": [...]}
    (propose the next configuration), or {"op": "chaos", "settings":
    {...}} (`ChaosSettings`). Answered with REPLY + JSON {"ok": true, "op"}
    or {"error": one line, "code": "forbidden" | "refused" | "bad_request"}.
client or operator -> any agent (read-only; see queries.py)
    INFO + JSON {"op": "describe" | "events" | "logs", "since": seq}:
    answered with REPLY + JSON {"ok": true, "op", ...}.
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
    REPLY + JSON: the answer to a QUERY; or an error (a refused frame).
    PAGED (`encode_page`): a page of the applied log, whole slots as they
    are stored (each slot's value bytes, and the indexes of its commands
    not first decided there): the learner does no work per command beyond
    that; the client decodes the values.
    CUT + JSON {"reason", "applied"}: the client fell behind past the
    bound on its unsent output; the learner closes the connection next.

Limits (a frame over them is refused with an error REPLY, not served):
a WATCH or LOOKUP frame holds at most `MAX_IDS_PER_FRAME` request ids
(clients split longer lists); a page holds at most `MAX_PAGE_ENTRIES`
entries and about `PAGE_BYTES` of value bytes (whole slots, at least one),
so it always fits a frame.

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
PAGE = b"G"
ADMIN = b"!"  # operator -> agent: JSON {"op": ...}; see the module docstring
INFO = b"I"  # client or operator -> agent: a read-only question (queries.py)
# agent -> client
LEADER = b"L"
OUTCOMES = b"O"
REPLY = b"R"
SUBSCRIBED = b"s"
LOOKED_UP = b"k"
SLOT = b"A"
CUT = b"X"  # agent -> client: fell behind past the bound; disconnected (JSON body)
PAGED = b"g"

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
#: Request ids in one WATCH or LOOKUP frame at most: one frame's lookups
#: stay a few milliseconds of the learner's loop.
MAX_IDS_PER_FRAME = 4096
#: Entries in one page of the log at most (PAGE, and QUERY "decided").
MAX_PAGE_ENTRIES = 100_000
#: Bytes of stored values in one page, about: the page stops at the first
#: slot that reaches it (whole slots, at least one), so a page fits a frame
#: (frames.MAX_FRAME_BYTES) as long as one slot does.
PAGE_BYTES = 4 << 20

_PAGE_QUERY = struct.Struct("<qqI")  # query id, first slot (-1: the first retained), entries
_PAGE_HEAD = struct.Struct("<qBqqI")  # query id, status, decided_up_to, log_start, slots
_PAGE_SLOT = struct.Struct("<qII")  # slot, skipped commands, value bytes
#: PAGED statuses.
PAGE_OK = 0
PAGE_NOT_RETAINED = 1  # the first slot asked for is below the log retained (`log_start`)


class WireError(ValueError):
    """Bytes that are not a well-formed client frame body."""


class OverLimit(WireError):
    """A well-formed frame over one of the limits (see the module doc)."""


def digest(payload: bytes) -> bytes:
    """8 bytes that tell one payload from another (blake2b)."""
    return hashlib.blake2b(payload, digest_size=8).digest()


def encode_commands(commands: Iterable[Command]) -> bytes:
    """Commands as one PROPOSE body: the same layout as a slot's value
    (`Value`, struct of arrays), so a batch decodes in a few C calls."""
    return Value.of(tuple(commands)).data


def decode_batch(data: bytes) -> Value:
    """A PROPOSE body as the `Value` it encodes, its columns read and checked
    (no object per command); `WireError` if malformed (or empty)."""
    value = Value.from_bytes(data)
    try:
        if not len(value):
            raise WireError("an empty command batch")
    except BatchError as e:
        raise WireError(f"malformed command batch ({e})") from None
    return value


def encode_ids(request_ids: Iterable[str]) -> bytes:
    """Request ids as a WATCH body: u16 length + UTF-8, back to back."""
    parts = []
    for rid in request_ids:
        raw = rid.encode()
        parts.append(struct.pack("<H", len(raw)))
        parts.append(raw)
    return b"".join(parts)


def decode_ids(data: bytes, limit: int | None = None) -> list[str]:
    """The request ids of a WATCH or LOOKUP body; `WireError` if malformed,
    or if there are more than `limit` (found without reading past it)."""
    out = []
    at = 0
    end = len(data)
    try:
        while at < end:
            if limit is not None and len(out) >= limit:
                raise OverLimit(f"more than {limit} request ids in one frame "
                                f"(the limit; split the list over several frames)")
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


def split_ids(request_ids: list[str], kind: bytes) -> list[bytes]:
    """WATCH or LOOKUP (`kind`) frames for `request_ids`, `MAX_IDS_PER_FRAME` each."""
    return [kind + encode_ids(request_ids[i:i + MAX_IDS_PER_FRAME])
            for i in range(0, len(request_ids), MAX_IDS_PER_FRAME)]


def encode_page_query(query_id: int, start: int | None, limit: int) -> bytes:
    """A PAGE frame: up to `limit` entries of the log from slot `start`
    (None: the first retained), answered by a PAGED with `query_id`."""
    return PAGE + _PAGE_QUERY.pack(query_id, -1 if start is None else start, limit)


def decode_page_query(body: bytes) -> tuple[int, int | None, int]:
    """(query id, first slot or None, entries) of a PAGE frame's body."""
    try:
        query_id, start, limit = _PAGE_QUERY.unpack(body)
    except struct.error:
        raise WireError("malformed PAGE") from None
    if start < -1:
        raise WireError(f"PAGE: first slot {start}; expected a slot >= 0 (or -1: the first)")
    return query_id, None if start == -1 else start, limit


class PageSlot(NamedTuple):
    """One slot of a page: its value's bytes as decided, and the indexes of
    its commands that are not entries (decided first at an earlier slot,
    refused as expired, or a repeat within the slot)."""

    slot: int
    skipped: tuple[int, ...]
    value: bytes


class Page(NamedTuple):
    """A PAGED frame: the answer to PAGE `query_id`."""

    query_id: int
    status: int
    decided_up_to: int
    log_start: int
    slots: list[PageSlot]


def encode_page(query_id: int, status: int, decided_up_to: int, log_start: int,
                slots: list[PageSlot]) -> bytes:
    pack = _PAGE_SLOT.pack
    parts = [PAGED, _PAGE_HEAD.pack(query_id, status, decided_up_to, log_start, len(slots))]
    for s in slots:
        parts.append(pack(s.slot, len(s.skipped), len(s.value)))
        if s.skipped:
            parts.append(struct.pack(f"<{len(s.skipped)}I", *s.skipped))
        parts.append(s.value)
    return b"".join(parts)


def decode_page(body: bytes) -> Page:
    """The `Page` of a PAGED frame's body; `WireError` if malformed."""
    try:
        query_id, status, decided_up_to, log_start, n = _PAGE_HEAD.unpack_from(body)
        at = _PAGE_HEAD.size
        unpack = _PAGE_SLOT.unpack_from
        size = _PAGE_SLOT.size
        slots = []
        view = memoryview(body)
        for _ in range(n):
            slot, skipped, length = unpack(body, at)
            at += size
            indexes = struct.unpack_from(f"<{skipped}I", body, at) if skipped else ()
            at += 4 * skipped
            if at + length > len(body):
                raise WireError("truncated PAGED slot")
            slots.append(PageSlot(slot, indexes, bytes(view[at:at + length])))
            at += length
    except struct.error:
        raise WireError("malformed PAGED") from None
    if at != len(body):
        raise WireError("PAGED: bytes after the last slot")
    return Page(query_id, status, decided_up_to, log_start, slots)
