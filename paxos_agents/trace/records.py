"""What a protocol record holds: the one definition, for the agents and the simulator.

A record is what an agent keeps of one message it sent or received, or of
one slot its learner decided (runtime/protocolrecords.py keeps them in a
ring; the simulator in `sim.recording`). Two steps, so that the agents'
hot path makes no dict:

- `note(msg, digest, sent)`: the fields the message itself gives, as one
  tuple (`Note`), made when the message is sent or received;
- `record(...)`: the JSON-able dict a tool reads, made only when read.

The dict, as `paxosctl trace`, `top` and `ui` read it:

    {"seq", "agent", "incarnation", "dir": "send" | "recv" | "local",
     "kind": the message's lower-case class name, or "decided" (local),
     "peer": the other end (None for local), "ballot": "round.node" | None,
     "slots": [lo, hi] | None (prepare/promise/fetch: [first_slot, None]),
     "link": [sender, sender_incarnation, receiver, generation, n] | None,
     "mono", "at" (labels only: tools order by `link`, never by the clocks),
     optional: "value" (crc32 of the value's bytes, 8 hex digits) and
     "commands" (the value's): on an Accept where it is sent and on a
     Decide, "votes" (promise: [[slot, ballot, value],
     ...], the first `VOTES`), "promised" (nack), "dropped" (a send that
     never reached the receiver: "chaos", "overflow", "unreachable",
     "not_admitted", or "network" in the simulator)}

Where a value is named. A value's digest reads all its bytes, and an
agent's records run on every message (issue 25's cost bound), so a value
is named where it is first given: by the proposer that sends an Accept,
in a promise's votes, in a Decide. An Accept's receipt, an Accepted and a
learner's decision carry no digest: Paxos makes them the value of their
(slot, ballot) (one value per ballot and slot), and a decision the value
of the Decide its learner got, else of the highest ballot it heard an
Accepted in for the slot (Paxos Made Simple §2.2, P2c); the trace fills
them in from there (`trace.model`).

Pure: no clock, no I/O.
"""

from __future__ import annotations

import zlib
from typing import Any, Callable

from ..core.commands import Value
from ..core.messages import (Accept, Accepted, Chunk, Decide, Fetch, Heartbeat, Nack, Prepare,
                             Promise, Retry, Stored)

Record = dict[str, Any]

#: A message's own part of a record: (kind, ballot, lo, hi, value crc32 | None,
#: commands | None, extra), `extra` being a promise's votes ((slot, ballot,
#: crc32), ...) or a nack's promised ballot. Ballots are kept as `Ballot`s
#: (made text only when read).
Note = tuple

#: (slot, value) -> (crc32 of its bytes, its commands): how `note` names a
#: value (an agent's ring reuses one slot's digest for the copies it sees).
Digest = Callable[[int, Value], "tuple[int, int]"]

#: Votes a promise record lists at most (a promise may carry thousands).
VOTES = 16

#: Message kinds a record may have (lower-case class names), and the one local kind.
MESSAGE_KINDS = ("prepare", "promise", "accept", "accepted", "decide", "nack", "retry",
                 "heartbeat", "stored", "fetch", "chunk")
DECIDED = "decided"


def value_digest(slot: int, value: Value) -> tuple[int, int]:
    """(crc32 of `value`'s bytes, its commands): a `Digest` that keeps nothing."""
    data = value.data
    # The count leads a value's encoding (commands.Value.of's layout: a
    # little-endian u32 first; the no-op is empty).
    return zlib.crc32(data), int.from_bytes(data[:4], "little") if len(data) >= 4 else 0


def digest(value: Value) -> str:
    """A value's short name in a record: crc32 of its bytes as 8 hex digits."""
    return f"{zlib.crc32(value.data):08x}"


def note(msg: Any, digest: Digest = value_digest, sent: bool = True) -> Note:
    """The record fields `msg` itself gives (one tuple; see `Note`): a value
    named only where the module docstring says (an Accept `sent`)."""
    t = type(msg)
    if t is Accept or t is Accepted:
        slot = msg.slot
        if t is Accept and sent:
            crc, commands = digest(slot, msg.value)
            return ("accept", msg.ballot, slot, slot, crc, commands, None)
        return ("accept" if t is Accept else "accepted", msg.ballot, slot, slot, None, None,
                None)
    if t is Heartbeat:
        return ("heartbeat", msg.ballot, None, None, None, None, None)
    if t is Decide:
        slot = msg.slot
        crc, commands = digest(slot, msg.value)
        return ("decide", None, slot, slot, crc, commands, None)
    if t is Prepare:
        return ("prepare", msg.ballot, msg.first_slot, None, None, None, None)
    if t is Promise:
        votes = tuple((v.slot, v.ballot, digest(v.slot, v.value)[0]) for v in msg.votes[:VOTES])
        return ("promise", msg.ballot, msg.first_slot, None, None, None, votes)
    if t is Nack:
        return ("nack", msg.ballot, None, None, None, None, msg.promised)
    if t is Retry:
        return ("retry", None, msg.slot, msg.slot, None, None, None)
    if t is Fetch:
        return ("fetch", None, msg.first_slot, None, None, None, None)
    if t is Chunk:
        decisions = msg.decisions
        if decisions:
            return ("chunk", None, decisions[0][0], decisions[-1][0], None, None, None)
        return ("chunk", None, None, None, None, None, None)
    if t is Stored:
        return ("stored", None, msg.upto, msg.upto, None, None, None)
    return (t.__name__.lower(), getattr(msg, "ballot", None), None, None, None, None, None)


def decided_note(slot: int) -> Note:
    """The note of a learner deciding `slot` (a "local" record; its value is
    named by the slot's ballots: the module docstring)."""
    return (DECIDED, None, slot, slot, None, None, None)


def record(note: Note, *, seq: int, agent: str, incarnation: int, direction: str,
           peer: str | None, link: list | None, mono: float, at: float,
           dropped: str | None = None) -> Record:
    """The dict a tool reads (see the module docstring) of one noted record."""
    kind, ballot, lo, hi, crc, commands, extra = note
    item: Record = {
        "seq": seq, "agent": agent, "incarnation": incarnation, "dir": direction,
        "kind": kind, "peer": peer, "ballot": None if ballot is None else str(ballot),
        "slots": None if lo is None else [lo, hi], "link": link, "mono": mono, "at": at}
    if crc is not None:
        item["value"] = f"{crc:08x}"
        item["commands"] = commands
    if kind == "promise":
        item["votes"] = [[slot, str(b), f"{c:08x}"] for slot, b, c in extra]
    elif kind == "nack":
        item["promised"] = str(extra)
    if dropped:
        item["dropped"] = dropped
    return item
