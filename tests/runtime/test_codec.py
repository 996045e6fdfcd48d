"""The message codec: every message type round-trips; bad bytes raise CodecError."""

from __future__ import annotations

import dataclasses
import json
import re
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paxos_agents.core import messages as messages_module
from paxos_agents.core.commands import NOOP, Command
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
    Vote,
)
from paxos_agents.runtime.codec import (
    VERSION,
    CodecError,
    decode,
    decode_value,
    encode,
    encode_value,
)

# --- strategies built from the dataclasses -----------------------------------

# Any str, lone surrogates and NUL included: the codec must carry whatever
# the core can hold.
texts = st.text(alphabet=st.characters(exclude_categories=()), max_size=12)
ints = st.integers(min_value=-(2**70), max_value=2**70)  # JSON ints are unbounded
ballots = st.builds(Ballot, ints, texts)
commands = st.builds(Command, texts, texts, st.integers(min_value=-1, max_value=2**70))
values = st.lists(commands, max_size=4).map(tuple)
votes = st.builds(Vote, ints, ballots, values)

# By annotated field type, so a new message type whose fields use these
# types needs no change here, and one with a new field type fails loudly.
_FIELD_STRATEGIES: dict[object, st.SearchStrategy] = {
    str: texts,
    int: ints,
    Ballot: ballots,
    Command: commands,
    tuple[Command, ...]: values,
    tuple[Vote, ...]: st.lists(votes, max_size=3).map(tuple),
    tuple[tuple[int, tuple[Command, ...]], ...]:
        st.lists(st.tuples(ints, values), max_size=3).map(tuple),
    tuple[tuple[str, int], ...]: st.lists(st.tuples(texts, ints), max_size=3).map(tuple),
}


def message_strategy(cls: type) -> st.SearchStrategy:
    hints = typing.get_type_hints(cls, vars(messages_module))
    return st.builds(
        cls, **{f.name: _FIELD_STRATEGIES[hints[f.name]] for f in dataclasses.fields(cls)}
    )


any_message = st.one_of([message_strategy(cls) for cls in MESSAGE_TYPES])


def json_bytes(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


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
    # Always ASCII, whatever the payload; so it also fits any text column.
    wire.decode("ascii")


@given(any_message)
def test_encoding_is_the_documented_list(msg: object) -> None:
    obj = json.loads(encode(msg))
    assert obj[:4] == [VERSION, type(msg).__name__, msg.src, msg.dst]
    assert len(obj) == 2 + len(dataclasses.fields(msg))
    # Compact: re-serialising with compact separators changes nothing.
    assert json_bytes(obj) == encode(msg)


EXAMPLES = [
    Accept(src="p1", dst="a1", ballot=Ballot(3, "p1"), slot=0, value=NOOP),
    Accept(src="p1", dst="a1", ballot=Ballot(3, "p1"), slot=7,
           value=(Command("r-é", "héllo wörld ✓ 🐙"), Command("", ""))),
    Decide(src="p1", dst="l1", slot=2, value=(Command("r\x00", "nul\x00 and \ud800 lone surrogate"),)),
    Promise(src="a1", dst="p1", ballot=Ballot(4, "p2"), first_slot=3, votes=()),
    Promise(src="a1", dst="p1", ballot=Ballot(4, "p2"), first_slot=3,
            votes=(Vote(3, Ballot(2, "p1"), NOOP), Vote(5, Ballot(3, "p1"), (Command("r", "ü"),)))),
    Nack(src="a1", dst="p1", ballot=Ballot(1, "p1"), promised=Ballot(0, "")),
    Heartbeat(src="p1", dst="l1", ballot=Ballot(9, "p1"), highest_slot=-1, decided_up_to=-1),
    Retry(src="l1", dst="p1", slot=2**64),
    Prepare(src="p2", dst="a3", ballot=Ballot(2**40, "p2"), first_slot=0),
    ClientRequest(src="client", dst="p1", command=Command("c-1", "日本語")),
]


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: type(m).__name__)
def test_examples_round_trip(msg: object) -> None:
    assert decode(encode(msg)) == msg


def test_accept_wire_bytes_are_stable() -> None:
    msg = Accept(src="p1", dst="a2", ballot=Ballot(3, "p1"), slot=7, value=(Command("r1", "x"),))
    assert encode(msg) == b'[2,"Accept","p1","a2",[3,"p1"],7,[["r1","x"]]]'
    vote = Promise(src="a", dst="p", ballot=Ballot(1, "p"), first_slot=0,
                   votes=(Vote(0, Ballot(1, "p"), ()),))
    assert encode(vote) == b'[2,"Promise","a","p",[1,"p"],0,[[0,[1,"p"],[]]],0]'


def test_decode_accepts_bytearray() -> None:
    msg = Retry(src="l", dst="p", slot=1)
    assert decode(bytearray(encode(msg))) == msg


@given(values)
def test_value_text_round_trips(value: tuple) -> None:
    text = encode_value(value)
    assert isinstance(text, str)
    text.encode("ascii")
    assert decode_value(text) == value


def test_noop_value_text() -> None:
    assert encode_value(NOOP) == "[]"
    assert decode_value("[]") == NOOP


# --- malformed input -------------------------------------------------------------

