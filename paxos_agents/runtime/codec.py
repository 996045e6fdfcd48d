"""Messages to bytes and back, for the queues between agents and the supervisor.

Wire format (version 2): the UTF-8 bytes of compact JSON holding one list,

    [1, TYPE, src, dst, ...fields in dataclass order]

where TYPE is the class name ("Accept", "Promise", ...) and

- a ballot is `[round, node_id]`,
- a command is `[request_id, payload]`, or `[request_id, payload, issued]`
  when it carries an issue stamp (state files written by version 1 hold
  the two-element form, which still decodes, with `issued` -1),
- a value is a list of commands (`[]` is the no-op),
- a vote is `[slot, ballot, value]`.

For example `Accept(src="p1", dst="a2", ballot=Ballot(3, "p1"), slot=7,
value=(Command("r1", "x"),))` is `[2,"Accept","p1","a2",[3,"p1"],7,[["r1","x"]]]`.

Each type has a hand-written encoder and decoder in the tables below rather
than generic dataclass reflection: this runs once per message per hop.
Adding a message type means adding a row to both tables; importing this
module fails if a type in `MESSAGE_TYPES` has none.

`decode` trusts nothing: any input that is not exactly a version-2 message
raises `CodecError`, never a raw `KeyError`/`IndexError`/`TypeError`.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from paxos_agents.core.commands import Command, Value
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

__all__ = [
    "VERSION",
    "CodecError",
    "encode",
    "decode",
    "encode_value",
    "decode_value",
]

#: The wire format version; the first element of every encoded message.
VERSION = 2


class CodecError(ValueError):
    """Bytes (or text) that are not a well-formed message or value of this version."""


# ensure_ascii (the default) keeps the output pure ASCII: any Python str,
# lone surrogates included, survives the round trip, and the text can be
# stored in SQLite (which rejects unencodable strings) without a second
# escaping scheme. The cost is 6 bytes per non-ASCII character; payloads are
# mostly ASCII. check_circular=False: our lists are built fresh and acyclic.
_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)
_DECODER = json.JSONDecoder()


# --- field helpers -----------------------------------------------------------
# Decoders check exact types (`type(x) is int` also rejects JSON true/false,
# which Python treats as ints) because dataclasses do not check them and a
# wrong-typed field would fail far from here, inside the protocol core.


def _str(obj: Any, what: str) -> str:
    if type(obj) is not str:
        raise CodecError(f"{what} must be a string, got {obj!r:.60}")
    return obj


def _int(obj: Any, what: str) -> int:
    if type(obj) is not int:
        raise CodecError(f"{what} must be an integer, got {obj!r:.60}")
    return obj


def _enc_ballot(ballot: Ballot) -> list:
    return [ballot.round, ballot.node_id]


def _dec_ballot(obj: Any) -> Ballot:
    if type(obj) is not list or len(obj) != 2:
        raise CodecError(f"ballot must be [round, node_id], got {obj!r:.60}")
    round_, node = obj
    return Ballot(_int(round_, "ballot round"), _str(node, "ballot node_id"))


def _enc_command(command: Command) -> list:
    if command.issued == -1:
        return [command.request_id, command.payload]
    return [command.request_id, command.payload, command.issued]


def _dec_command(obj: Any) -> Command:
    if type(obj) is not list or not 2 <= len(obj) <= 3:
        raise CodecError(f"command must be [request_id, payload(, issued)], got {obj!r:.60}")
    request_id, payload = obj[0], obj[1]
    if type(request_id) is not str or type(payload) is not str:
        raise CodecError(f"command fields must be strings, got {obj!r:.60}")
    if len(obj) == 2:
        return Command(request_id, payload)
    issued = obj[2]
    if type(issued) is not int or issued < -1:
        raise CodecError(f"command issued must be an integer >= -1, got {issued!r:.20}")
    return Command(request_id, payload, issued)


def _enc_value(value: Value) -> list:
    return [_enc_command(c) for c in value]


def _dec_value(obj: Any) -> Value:
    if type(obj) is not list:
        raise CodecError(f"value must be a list of commands, got {obj!r:.60}")
    return tuple([_dec_command(item) for item in obj])


def _enc_vote(vote: Vote) -> list:
    return [vote.slot, [vote.ballot.round, vote.ballot.node_id], _enc_value(vote.value)]


def _dec_vote(obj: Any) -> Vote:
    if type(obj) is not list or len(obj) != 3:
        raise CodecError(f"vote must be [slot, ballot, value], got {obj!r:.60}")
    slot, ballot, value = obj
    return Vote(_int(slot, "vote slot"), _dec_ballot(ballot), _dec_value(value))


def _dec_votes(obj: Any) -> tuple[Vote, ...]:
    if type(obj) is not list:
        raise CodecError(f"votes must be a list, got {obj!r:.60}")
    return tuple([_dec_vote(item) for item in obj])


# --- per-type tables ---------------------------------------------------------
# An encoder returns the list after [VERSION, TYPE]; a decoder gets that
# same tail (exact length checked by unpacking) and builds the message.

_ENCODERS: dict[type, Callable[[Any], list]] = {
    Prepare: lambda m: [m.src, m.dst, _enc_ballot(m.ballot), m.first_slot],
    Promise: lambda m: [
        m.src, m.dst, _enc_ballot(m.ballot), m.first_slot, [_enc_vote(v) for v in m.votes],
        m.compacted,
    ],
    Accept: lambda m: [m.src, m.dst, _enc_ballot(m.ballot), m.slot, _enc_value(m.value)],
    Accepted: lambda m: [m.src, m.dst, _enc_ballot(m.ballot), m.slot, _enc_value(m.value)],
    Nack: lambda m: [m.src, m.dst, _enc_ballot(m.ballot), _enc_ballot(m.promised), m.compacted],
    Decide: lambda m: [m.src, m.dst, m.slot, _enc_value(m.value)],
    Heartbeat: lambda m: [
        m.src, m.dst, _enc_ballot(m.ballot), m.highest_slot, m.decided_up_to
    ],
    Retry: lambda m: [m.src, m.dst, m.slot],
    Stored: lambda m: [m.src, m.dst, m.upto],
    Fetch: lambda m: [m.src, m.dst, m.first_slot],
    Chunk: lambda m: [
        m.src, m.dst, m.asked, m.first_slot,
        [[slot, _enc_value(value)] for slot, value in m.decisions],
        [[rid, slot] for rid, slot in m.first_slots],
    ],
    ClientRequest: lambda m: [m.src, m.dst, _enc_command(m.command)],
}


def _d_prepare(f: list) -> Prepare:
    src, dst, ballot, first_slot = f
    return Prepare(src=_str(src, "src"), dst=_str(dst, "dst"), ballot=_dec_ballot(ballot),
                   first_slot=_int(first_slot, "first_slot"))


def _d_promise(f: list) -> Promise:
    src, dst, ballot, first_slot, votes, compacted = f
    return Promise(src=_str(src, "src"), dst=_str(dst, "dst"), ballot=_dec_ballot(ballot),
                   first_slot=_int(first_slot, "first_slot"), votes=_dec_votes(votes),
                   compacted=_int(compacted, "compacted"))


def _d_accept(f: list) -> Accept:
    src, dst, ballot, slot, value = f
    return Accept(src=_str(src, "src"), dst=_str(dst, "dst"), ballot=_dec_ballot(ballot),
                  slot=_int(slot, "slot"), value=_dec_value(value))


def _d_accepted(f: list) -> Accepted:
    src, dst, ballot, slot, value = f
    return Accepted(src=_str(src, "src"), dst=_str(dst, "dst"), ballot=_dec_ballot(ballot),
                    slot=_int(slot, "slot"), value=_dec_value(value))


def _d_nack(f: list) -> Nack:
    src, dst, ballot, promised, compacted = f
    return Nack(src=_str(src, "src"), dst=_str(dst, "dst"), ballot=_dec_ballot(ballot),
                promised=_dec_ballot(promised), compacted=_int(compacted, "compacted"))


def _d_decide(f: list) -> Decide:
    src, dst, slot, value = f
    return Decide(src=_str(src, "src"), dst=_str(dst, "dst"), slot=_int(slot, "slot"),
                  value=_dec_value(value))


def _d_heartbeat(f: list) -> Heartbeat:
    src, dst, ballot, highest_slot, decided_up_to = f
    return Heartbeat(src=_str(src, "src"), dst=_str(dst, "dst"), ballot=_dec_ballot(ballot),
                     highest_slot=_int(highest_slot, "highest_slot"),
                     decided_up_to=_int(decided_up_to, "decided_up_to"))


def _d_retry(f: list) -> Retry:
    src, dst, slot = f
    return Retry(src=_str(src, "src"), dst=_str(dst, "dst"), slot=_int(slot, "slot"))


def _d_stored(f: list) -> Stored:
    src, dst, upto = f
    return Stored(src=_str(src, "src"), dst=_str(dst, "dst"), upto=_int(upto, "upto"))


def _d_fetch(f: list) -> Fetch:
    src, dst, first_slot = f
    return Fetch(src=_str(src, "src"), dst=_str(dst, "dst"),
                 first_slot=_int(first_slot, "first_slot"))


def _dec_pair(obj: Any, what: str) -> list:
    if type(obj) is not list or len(obj) != 2:
        raise CodecError(f"{what} must be a pair, got {obj!r:.60}")
    return obj


def _d_chunk(f: list) -> Chunk:
    src, dst, asked, first_slot, decisions, first_slots = f
    if type(decisions) is not list or type(first_slots) is not list:
        raise CodecError("chunk decisions and first_slots must be lists")
    pairs = [_dec_pair(d, "decision") for d in decisions]
    firsts = [_dec_pair(r, "first slot") for r in first_slots]
    return Chunk(src=_str(src, "src"), dst=_str(dst, "dst"), asked=_int(asked, "asked"),
                 first_slot=_int(first_slot, "first_slot"),
                 decisions=tuple((_int(s, "slot"), _dec_value(v)) for s, v in pairs),
                 first_slots=tuple((_str(r, "request_id"), _int(s, "slot")) for r, s in firsts))


def _d_client_request(f: list) -> ClientRequest:
    src, dst, command = f
    return ClientRequest(src=_str(src, "src"), dst=_str(dst, "dst"),
                         command=_dec_command(command))


_DECODERS: dict[str, Callable[[list], Any]] = {
    "Prepare": _d_prepare,
    "Promise": _d_promise,
    "Accept": _d_accept,
    "Accepted": _d_accepted,
    "Nack": _d_nack,
    "Decide": _d_decide,
    "Heartbeat": _d_heartbeat,
    "Retry": _d_retry,
    "Stored": _d_stored,
    "Fetch": _d_fetch,
    "Chunk": _d_chunk,
    "ClientRequest": _d_client_request,
}

# Fail at import, not at the first message of a new type, if a table lags
# behind `MESSAGE_TYPES`.
_missing = {t.__name__ for t in MESSAGE_TYPES} ^ set(_DECODERS)
_missing |= {t.__name__ for t in MESSAGE_TYPES} ^ {t.__name__ for t in _ENCODERS}
if _missing:  # pragma: no cover - a development-time error
    raise ImportError(f"codec tables out of step with MESSAGE_TYPES: {sorted(_missing)}")
del _missing

_NAMES: dict[type, str] = {t: t.__name__ for t in _ENCODERS}


# --- public API --------------------------------------------------------------


def encode(msg: Message) -> bytes:
    """The wire bytes of `msg` (ASCII-only compact JSON, see the module doc).

    Raises `CodecError` if `msg` is not an instance of a type in `MESSAGE_TYPES`.
    Field types are not checked here (the core builds messages); a message
    with wrong-typed fields encodes but will not decode.
    """
    cls = type(msg)
    encoder = _ENCODERS.get(cls)
    if encoder is None:
        raise CodecError(f"cannot encode {cls.__name__}: not a message type")
    return _ENCODER.encode([VERSION, _NAMES[cls], *encoder(msg)]).encode("ascii")


def decode(data: bytes) -> Message:
    """The message `data` encodes; `decode(encode(m)) == m` for every message.

    Raises `CodecError` (a `ValueError`) if `data` is not UTF-8 JSON, is not a
    list `[version, type, ...]`, has a version other than `VERSION`, names
    an unknown type, or has a missing, extra or wrong-typed field.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    try:
        obj = _DECODER.decode(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError, JSONDecodeError
        raise CodecError(f"not a message: invalid JSON ({exc})") from None
    if type(obj) is not list or len(obj) < 2:
        raise CodecError(f"not a message: expected [version, type, ...], got {obj!r:.80}")
    version = obj[0]
    if type(version) is not int or version != VERSION:
        raise CodecError(f"unknown codec version {version!r:.20}; this paxosctl speaks {VERSION}")
    name = obj[1]
    decoder = _DECODERS.get(name) if type(name) is str else None
    if decoder is None:
        raise CodecError(f"unknown message type {name!r:.40}")
    try:
        return decoder(obj[2:])
    except CodecError as exc:
        raise CodecError(f"malformed {name} message: {exc}") from None
    except (ValueError, TypeError):
        # Unpacking a tail of the wrong length (ValueError) or a non-list.
        raise CodecError(
            f"malformed {name} message: wrong number of fields ({len(obj) - 2})"
        ) from None


def encode_value(value: Value) -> str:
    """The JSON text of a value: a list of commands as on the wire (ASCII only)."""
    return _ENCODER.encode(_enc_value(value))


def decode_value(text: str) -> Value:
    """The value `text` encodes; raises `CodecError` if it is not one."""
    if type(text) is not str:
        raise CodecError(f"expected a JSON string, got {type(text).__name__}")
    try:
        obj = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise CodecError(f"not a value: invalid JSON ({exc})") from None
    return _dec_value(obj)
