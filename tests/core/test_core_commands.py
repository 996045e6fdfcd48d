"""`Value`: a batch of commands held as its encoding, decoded lazily and once.

The layout is the one in paxos_agents/core/commands.py's docstring; these
tests pin it byte for byte, check that every malformed encoding is refused
with `BatchError` (and only when someone decodes it), and that the roles
which only pass values along (the acceptor) never decode them.
"""

from __future__ import annotations

import copy
import pickle
import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paxos_agents.core import (
    NOOP,
    Accept,
    Accepted,
    Ballot,
    Command,
    Membership,
    Node,
    Record,
    Settings,
    Value,
    is_noop,
)
from paxos_agents.core.commands import BatchError

C1 = Command("r1", b"one", 5)
C2 = Command("r\u00e9", b"\x00\xff", -1)


def test_layout_is_struct_of_arrays():
    """Count, then all id lengths, all payload lengths, all stamps, then ids, then payloads."""
    data = Value.of([C1, C2]).data
    ids = [b"r1", "r\u00e9".encode()]
    assert data == (struct.pack("<I", 2) + struct.pack("<2H", 2, 3) + struct.pack("<2I", 3, 2)
                    + struct.pack("<2q", 5, -1) + b"".join(ids) + b"one\x00\xff")


def test_noop_is_the_empty_encoding():
    assert NOOP.data == b"" and Value.of(()) is NOOP and Value.of([]) == NOOP
    assert Value.from_bytes(b"") == NOOP and is_noop(Value.from_bytes(b""))
    assert not NOOP and len(NOOP) == 0 and list(NOOP) == []
    assert Value.of([C1]) and not is_noop(Value.of([C1]))
    # A command with an empty payload is not a no-op.
    assert Value.of([Command("r", b"")]).data != b""


@pytest.mark.parametrize(
    "commands",
    [[C1], [C1, C2], [Command("r", b"")], [Command("\u65e5\u672c", "\u2713".encode(), 2**63 - 1)],
     [Command(f"id-{i}", bytes(16), i) for i in range(64)]],
    ids=["one", "two-mixed", "empty-payload", "non-ascii-id-max-stamp", "64-commands"],
)
def test_round_trip_and_determinism(commands):
    value = Value.of(commands)
    assert Value.of(list(commands)).data == value.data  # same commands, same bytes
    received = Value.from_bytes(value.data)
    assert received == value and hash(received) == hash(value)
    assert received.commands == tuple(commands)
    assert len(received) == len(commands) and list(reversed(received)) == commands[::-1]


def test_builder_keeps_its_commands_and_a_receiver_decodes_once():
    value = Value.of([C1, C2])
    assert value.commands[0] is C1  # never decoded: the commands it was built from
    received = Value.from_bytes(bytearray(value.data))
    assert type(received.data) is bytes
    first = received.commands
    assert received.commands is first and first[0] is not C1


def _with(**changes) -> bytes:
    """The encoding of [C1] with one part replaced (to build malformed bytes)."""
    parts = {"count": struct.pack("<I", 1), "id_len": struct.pack("<H", 2),
             "pay_len": struct.pack("<I", 3), "issued": struct.pack("<q", 5),
             "ids": b"r1", "payloads": b"one"}
    parts.update(changes)
    return b"".join(parts.values())


MALFORMED = [
    (b"\x01\x00\x00", "shorter than its count"),
    (struct.pack("<I", 0), "no-op is encoded as no bytes"),
    (struct.pack("<I", 2**32 - 1) + bytes(20), "bytes of header"),
    (struct.pack("<I", 1) + bytes(5), "bytes of header"),  # one command: its own parse
    (_with()[:-1], "should be"),
    (_with() + b"\x00", "should be"),
    (_with(pay_len=struct.pack("<I", 2**32 - 1)), "should be"),
    (_with(ids=b"\xff\xfe"), "not UTF-8"),
    (_with(issued=struct.pack("<q", -2)), "below -1"),
]


@pytest.mark.parametrize(("data", "why"), MALFORMED,
                         ids=["short-count", "zero-count", "huge-count", "one-command-short-header", "truncated",
                              "trailing-byte", "payload-past-end", "id-not-utf8",
                              "stamp-below-minus-one"])
def test_malformed_bytes_are_refused_when_decoded(data, why):
    value = Value.from_bytes(data)  # wrapping never decodes...
    assert value == Value.from_bytes(data) and value and hash(value) is not None
    with pytest.raises(BatchError, match=why):  # ...decoding refuses, every way in
        value.commands
    with pytest.raises(BatchError):
        list(value)
    with pytest.raises(BatchError):
        len(value)
    assert isinstance(BatchError(), ValueError)


def test_unencodable_commands_raise_batch_error():
    with pytest.raises(BatchError):
        Value.of([Command("x" * 65536, b"")])
    with pytest.raises(BatchError):
        Value.of([Command("\udc80", b"")])  # a lone surrogate has no UTF-8
    with pytest.raises(BatchError):
        Value.of([Command("r", b"", 2**63)])


def test_immutable_hashable_picklable():
    value = Value.of([C1])
    with pytest.raises(AttributeError):
        value.data = b""  # type: ignore[misc]
    assert value != (C1,) and {value: 1}[Value.from_bytes(value.data)] == 1
    for clone in (pickle.loads(pickle.dumps(value)), copy.copy(value), copy.deepcopy(value)):
        assert clone == value and clone.commands == (C1,)


def test_acceptor_votes_on_bytes_it_never_decodes():
    """An acceptor treats a value as opaque: even bytes that are no batch are
    voted for and echoed unchanged (only learners and proposers decode)."""
    members = Membership(proposers=("p1",), acceptors=("a1",), learners=("l1",))
    node = Node("a1", members, Settings(), Record(), random.Random(0))
    opaque = Value.from_bytes(b"not a batch")
    node.step(Accept(src="p1", dst="a1", ballot=Ballot(1, "p1"), slot=0, value=opaque))
    ready = node.ready()
    assert [v.value.data for v in ready.persist.votes] == [b"not a batch"]
    assert {m.value.data for m in ready.send_after_persist if isinstance(m, Accepted)} == {
        b"not a batch"}


commands_st = st.lists(st.builds(
    Command,
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
    st.binary(max_size=40),
    st.integers(-1, 2**63 - 1)), max_size=12)


@given(commands_st)
def test_any_batch_round_trips(commands):
    value = Value.of(commands)
    assert Value.from_bytes(value.data).commands == tuple(commands)


@given(st.binary(max_size=80))
def test_any_bytes_decode_canonically_or_raise_batch_error(data):
    """One encoding per batch: whatever decodes re-encodes to the same bytes."""
    try:
        commands = Value.from_bytes(data).commands
    except BatchError:
        return
    assert Value.of(commands).data == data