GOOD_ACCEPT = [2, "Accept", "p1", "a1", [3, "p1"], 7, [["r1", "x"]]]


def _with(index: int, item: object) -> bytes:
    obj = list(GOOD_ACCEPT)
    obj[index] = item
    return json_bytes(obj)


MALFORMED = {
    "empty": (b"", "invalid JSON"),
    "not json": (b"hello", "invalid JSON"),
    "not utf-8": (b'[2,"Retry","\xff","p",1]', "invalid JSON"),
    "trailing garbage": (json_bytes(GOOD_ACCEPT) + b"x", "invalid JSON"),
    "deep nesting": (b"[" * 100_000 + b"]" * 100_000, "invalid JSON"),
    "object": (b'{"version":1}', "expected [version, type"),
    "bare int": (b"1", "expected [version, type"),
    "empty list": (b"[]", "expected [version, type"),
    "version only": (b"[1]", "expected [version, type"),
    "newer version": (_with(0, 3), "unknown codec version 3"),
    "older version": (_with(0, 1), "unknown codec version 1"),
    "version as text": (_with(0, "2"), "unknown codec version"),
    "version true": (_with(0, True), "unknown codec version"),
    "version float": (_with(0, 2.0), "unknown codec version"),
    "unknown type": (_with(1, "Acept"), "unknown message type 'Acept'"),
    "type not text": (_with(1, 5), "unknown message type"),
    "type is a method name": (_with(1, "__class__"), "unknown message type"),
    "too few fields": (json_bytes(GOOD_ACCEPT[:-1]), "malformed Accept message: wrong number"),
    "too many fields": (json_bytes([*GOOD_ACCEPT, 1]), "malformed Accept message: wrong number"),
    "src not text": (_with(2, 1), "src must be a string"),
    "dst null": (_with(3, None), "dst must be a string"),
    "ballot not a list": (_with(4, "3.p1"), "ballot must be"),
    "ballot too short": (_with(4, [3]), "ballot must be"),
    "ballot round text": (_with(4, ["3", "p1"]), "ballot round must be an integer"),
    "ballot node int": (_with(4, [3, 1]), "ballot node_id must be a string"),
    "slot text": (_with(5, "7"), "slot must be an integer"),
    "slot bool": (_with(5, True), "slot must be an integer"),
    "slot float": (_with(5, 7.0), "slot must be an integer"),
    "slot NaN": (b'[2,"Accept","p1","a1",[3,"p1"],NaN,[]]', "slot must be an integer"),
    "value a string": (_with(6, "rx"), "value must be a list"),
    "value a flat list": (_with(6, ["r1", "x"]), "command must be"),
    "command too long": (_with(6, [["r1", "x", 1, "y"]]), "command must be"),
    "command int payload": (_with(6, [["r1", 1]]), "command fields must be strings"),
    "promise votes not a list": (json_bytes([2, "Promise", "a", "p", [1, "p"], 0, {}, 0]), "votes must be"),
    "vote too short": (json_bytes([2, "Promise", "a", "p", [1, "p"], 0, [[0, [1, "p"]]], 0]), "vote must be"),
    "client request command": (json_bytes([2, "ClientRequest", "c", "p", "payload"]), "command must be"),
}


@pytest.mark.parametrize("data, message", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_input_raises_codec_error(data: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=re.escape(message)):
        decode(data)


def test_codec_error_is_a_value_error() -> None:
    assert issubclass(CodecError, ValueError)


@pytest.mark.parametrize("data", ["[1]", None, memoryview(b"[]"), 5])
def test_decode_rejects_non_bytes(data: object) -> None:
    with pytest.raises(CodecError, match="expected bytes"):
        decode(data)  # type: ignore[arg-type]


@pytest.mark.parametrize("obj", [Ballot(1, "p"), Command("r", "x"), "Accept", None])
def test_encode_rejects_non_messages(obj: object) -> None:
    with pytest.raises(CodecError, match="cannot encode"):
        encode(obj)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "{}", "[[1]]", '[["a","b","c"]]', '"x"', "[[\"a\",2]]", "[" * 50_000])
def test_decode_value_rejects_malformed(text: str) -> None:
    with pytest.raises(CodecError):
        decode_value(text)


@given(st.binary(max_size=64))
def test_random_bytes_raise_only_codec_error(data: bytes) -> None:
    try:
        decode(data)
    except CodecError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=2),
    max_leaves=8,
)


@given(any_message, st.data())
def test_mutated_messages_decode_exactly_or_raise_codec_error(msg: object, data: st.DataObject) -> None:
    """Replace one element anywhere in a valid encoding with arbitrary JSON:
    decode either rejects it with CodecError or returns the message whose
    encoding is exactly the mutated list (nothing dropped or coerced)."""
    obj = json.loads(encode(msg))
    container = obj
    while True:  # walk down to a random element
        index = data.draw(st.integers(0, len(container) - 1))
        item = container[index]
        if isinstance(item, list) and item and data.draw(st.booleans()):
            container = item
        else:
            break
    container[index] = data.draw(json_values)
    mutated = json_bytes(obj)
    try:
        result = decode(mutated)
    except CodecError:
        return
    assert json.loads(encode(result)) == obj
