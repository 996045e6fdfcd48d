"""The leader's per-batch intake (core/intake.py) and the joins it builds
slots with (core/commands.py, `Value.join`).

A client's batch is queued as the bytes it arrived as; a slot's value is
column slices of the queued batches joined. The rules guarded here:

- a join is byte for byte `Value.of` of the same commands (one encoding
  per list of commands: learners compare values by their bytes);
- a batch is split over slots by `batch` (count) and `slot_bytes` (bytes),
  inside one client batch and across batches, each command once, in order;
- a conflict (same request id, other payload) inside one client batch and
  across batches is refused at its index in the batch the client sent,
  and the first command keeps the id;
- after a leader change the commands of the slots that were in flight go
  back to the front of the queue, lowest slot first, before what was queued.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paxos_agents.core import (Accept, Ballot, Command, Membership, Nack, Node, Record,
                               Settings)
from paxos_agents.core.commands import NOOP, Value

from core.leading import lead

MEMBERS = Membership(proposers=("p1", "p2"), acceptors=("a1", "a2", "a3"), learners=("l1",))

# --------------------------------------------------------------- Value.join

commands_st = st.lists(
    st.builds(Command, st.text(min_size=1, max_size=6), st.binary(max_size=12),
              st.integers(min_value=-1, max_value=2**63 - 1)),
    min_size=1, max_size=8)


@st.composite
def runs_of(draw: st.DrawFn) -> tuple[list[list[Command]], list[tuple[int, int, int]]]:
    """Some batches, and runs (batch, start, stop) over them, empty runs included."""
    batches = draw(st.lists(commands_st, min_size=1, max_size=4))
    runs = []
    for _ in range(draw(st.integers(0, 5))):
        b = draw(st.integers(0, len(batches) - 1))
        start = draw(st.integers(0, len(batches[b])))
        stop = draw(st.integers(start, len(batches[b])))
        runs.append((b, start, stop))
    return batches, runs


@settings(max_examples=300)
@given(runs_of())
def test_a_join_is_the_encoding_of_the_same_commands(drawn) -> None:
    batches, runs = drawn
    values = [Value.of(batch) for batch in batches]
    # Received bytes (no cached commands): what the leader holds from a PROPOSE frame.
    received = [Value.from_bytes(v.data) for v in values]
    joined = Value.join([(received[b], start, stop) for b, start, stop in runs])
    expected = Value.of([c for b, start, stop in runs for c in batches[b][start:stop]])
    assert joined.data == expected.data
    # The columns the join set up front are those a parse of its bytes finds.
    assert joined.request_ids() == expected.request_ids()
    assert joined.lowest_issued() == expected.lowest_issued()
    assert joined.commands == Value.from_bytes(expected.data).commands


def test_a_slice_of_a_whole_value_is_that_value_and_an_empty_one_the_noop() -> None:
    value = Value.from_bytes(Value.of([Command("a", b"1"), Command("b", b"2")]).data)
    assert Value.join([(value, 0, 2)]) is value
    assert Value.join([(value, 1, 1)]) is NOOP
    assert Value.join([(value, 1, 2)]) == Value.of([Command("b", b"2")])


# ------------------------------------------------------------ a leader's slots

def leader(**settings: int) -> Node:
    node = Node("p1", MEMBERS, Settings(**settings), Record(), random.Random(3))
    lead(node)
    node.ready()
    return node


def batch(spec: str) -> Value:
    """"x=a y=b" -> the PROPOSE body a client sends, as the leader receives it."""
    commands = [Command(rid, payload.encode())
                for rid, payload in (item.split("=") for item in spec.split())]
    return Value.from_bytes(Value.of(commands).data)


def accepts(node: Node) -> dict[int, Value]:
    """The values of the Accepts to a1 that `node` sends now, by slot."""
    return {m.slot: m.value for m in node.ready().send if isinstance(m, Accept) and m.dst == "a1"}


def text(value: Value) -> str:
    return " ".join(f"{c.request_id}={c.payload.decode()}" for c in value)


@pytest.mark.parametrize("settings, batches, slots", [
    ({"batch": 3}, ["a=1 b=2 c=3 d=4 e=5 f=6 g=7"], ["a=1 b=2 c=3", "d=4 e=5 f=6", "g=7"]),
    ({"batch": 3}, ["a=1 b=2", "c=3 d=4", "e=5"], ["a=1 b=2 c=3", "d=4 e=5"]),
    # 4 + 3 x (14 + 1 + 1) = 52 bytes: three commands a slot, split inside a batch.
    ({"batch": 64, "slot_bytes": 52}, ["a=1 b=2", "c=3 d=4 e=5 f=6", "g=7"],
     ["a=1 b=2 c=3", "d=4 e=5 f=6", "g=7"]),
    # One byte less: two a slot.
    ({"batch": 64, "slot_bytes": 51}, ["a=1 b=2 c=3", "d=4 e=5"], ["a=1 b=2", "c=3 d=4", "e=5"]),
], ids=["batch-splits-one-client-batch", "batch-joins-across-client-batches",
        "slot-bytes-split-inside-and-across", "slot-bytes-one-byte-less"])
def test_batches_are_split_over_slots_each_command_once(settings, batches, slots) -> None:
    node = leader(window=16, **settings)
    for spec in batches:
        assert node.propose_batch(batch(spec)) == []
    values = accepts(node)
    assert [text(values[s]) for s in sorted(values)] == slots
    # Each slot's bytes are the one encoding of its commands.
    assert all(v.data == Value.of(list(v)).data for v in values.values())
    assert not node.proposer.intake.pending and not node.proposer.intake.arrivals


def test_a_conflict_inside_one_batch_and_across_batches_is_refused_at_its_index() -> None:
    node = leader()
    first = node.propose_batch(batch("x=a y=b x=c x=a"))
    assert [(c.index, c.command.request_id, c.command.payload, c.first.payload)
            for c in first] == [(2, "x", b"c", b"a")]
    second = node.propose_batch(batch("z=1 y=q y=b"))
    assert [(c.index, c.command.request_id, c.command.payload, c.first.payload)
            for c in second] == [(1, "y", b"q", b"b")]
    assert [text(v) for _, v in sorted(accepts(node).items())] == ["x=a y=b z=1"]


def test_after_a_leader_change_in_flight_commands_go_back_first_lowest_slot_first() -> None:
    node = leader(batch=2, window=2)
    node.propose_batch(batch("a=1 b=2 c=3"))
    assert [text(v) for _, v in sorted(accepts(node).items())] == ["a=1 b=2", "c=3"]
    node.propose_batch(batch("d=4 e=5"))  # the window is full: queued
    assert accepts(node) == {}
    # A higher ballot elsewhere: p1 steps down, knowing no leader (it holds its queue).
    proposer = node.proposer
    node.step(Nack(src="a1", dst="p1", ballot=proposer.ballot,
                   promised=Ballot(proposer.ballot.round + 5, "p2"), compacted=0))
    assert not node.is_leader
    assert [c.request_id for c in proposer.intake.pending] == ["a", "b", "c", "d", "e"]
    lead(node)
    assert [text(v) for _, v in sorted(accepts(node).items())] == ["a=1 b=2", "c=3 d=4"]
