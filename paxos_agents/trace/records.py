"""Protocol records built from core messages (the issue-25 record format).

A protocol record is a plain JSON-able dict (its fields are listed in
paxos_agents/runtime/protocolrecords.py, which keeps an agent's); this module turns one `Message` sent or
received, or one slot a learner decided, into that dict. Pure: no clock,
no I/O. The caller passes `mono`/`at` (labels only: the trace orders by
`link`, never by time) and the `link` that pairs a send with its receipt.

The simulator builds its records here; an agent's runtime may too.
"""

from __future__ import annotations

import zlib
from typing import Any

from ..core.commands import Value
from ..core.messages import (
    Accept,
    Accepted,
    Chunk,
    Decide,
    Fetch,
    Heartbeat,
    Message,
    Nack,
    Prepare,
    Promise,
    Retry,
    Stored,
)

Record = dict[str, Any]

#: Votes a promise record carries at most (a promise may carry thousands).
PROMISE_VOTES = 16

#: Message kinds a record may have (lower-case class names), and the one local kind.
MESSAGE_KINDS = ("prepare", "promise", "accept", "accepted", "decide", "nack", "retry",
                 "heartbeat", "stored", "fetch", "chunk")
DECIDED = "decided"


def digest(value: Value) -> str:
    """A value's short name: zlib.crc32 of its bytes as 8 hex digits."""
    return f"{zlib.crc32(value.data):08x}"


def message_fields(msg: Message) -> Record | None:
    """The kind-specific part of a record for `msg`: kind, ballot, slots and
    the optional fields; None for a message that is not recorded (a client
    request forwarded between proposers is not a protocol step)."""
    if isinstance(msg, (Accept, Accepted)):
        return {"kind": type(msg).__name__.lower(), "ballot": str(msg.ballot),
                "slots": [msg.slot, msg.slot], "value": digest(msg.value)}
    if isinstance(msg, Prepare):
        return {"kind": "prepare", "ballot": str(msg.ballot), "slots": [msg.first_slot, None]}
    if isinstance(msg, Promise):
        votes = [[v.slot, str(v.ballot), digest(v.value)] for v in msg.votes[:PROMISE_VOTES]]
        return {"kind": "promise", "ballot": str(msg.ballot), "slots": [msg.first_slot, None],
                "votes": votes}
    if isinstance(msg, Nack):
        return {"kind": "nack", "ballot": str(msg.ballot), "slots": None,
                "promised": str(msg.promised)}
    if isinstance(msg, Decide):
        return {"kind": "decide", "ballot": None, "slots": [msg.slot, msg.slot],
                "value": digest(msg.value)}
    if isinstance(msg, Retry):
        return {"kind": "retry", "ballot": None, "slots": [msg.slot, msg.slot]}
    if isinstance(msg, Heartbeat):
        return {"kind": "heartbeat", "ballot": str(msg.ballot), "slots": None}
    if isinstance(msg, Stored):
        return {"kind": "stored", "ballot": None, "slots": None}
    if isinstance(msg, Fetch):
        return {"kind": "fetch", "ballot": None, "slots": [msg.first_slot, None]}
    if isinstance(msg, Chunk):
        slots = [msg.decisions[0][0], msg.decisions[-1][0]] if msg.decisions else None
        return {"kind": "chunk", "ballot": None, "slots": slots}
    return None


def message_record(msg: Message, *, seq: int, agent: str, incarnation: int, direction: str,
                   link: list | None, mono: float, at: float,
                   dropped: str | None = None) -> Record | None:
    """The record of `agent` sending (`direction` "send") or receiving ("recv")
    `msg`; None if `msg` is not recorded (see `message_fields`)."""
    fields = message_fields(msg)
    if fields is None:
        return None
    record: Record = {"seq": seq, "agent": agent, "incarnation": incarnation,
                      "dir": direction, "peer": msg.dst if direction == "send" else msg.src,
                      "link": link, "mono": mono, "at": at}
    record.update(fields)
    if dropped:
        record["dropped"] = dropped
    return record


def decided_record(slot: int, value: Value, *, seq: int, agent: str, incarnation: int,
                   mono: float, at: float) -> Record:
    """The local record of learner `agent` deciding `value` in `slot`."""
    return {"seq": seq, "agent": agent, "incarnation": incarnation, "dir": "local",
            "kind": DECIDED, "peer": None, "ballot": None, "slots": [slot, slot],
            "link": None, "mono": mono, "at": at, "value": digest(value)}
