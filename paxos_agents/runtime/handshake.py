"""The HELLO that opens every data-path connection, parsed with bounds.

A HELLO is the first frame of a connection (see `transport`): a flat JSON
object naming the protocol, the cluster, the sender (a member's name, or
"client") with its incarnation, and the receiver's name. It arrives before
anything is authenticated, so `parse_hello` trusts nothing: the frame is at
most `frames.HANDSHAKE_FRAME_BYTES` (the reader refuses a longer one by its
length prefix), JSON nested too deep, non-objects, values that are not flat
scalars, strings too long and numbers out of range are all refused with
`HandshakeError`, never another exception.

An agent whose store is new (not admitted yet: runtime/admission.py) says
so with `"fresh": true`; the receiver's WELCOME then tells it what the
receiver knows of it (`Welcome`: the newest incarnation it welcomed from
the sender, 0 for never; whether it has anything decided or voted; whether
the sender's name was added by a change). The fields are additive: the
protocol number stays 1, and an agent that sends none is not fresh.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from . import frames
from .ratelog import clip

#: The handshake's protocol number; a peer speaking another one is refused.
PROTOCOL = 1
#: The sender name of a client connection.
CLIENT = "client"
#: Characters of a member name (sender, receiver) at most; member names are
#: group names with an index, far shorter.
MAX_NAME_CHARS = 128
#: Characters of a cluster id at most.
MAX_CLUSTER_CHARS = 256
#: Incarnations are counted from 0 (clients) or 1 (agents) and fit in an i64.
MAX_INCARNATION = 2**63


class HandshakeError(ValueError):
    """The first frame is not a HELLO this agent can read (the text says why)."""


@dataclass(frozen=True, slots=True)
class Hello:
    """A parsed HELLO: who connects (`sender`, `incarnation`) to whom (`receiver`)."""

    cluster: str
    sender: str
    incarnation: int
    receiver: str
    #: The sender's store is new and not admitted yet: it asks, it sends no protocol message.
    fresh: bool = False
    #: The sender's connection number for this receiver (0: it sent none).
    generation: int = 0


@dataclass(frozen=True, slots=True)
class Welcome:
    """A peer's WELCOME as the dialler reads it: the peer's `incarnation`
    and, answering a fresh HELLO, what it knows of the dialler:
    `welcomed` (the newest incarnation it welcomed from it, 0: never),
    `decided` (it has a decided slot or a vote), `added` (the dialler's name
    was added by a change: not in the peer's initial membership, or an
    epoch of its configuration history added it)."""

    incarnation: int
    welcomed: int = 0
    decided: bool = False
    added: bool = False
    #: The dialler's name was retired by a replace: it never takes part again.
    retired: bool = False


def hello(cluster_id: str, sender: str, incarnation: int, receiver: str,
          fresh: bool = False, generation: int = 0) -> bytes:
    """The first frame of a connection (unframed JSON body); `generation`
    is sent when above 0."""
    body: dict[str, object] = {"paxos": PROTOCOL, "cluster": cluster_id, "from": sender,
                               "incarnation": incarnation, "to": receiver}
    if fresh:
        body["fresh"] = True
    if generation:
        body["generation"] = generation
    return json.dumps(body, separators=(",", ":")).encode()


def parse_hello(frame: bytes) -> Hello:
    """The HELLO `frame` holds; raises `HandshakeError` for anything else."""
    if len(frame) > frames.HANDSHAKE_FRAME_BYTES:
        raise HandshakeError(f"a handshake of {len(frame)} bytes (at most "
                             f"{frames.HANDSHAKE_FRAME_BYTES})")
    try:
        obj = json.loads(frame)
    except RecursionError:
        raise HandshakeError("not a paxosctl handshake: JSON nested too deep") from None
    except ValueError:  # JSON, UTF-8, and ints too long to convert
        raise HandshakeError("not a paxosctl handshake: not JSON") from None
    if type(obj) is not dict:
        raise HandshakeError("not a paxosctl handshake: not a JSON object")
    for key, value in obj.items():
        if not (value is None or type(value) in (str, int, bool, float)):
            raise HandshakeError(f"not a paxosctl handshake: field {clip(key)} is not a "
                                 "string or a number")
    if type(obj.get("paxos")) is not int or obj["paxos"] != PROTOCOL:
        raise HandshakeError(f"not a paxosctl handshake (or another protocol version): "
                             f"paxos is {clip(obj.get('paxos'))}, this agent speaks {PROTOCOL}")
    cluster = _text(obj, "cluster", MAX_CLUSTER_CHARS, empty=True)
    sender = _text(obj, "from", MAX_NAME_CHARS)
    receiver = _text(obj, "to", MAX_NAME_CHARS)
    incarnation = obj.get("incarnation")
    if type(incarnation) is not int or not 0 <= incarnation < MAX_INCARNATION:
        raise HandshakeError(f"incarnation must be an integer from 0 to 2**63-1, "
                             f"got {clip(incarnation)}")
    fresh = obj.get("fresh", False)
    if type(fresh) is not bool:
        raise HandshakeError(f'"fresh" must be true or false, got {clip(fresh)}')
    generation = obj.get("generation", 0)
    if type(generation) is not int or not 0 <= generation < MAX_INCARNATION:
        raise HandshakeError(f"generation must be an integer from 0 to 2**63-1, "
                             f"got {clip(generation)}")
    return Hello(cluster, sender, incarnation, receiver, fresh, generation)


def parse_welcome(frame: bytes) -> Welcome | None:
    """The `Welcome` a WELCOME frame's body holds (after the kind byte);
    None if it is not one this agent can read. Fields it does not carry
    take their defaults; numbers out of range make it unreadable."""
    if len(frame) > frames.HANDSHAKE_FRAME_BYTES:
        return None
    try:
        body = json.loads(frame)
    except (ValueError, RecursionError):
        return None
    if type(body) is not dict:
        return None
    numbers = [body.get("incarnation"), body.get("welcomed", 0)]
    if any(type(n) is not int or not 0 <= n < MAX_INCARNATION for n in numbers):
        return None
    decided, added = body.get("decided", False), body.get("added", False)
    retired = body.get("retired", False)
    if type(decided) is not bool or type(added) is not bool or type(retired) is not bool:
        return None
    return Welcome(numbers[0], numbers[1], decided, added, retired)


def _text(obj: dict, key: str, limit: int, empty: bool = False) -> str:
    value = obj.get(key)
    if type(value) is not str or len(value) > limit or (not value and not empty):
        raise HandshakeError(f'"{key}" must be a string of {0 if empty else 1} to {limit} '
                             f"characters, got {clip(value)}")
    return value
