"""The leader's batching rule: a slot holds up to `batch` commands AND up to
`slot_bytes` bytes of encoded value; a command larger than the budget goes
alone in its slot (issue 20 (7): five 15 MiB commands in one slot made a
75 MiB Accept, over the 64 MiB a frame may carry).

One table test: the commands queued while a leader, the settings, and the
slots they must land in (each slot's commands, in order).
"""

from __future__ import annotations

import random

import pytest

from paxos_agents.core import Accept, Command, Membership, Node, Record, Settings

from core.leading import lead

MEMBERS = Membership(proposers=("p1", "p2"), acceptors=("a1", "a2", "a3"), learners=("l1",))
#: A command of id "cN" (2 bytes) with `size` payload bytes encodes in 14 + 2 + size bytes;
#: a slot's value adds 4 (the count).
HEAD, PER = 4, 14 + 2


def cmd(n: int, size: int) -> Command:
    return Command(f"c{n}", b"x" * size)


def leader(settings: Settings) -> Node:
    """A fresh proposer made leader of an empty log (a majority promises, no votes)."""
    node = Node("p1", MEMBERS, settings, Record(), random.Random(3))
    lead(node)
    node.ready()
    return node


def slots_of(node: Node, commands: list[Command]) -> list[list[str]]:
    """Propose `commands` in one batch of steps; the request ids of each new slot."""
    node.propose_batch(tuple(commands))
    accepts = {}
    for m in node.ready().send:
        if isinstance(m, Accept):
            accepts[m.slot] = m.value
    return [[c.request_id for c in accepts[slot]] for slot in sorted(accepts)]


BUDGET = 1000
CASES = [
    # (id, batch, slot_bytes, payload sizes, the slots expected)
    ("small-commands-share-one-slot", 64, BUDGET, [10, 10, 10], [["c0", "c1", "c2"]]),
    ("batch-bounds-the-count", 2, BUDGET, [10, 10, 10], [["c0", "c1"], ["c2"]]),
    # 4 + 2 x (16 + 484) = 1004 > 1000: the second waits for the next slot.
    ("budget-bounds-the-bytes", 64, BUDGET, [484, 484], [["c0"], ["c1"]]),
    # 4 + (16 + 483) + (16 + 481) = 1000: exactly the budget fits.
    ("exactly-the-budget-fits", 64, BUDGET, [483, 481], [["c0", "c1"]]),
    ("one-byte-over-splits", 64, BUDGET, [483, 482], [["c0"], ["c1"]]),
    ("a-command-over-the-budget-goes-alone", 64, BUDGET, [10, 5000, 10],
     [["c0"], ["c1"], ["c2"]]),
    ("five-huge-commands-five-slots", 64, BUDGET, [3000] * 5,
     [["c0"], ["c1"], ["c2"], ["c3"], ["c4"]]),
    ("order-is-kept", 64, BUDGET, [400, 400, 100, 400], [["c0", "c1", "c2"], ["c3"]]),
]


@pytest.mark.parametrize(("batch", "slot_bytes", "sizes", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_slot_holds_up_to_batch_commands_and_up_to_slot_bytes(batch, slot_bytes, sizes,
                                                                expected) -> None:
    node = leader(Settings(batch=batch, slot_bytes=slot_bytes))
    commands = [cmd(i, size) for i, size in enumerate(sizes)]
    assert slots_of(node, commands) == expected
    for slot in node.proposer.pipeline.inflight.values():
        # The rule, stated on the bytes that travel: within the budget, or one command.
        assert len(slot.value.data) <= slot_bytes or len(slot.value) == 1


def test_the_budget_counts_request_ids_as_utf8() -> None:
    """An id of 100 two-byte characters is 200 bytes of the slot's value."""
    node = leader(Settings(slot_bytes=HEAD + 2 * (14 + 200 + 100)))
    commands = [Command("\u00e9" * 100, b"x" * 100), Command("\u00e8" * 100, b"y" * 100),
                Command("z", b"z")]
    assert [len(s) for s in slots_of(node, commands)] == [2, 1]


def test_slot_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="slot_bytes"):
        Settings(slot_bytes=0)
