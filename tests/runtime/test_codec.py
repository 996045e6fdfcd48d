"""The message codec (version 3, binary): every message type round-trips;
any bytes that are not exactly one message raise CodecError, nothing else."""

from __future__ import annotations

import dataclasses
import re
import struct
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paxos_agents.core import messages as messages_module
from paxos_agents.core.commands import NOOP, Command, Value
from paxos_agents.core.configs import History
from paxos_agents.core.ids import Ballot
from paxos_agents.core.messages import (
    MESSAGE_TYPES,
    Accept,
    ClientRequest,
    Decide,
    Heartbeat,
    Nack,
    Prepare,
    Promise,
    Retry,
    Stored,
    Vote,
)
from paxos_agents.runtime.codec import TYPE_CODES, VERSION, CodecError, decode, encode

# --- strategies built from the dataclasses -----------------------------------

# Any str that has a UTF-8 encoding (NUL and astral characters included;
# lone surrogates have none, and the core never holds one).
texts = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12)
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)  # i64 on the wire
ballots = st.builds(Ballot, ints, texts)
commands = st.builds(Command, texts, st.binary(max_size=12), st.integers(-1, 2**63 - 1))
values = st.lists(commands, max_size=4).map(Value.of)
votes = st.builds(Vote, ints, ballots, values)

# By annotated field type, so a new message type whose fields use these
# types needs no change here, and one with a new field type fails loudly.
_FIELD_STRATEGIES: dict[object, st.SearchStrategy] = {
    str: texts,
    int: ints,
    Ballot: ballots,
    Command: commands,
    Value: values,
    tuple[Vote, ...]: st.lists(votes, max_size=3).map(tuple),
    tuple[tuple[int, Value], ...]: st.lists(st.tuples(ints, values), max_size=3).map(tuple),
    tuple[tuple[str, int], ...]: st.lists(st.tuples(texts, ints), max_size=3).map(tuple),
    History | None: st.none() | st.builds(
        lambda alpha, known, names: History.initial(alpha, names).with_known(known),
        st.integers(1, 2**20), st.integers(0, 2**62),
        st.lists(texts.filter(bool), min_size=1, max_size=3, unique=True)),
}


def message_strategy(cls: type) -> st.SearchStrategy:
    hints = typing.get_type_hints(cls, vars(messages_module))
    return st.builds(
        cls, **{f.name: _FIELD_STRATEGIES[hints[f.name]] for f in dataclasses.fields(cls)}
    )


any_message = st.one_of([message_strategy(cls) for cls in MESSAGE_TYPES])


# --- round trips ---------------------------------------------------------------


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=lambda c: c.__name__)
@given(data=st.data())
@settings(max_examples=150)
def test_every_message_type_round_trips(cls: type, data: st.DataObject) -> None:
    msg = data.draw(message_strategy(cls))
    wire = encode(msg)
    assert isinstance(wire, bytes)
    back = decode(wire)
    assert type(back) is cls
    assert back == msg
    assert wire[:2] == bytes([VERSION, TYPE_CODES[cls]])


