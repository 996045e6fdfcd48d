"""Hostile messages from a peer: the codec refuses them with CodecError only (issue 20).

A configuration history (Stored, Chunk) is JSON inside the binary format;
its numbers must be exact i64 ints. `1e400` (a float too large for int())
once raised OverflowError out of `decode` and killed a learner.
"""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paxos_agents.core.configs import ConfigError, History
from paxos_agents.core.messages import MESSAGE_TYPES, Stored
from paxos_agents.runtime.codec import CodecError, decode, encode

from test_codec import message_strategy


def stored_with_history(history_json: bytes, src: str = "l1", dst: str = "l0") -> bytes:
    """A Stored message whose history field holds `history_json` as it is."""
    head = encode(Stored(src=src, dst=dst, upto=3, history=None))[:-4]
    return head + struct.pack("<I", len(history_json)) + history_json


GOOD = [1, 32, 5, [[0, 0, ["a0", "a1", "a2"]]]]


@pytest.mark.parametrize("history", [
    b"[1, 32, 5, [[0, 1e400, [\"a0\"]]]]",
    b"[1, 32, 1e400, [[0, 0, [\"a0\"]]]]",
    b"[1, 32.0, 5, [[0, 0, [\"a0\"]]]]",
    b"[1, 32, 5, [[0.0, 0, [\"a0\"]]]]",
    b"[1, true, 5, [[0, 0, [\"a0\"]]]]",
    b"[1, 32, 5, [[0, \"0\", [\"a0\"]]]]",
    b"[1, 32, 5, [[0, 0, [7]]]]",
    b"[1, 32, 5, [[0, 1180591620717411303424, [\"a0\"]]]]",  # 2**70
    b"\"1325\"",  # a 4-character string unpacks like a 4-item list
    b"[" * 100_000 + b"]" * 100_000,
    b"[1, 32, 5, " + b"[" * 50_000 + b"]" * 50_000 + b"]",
])
def test_a_stored_history_that_is_not_exact_is_a_codec_error(history: bytes) -> None:
    with pytest.raises(CodecError):
        decode(stored_with_history(history))


def test_an_exact_history_still_decodes() -> None:
    msg = decode(stored_with_history(json.dumps(GOOD).encode()))
    assert msg.history == History.from_json(GOOD) and msg.history.known == 5


@pytest.mark.parametrize("data", [[1, 32.5, 5, GOOD[3]], [1, 32, float("inf"), GOOD[3]],
                                  [1, 32, 5, [[0, 0, ("a0",)]]], "1325", None, [True, 32, 5, GOOD[3]]])
def test_history_from_json_takes_exact_types_only(data: object) -> None:
    with pytest.raises(ConfigError):
        History.from_json(data)


# JSON values a hostile peer might put anywhere in a history.
_json_leaves = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(),
                         st.text(max_size=4), st.just(10**400))


@settings(max_examples=300, deadline=None)
@given(st.recursive(_json_leaves, lambda inner: st.lists(inner, max_size=4), max_leaves=16),
       st.sampled_from(["1e400", "-1e400", "1E999", "NaN", "Infinity"]))
def test_any_json_as_a_history_is_a_history_or_a_codec_error(value: object, number: str) -> None:
    for text in (json.dumps(value), json.dumps(value).replace("0", number, 1)):
        try:
            msg = decode(stored_with_history(text.encode()))
        except CodecError:
            continue
        assert isinstance(msg.history, History)


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_mutations_of_every_type_decode_or_raise_codec_error_only(cls: type,
                                                                 data: st.DataObject) -> None:
    """Flipped, inserted, deleted bytes and cut tails of a valid message of each type."""
    raw = bytearray(encode(data.draw(message_strategy(cls))))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "cut", "max"]))
        at = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "flip" and raw:
            raw[at] ^= data.draw(st.integers(1, 255))
        elif op == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and raw:
            del raw[at:at + data.draw(st.integers(1, 8))]
        elif op == "cut":
            del raw[at:]
        elif op == "max" and len(raw) >= at + 4:
            raw[at:at + 4] = b"\xff\xff\xff\x7f"  # a huge length or count
    try:
        decode(bytes(raw))
    except CodecError:
        pass
