"""What a learner refuses, bounds and announces on the client path.

Issue 20: one WATCH or LOOKUP of 1M request ids, or one `decided` page of
big values, held a learner's loop past its health timeout; a page could
pass the frame limit; slots installed by state transfer were never
announced to subscribers. A real learner `Agent` runs in this process on a
real endpoint (tests/runtime/test_client_answers.py's `Learner`); the test
is its client on a real socket and plays the acceptors and a peer learner.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from paxos_agents.core import Chunk, Command
from paxos_agents.core.commands import Value
from paxos_agents.runtime import clientwire as wire
from paxos_agents.runtime import frames
from paxos_agents.runtime.watches import PAGE_SECONDS
from paxos_agents.runtime.codec import encode
from paxosctl.client.decidedlog import page_entries

from test_client_answers import Learner, outcomes


@pytest.fixture
def learner(tmp_path: Path):
    le = Learner(tmp_path)
    yield le
    le.close()


def replies(frames_: list[bytes]) -> list[dict]:
    return [json.loads(f[1:]) for f in frames_ if f[:1] == wire.REPLY]


def test_a_watch_or_lookup_over_the_id_limit_is_refused_and_counted(learner) -> None:
    limit = wire.MAX_IDS_PER_FRAME
    learner.decide(0, Command("known", b"v"))
    ids = ["known", *(f"id-{n}" for n in range(limit))]  # one over the limit
    for kind in (wire.WATCH, wire.LOOKUP):
        learner.send(kind + wire.encode_ids(ids))
        [reply] = replies(learner.frames())
        assert reply["code"] == "over_limit", reply
        assert f"more than {limit} request ids in one frame" in reply["error"], reply
    assert learner.agent.clients.stats()["client_refused"] == 2
    # At the limit it is served: the one known id answered, nothing refused.
    learner.send(wire.WATCH + wire.encode_ids(ids[:limit]))
    assert outcomes(learner.frames()) == [
        wire.Outcome("known", wire.DECIDED, 0, 0, wire.digest(b"v"))]
    assert learner.agent.clients.stats()["client_refused"] == 2


def test_the_client_splits_a_long_id_list_into_frames_within_the_limit() -> None:
    ids = [f"r{n}" for n in range(2 * wire.MAX_IDS_PER_FRAME + 5)]
    split = wire.split_ids(ids, wire.LOOKUP)
    assert len(split) == 3 and all(f[:1] == wire.LOOKUP for f in split)
    parts = [wire.decode_ids(f[1:], wire.MAX_IDS_PER_FRAME) for f in split]
    assert [len(p) for p in parts] == [4096, 4096, 5]
    assert [rid for p in parts for rid in p] == ids


def page(learner: Learner, start: int | None, limit: int, query_id: int = 7) -> wire.Page:
    learner.send(wire.encode_page_query(query_id, start, limit))
    got = learner.frames()
    assert [f[:1] for f in got] == [wire.PAGED], got[:1]
    assert len(frames.pack(got)) < frames.MAX_FRAME_BYTES
    result = wire.decode_page(got[0][1:])
    assert result.query_id == query_id
    return result


def test_a_page_of_big_values_is_bounded_in_bytes_whole_slots_at_least_one(learner) -> None:
    big = b"x" * (1 << 20)  # 1 MiB values: 12 slots hold 12 MiB
    for slot in range(12):
        learner.decide(slot, Command(f"big-{slot}", big))
    first = page(learner, None, wire.MAX_PAGE_ENTRIES)
    size = sum(len(s.value) for s in first.slots)
    # It stops at the first slot that reaches PAGE_BYTES: 4 slots of 1 MiB and a bit.
    assert wire.PAGE_BYTES <= size < wire.PAGE_BYTES + (2 << 20), size
    assert [s.slot for s in first.slots] == list(range(len(first.slots)))
    # The next page goes on from the next slot; the walk ends with all 12, each once.
    seen = [s.slot for s in first.slots]
    while seen[-1] < 11:
        seen += [s.slot for s in page(learner, seen[-1] + 1, wire.MAX_PAGE_ENTRIES).slots]
    assert seen == list(range(12))
    # A slot larger than the bound alone still makes a page (never an empty one).
    learner.decide(12, *(Command(f"huge-{n}", big) for n in range(5)))
    assert [s.slot for s in page(learner, 12, 1).slots] == [12]
    # The JSON page (QUERY) is bounded the same way (base64 on top).
    learner.send(wire.QUERY + json.dumps({"op": "decided", "from": 0, "limit": 100_000,
                                           "id": 1}).encode())
    [reply] = replies(learner.frames())
    assert 4 <= len(reply["entries"]) <= 6, len(reply["entries"])


def test_a_page_over_the_entries_limit_is_refused_with_its_query_id(learner) -> None:
    learner.decide(0, Command("a", b"v"))
    learner.send(wire.encode_page_query(3, 0, wire.MAX_PAGE_ENTRIES + 1))
    [reply] = replies(learner.frames())
    assert (reply["id"], reply["code"]) == (3, "over_limit"), reply
    assert learner.agent.clients.stats()["client_refused"] == 1
    learner.send(wire.encode_page_query(4, 0, 0))  # not a page: refused too
    [reply] = replies(learner.frames())
    assert reply["id"] == 4 and "from 1 to 100000" in reply["error"], reply


def test_page_entries_skip_what_was_first_decided_elsewhere(learner) -> None:
    learner.decide(0, Command("a", b"1"), Command("b", b"2"))
    learner.decide(1, Command("c", b"3"), Command("a", b"1"), Command("c", b"3"))  # retries
    learner.decide(2)  # a no-op slot
    got = page(learner, None, 100)
    assert [(s.slot, s.skipped) for s in got.slots] == [(0, ()), (1, (1, 2)), (2, ())]
    assert [(e.position, e.request_id, e.value) for e in page_entries(got)] == [
        ("0.0", "a", b"1"), ("0.1", "b", b"2"), ("1.0", "c", b"3"), ("2.0", None, None)]
    assert (got.status, got.log_start, got.decided_up_to) == (wire.PAGE_OK, 0, 2)


def test_a_page_read_stops_at_its_time_bound(learner, monkeypatch) -> None:
    """A page ends when reading it took PAGE_SECONDS, whatever is left: the
    loop goes back to the other clients, the reader asks for the next page."""
    for slot in range(50):
        learner.decide(slot, Command(f"r{slot}", b"v"))
    storage = learner.agent._storage
    read_log = storage.read_log

    def slow_read(first_slot: int, max_bytes: int):
        time.sleep(PAGE_SECONDS)  # each read of the disk takes the whole bound
        return read_log(first_slot, 1)  # one slot per read

    monkeypatch.setattr(storage, "read_log", slow_read)
    assert [s.slot for s in page(learner, 0, 1000).slots] == [0]


def test_installed_slots_are_streamed_and_answer_watches(learner) -> None:
    """Slots copied from a peer (Chunk) go to subscribers as SLOT frames,
    like applied ones, and answer WATCHes of their commands."""
    learner.send(wire.SUBSCRIBE)
    learner.frames()
    learner.send(wire.WATCH + wire.encode_ids(["w"]))
    learner.turn()
    decisions = ((0, Value.of([Command("w", b"watched"), Command("x", b"1")])),
                 (1, Value.of([Command("y", b"2"), Command("w", b"watched")])),
                 (2, Value.of([])))
    learner.agent._on_message("l2", encode(Chunk(
        src="l2", dst="l1", asked=0, first_slot=0, decisions=decisions,
        first_slots=(("w", 0), ("x", 0), ("y", 1)))))
    got = learner.frames()
    slots = [wire.decode_slot(f[1:]) for f in got if f[:1] == wire.SLOT]
    assert [(slot, skipped) for slot, skipped, _ in slots] == [
        (0, {}), (1, {1: wire.Skipped(wire.DECIDED, 0, 0, wire.digest(b"watched"))}), (2, {})]
    assert outcomes(got) == [wire.Outcome("w", wire.DECIDED, 0, 0, wire.digest(b"watched"))]