def _str(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<H", len(raw)) + raw


def test_accept_wire_bytes_are_the_documented_layout() -> None:
    value = Value.of([Command("r1", b"x")])
    msg = Accept(src="p1", dst="a2", ballot=Ballot(3, "p1"), slot=7, value=value)
    assert encode(msg) == (bytes([3, 3]) + _str("p1") + _str("a2") + struct.pack("<q", 3)
                           + _str("p1") + struct.pack("<q", 7)
                           + struct.pack("<I", len(value.data)) + value.data)
    vote = Promise(src="a", dst="p", ballot=Ballot(1, "p"), first_slot=0,
                   votes=(Vote(0, Ballot(1, "p"), NOOP),))
    assert encode(vote) == (bytes([3, 2]) + _str("a") + _str("p") + struct.pack("<q", 1) + _str("p")
                            + struct.pack("<qIq", 0, 1, 0) + struct.pack("<q", 1) + _str("p")
                            + struct.pack("<I", 0) + struct.pack("<q", 0))


def test_values_pass_through_undecoded() -> None:
    """The codec copies a value's bytes and never parses them: an acceptor
    relays what it got even if it is no batch at all (learners refuse it)."""
    opaque = Value.from_bytes(b"\x07not a batch")
    msg = Accept(src="p1", dst="a1", ballot=Ballot(1, "p1"), slot=0, value=opaque)
    assert decode(encode(msg)).value.data == opaque.data


EXAMPLES = [
    Accept(src="p1", dst="a1", ballot=Ballot(3, "p1"), slot=0, value=NOOP),
    Accept(src="p1", dst="a1", ballot=Ballot(3, "p1"), slot=7,
           value=Value.of([Command("r-é", "héllo wörld ✓ 🐙".encode()), Command("", b"")])),
    Decide(src="p1", dst="l1", slot=2, value=Value.of([Command("r\x00", b"nul\x00 \xed\xa0\x80 \xff")])),
    Promise(src="a1", dst="p1", ballot=Ballot(4, "p2"), first_slot=3, votes=()),
    Promise(src="a1", dst="p1", ballot=Ballot(4, "p2"), first_slot=3,
            votes=(Vote(3, Ballot(2, "p1"), NOOP), Vote(5, Ballot(3, "p1"), Value.of([Command("r", "ü".encode())])))),
    Nack(src="a1", dst="p1", ballot=Ballot(1, "p1"), promised=Ballot(0, "")),
    Heartbeat(src="p1", dst="l1", ballot=Ballot(9, "p1"), highest_slot=-1, decided_up_to=-1),
    Retry(src="l1", dst="p1", slot=2**63 - 1),
    Prepare(src="p2", dst="a3", ballot=Ballot(2**40, "p2"), first_slot=0),
    ClientRequest(src="client", dst="p1", command=Command("c-1", "日本語".encode(), 4)),
]


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: type(m).__name__)
def test_examples_round_trip(msg: object) -> None:
    assert decode(encode(msg)) == msg


def test_decode_accepts_bytearray() -> None:
    msg = Retry(src="l", dst="p", slot=1)
    assert decode(bytearray(encode(msg))) == msg


@pytest.mark.parametrize(
    "msg",
    [Retry(src="l", dst="p", slot=2**63), Retry(src="\ud800", dst="p", slot=1),
     Retry(src="x" * 65536, dst="p", slot=1), Prepare(src="p", dst="a", ballot=Ballot(-(2**63) - 1, "p"), first_slot=0),
     ClientRequest(src="c", dst="p", command=Command("r", "text, not bytes"))],  # type: ignore[arg-type]
    ids=["int-above-i64", "lone-surrogate", "string-too-long", "round-below-i64", "str-payload"],
)
def test_encode_refuses_what_the_format_cannot_carry(msg: object) -> None:
    with pytest.raises(CodecError, match="cannot encode"):
        encode(msg)


@pytest.mark.parametrize("obj", [Ballot(1, "p"), Command("r", b"x"), "Accept", None, NOOP])
def test_encode_rejects_non_messages(obj: object) -> None:
    with pytest.raises(CodecError, match="cannot encode"):
        encode(obj)  # type: ignore[arg-type]


# --- malformed input -------------------------------------------------------------

GOOD_ACCEPT = encode(Accept(src="p1", dst="a1", ballot=Ballot(3, "p1"), slot=7,
                            value=Value.of([Command("r1", b"x")])))
GOOD_PROMISE = encode(EXAMPLES[4])
GOOD_REQUEST = encode(EXAMPLES[-1])


def _at(data: bytes, offset: int, replacement: bytes) -> bytes:
    return data[:offset] + replacement + data[offset + len(replacement):]


MALFORMED = {
    "empty": (b"", "shorter than the header"),
    "one byte": (b"\x03", "shorter than the header"),
    "version 2 json": (b'[2,"Retry","l","p",1]', "unknown codec version 91"),
    "older version": (_at(GOOD_ACCEPT, 0, b"\x02"), "unknown codec version 2"),
    "newer version": (_at(GOOD_ACCEPT, 0, b"\x04"), "unknown codec version 4"),
    "type 0": (_at(GOOD_ACCEPT, 1, b"\x00"), "unknown message type code 0"),
    "type 255": (_at(GOOD_ACCEPT, 1, b"\xff"), "unknown message type code 255"),
    "header only": (GOOD_ACCEPT[:2], "malformed Accept message: cut short"),
    "cut in the value": (GOOD_ACCEPT[:-1], "malformed Accept message: a field of"),
    "trailing byte": (GOOD_ACCEPT + b"\x00", "malformed Accept message: 1 bytes left over"),
    "src not utf-8": (_at(GOOD_ACCEPT, 4, b"\xff"), "a string is not UTF-8"),
    "src length past the end": (_at(GOOD_ACCEPT, 2, b"\xff\xff"), "runs past the end"),
    "value length past the end": (_at(GOOD_ACCEPT, len(GOOD_ACCEPT) - len(Value.of([Command("r1", b"x")]).data) - 4,
                                      b"\xff\xff\xff\xff"), "runs past the end"),
    "vote count past the end": (_at(GOOD_PROMISE, 2 + 4 + 4 + 10 + 2 + 8, b"\xff\xff\xff\x0f"),
                                "a count of 268435455 items runs past the end"),
    "issued below -1": (GOOD_REQUEST[:-8] + struct.pack("<q", -2), "issued must be >= -1"),
}


@pytest.mark.parametrize("data, message", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_input_raises_codec_error(data: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=re.escape(message)):
        decode(data)


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: type(m).__name__)
def test_every_truncation_raises_codec_error(msg: object) -> None:
    wire = encode(msg)
    for end in range(len(wire)):
        with pytest.raises(CodecError):
            decode(wire[:end])


def test_codec_error_is_a_value_error() -> None:
    assert issubclass(CodecError, ValueError)


@pytest.mark.parametrize("data", ["[1]", None, memoryview(b"\x03\x08"), 5])
def test_decode_rejects_non_bytes(data: object) -> None:
    with pytest.raises(CodecError, match="expected bytes"):
        decode(data)  # type: ignore[arg-type]


@given(st.binary(max_size=64))
def test_random_bytes_raise_only_codec_error(data: bytes) -> None:
    try:
        decode(data)
    except CodecError:
        pass


@given(st.sampled_from(sorted(TYPE_CODES.values())), st.binary(max_size=96))
def test_random_bodies_decode_exactly_or_raise_codec_error(code: int, body: bytes) -> None:
    """Past a valid header, whatever decodes re-encodes to the same bytes."""
    data = bytes([VERSION, code]) + body
    try:
        msg = decode(data)
    except CodecError:
        return
    assert encode(msg) == data


@given(any_message, st.data())
def test_mutated_messages_decode_exactly_or_raise_codec_error(msg: object, data: st.DataObject) -> None:
    """Overwrite, insert or delete a few bytes anywhere in a valid encoding:
    decode either rejects it with CodecError or returns the message whose
    encoding is exactly the mutated bytes (nothing dropped or coerced)."""
    wire = bytearray(encode(msg))
    at = data.draw(st.integers(0, len(wire)))
    patch = data.draw(st.binary(min_size=1, max_size=4))
    match data.draw(st.sampled_from(["overwrite", "insert", "delete"])):
        case "overwrite":
            wire[at:at + len(patch)] = patch
        case "insert":
            wire[at:at] = patch
        case "delete":
            del wire[at:at + len(patch)]
    try:
        result = decode(bytes(wire))
    except CodecError:
        return
    assert encode(result) == bytes(wire)


def test_a_bad_configuration_history_is_a_codec_error() -> None:
    good = encode(Stored(src="l1", dst="p1", upto=3,
                         history=History.initial(4, ("a1",)).with_known(4)))
    assert decode(good).history.known == 4
    head = good[: good.index(b"[") - 4]  # everything before the history's length
    raw = b'[1,4,4,[]]'  # no configurations at all
    with pytest.raises(CodecError, match="malformed Stored message: bad configuration history"):
        decode(head + struct.pack("<I", len(raw)) + raw)
