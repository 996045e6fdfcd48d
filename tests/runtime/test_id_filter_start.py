"""A learner's start from its saved id filter (issue 24, schema 7), on real SQLite files.

A learner `Node` on a `SqliteStorage` file applies slots (a majority of
Accepted votes each), saving its filter every few ids
(`Settings.filter_save_ids`); the file is closed and a new `Node` starts on
it, as a restarted agent does. What is guarded: the restarted filter rules
out no id that was applied (every one is found at its first slot), the
saved path reads no key below the slot the blob covers, and a blob that
cannot be trusted (torn, foreign, claiming slots the store has not
applied, forgetting slots the store still holds, below a restarted log)
is never used: the full read, as before, with the same answers.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from paxos_agents.core import Accepted, Ballot, Membership, Settings
from paxos_agents.core.commands import Command, Value
from paxos_agents.core.idfilter import IdFilter
from paxos_agents.core.node import Node
from paxos_agents.core.requestkeys import request_key
from paxos_agents.runtime.storage import SqliteStorage

MEMBERS = Membership(proposers=("p1",), acceptors=("a1", "a2", "a3"), learners=("l1",))
PER_SLOT = 10
#: Slots a test applies: saves (every 200 ids: 20 slots) cover slots 19 and
#: 39, so a restart has the keys of slots 40..54 to add.
SLOTS = 55


class NoFullRead(SqliteStorage):
    """A store whose full key read fails: the saved path must not need it."""

    def request_keys(self):
        raise AssertionError("the whole request index was read")


def start(path: Path, settings: Settings, store_class=SqliteStorage) -> tuple[Node, SqliteStorage]:
    store = store_class(path)
    return Node("l1", MEMBERS, settings, store.load(), random.Random(0), store=store), store


def apply_slots(node: Node, store: SqliteStorage, first: int, count: int) -> list[list[str]]:
    """Decide and apply slots first..first+count-1 (new ids each), persisted
    as the agent does; the ids of each slot."""
    ids = []
    for slot in range(first, first + count):
        rids = [f"{slot:06d}-{i:02d}-{'x' * 20}" for i in range(PER_SLOT)]
        value = Value.of([Command(r, b"v", slot) for r in rids])
        for src in ("a1", "a2"):
            node.step(Accepted(src=src, dst="l1", ballot=Ballot(1, "p1"), slot=slot, value=value))
        store.write(node.ready().persist)
        ids.append(rids)
    store.commit()
    return ids


def saved_row(path: Path) -> tuple[int, bytes] | None:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT slot, data FROM id_filter").fetchone()
    finally:
        conn.close()


def missed(node: Node, ids: list[list[str]]) -> list[str]:
    """The applied ids the restarted learner's filter rules out (must be none)."""
    flat = [r for rids in ids for r in rids]
    maybe = set(node.learner.requests.filter.maybe([request_key(r) for r in flat]))
    return [r for i, r in enumerate(flat) if i not in maybe]


@pytest.fixture
def aged(tmp_path: Path) -> tuple[Path, list[list[str]], int]:
    """A learner file of `SLOTS` slots whose last saved filter covers a slot
    below its applied prefix (so a restart has later keys to add)."""
    path = tmp_path / "l1.db"
    node, store = start(path, Settings(filter_save_ids=200))
    ids = apply_slots(node, store, 0, SLOTS)
    assert node.stats()["id_filter_saves"] == 2  # paxos_learner_id_filter_saves_total
    store.close()
    covers = saved_row(path)[0]
    assert covers == 39
    return path, ids, covers


def test_a_restart_loads_the_saved_filter_and_misses_no_applied_id(aged) -> None:
    """Guards the saved path: the blob is used (no full read: `NoFullRead`),
    and every id applied, below and above the slot it covers, is still
    "maybe" and found at its first slot; a new id is applied, not refused."""
    path, ids, covers = aged
    node, store = start(path, Settings(filter_save_ids=200), NoFullRead)
    assert node.learner.once.filter_start == "saved"
    assert missed(node, ids) == []
    found = node.learner.requests.lookup([rids[0] for rids in ids])
    assert found == {rids[0]: slot for slot, rids in enumerate(ids)}
    # And it goes on: a retry of slot 3's first id is a duplicate, not applied.
    value = Value.of([Command(ids[3][0], b"v", 3), Command("fresh-id", b"v", SLOTS)])
    for src in ("a1", "a2"):
        node.step(Accepted(src=src, dst="l1", ballot=Ballot(1, "p1"), slot=SLOTS, value=value))
    applied = node.ready().applied
    assert [a.firsts for a in applied] == [(3, SLOTS)]
    store.close()


def test_the_planted_filter_ahead_misses_ids_of_the_slot_it_claims(tmp_path: Path) -> None:
    """Guards the check above against the plant "filter-ahead" (a blob that
    claims one slot more than it holds): the restarted learner rules out
    ids of that slot, which a retry would then apply twice."""
    path = tmp_path / "l1.db"
    planted = Settings(filter_save_ids=200, plant=frozenset({"filter-ahead"}))
    node, store = start(path, planted)
    ids = apply_slots(node, store, 0, SLOTS)
    store.close()
    covers = saved_row(path)[0]
    node, store = start(path, planted)
    assert node.learner.once.filter_start == "saved"
    assert set(missed(node, ids)) == set(ids[covers])
    store.close()


def rewrite(path: Path, slot: int, data: bytes) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("UPDATE id_filter SET slot = ?, data = ?", (slot, data))
        conn.commit()
    finally:
        conn.close()


def reshaped(data: bytes, covers: int | None = None, floor: int | None = None) -> bytes:
    """The saved filter again, with another slot covered or floor (whole, valid)."""
    slot, restored = IdFilter.from_bytes(data)
    if floor is not None:
        restored.forget_below(floor)
    return restored.to_bytes(slot if covers is None else covers)


@pytest.mark.parametrize("case", ["torn", "foreign", "flipped-bit", "row-disagrees",
                                  "beyond-applied", "floor-above-log"])
def test_a_blob_that_cannot_be_trusted_falls_back_to_the_full_read(aged, case: str) -> None:
    """Guards every refusal: the blob is not used (`filter_start` says why)
    and the full read answers every id as before."""
    path, ids, covers = aged
    slot, data = saved_row(path)
    if case == "torn":
        rewrite(path, slot, data[:-1])
    elif case == "foreign":
        rewrite(path, slot, b"PXIF" + bytes(len(data) - 4))
    elif case == "flipped-bit":
        rewrite(path, slot, data[:100] + bytes([data[100] ^ 1]) + data[101:])
    elif case == "row-disagrees":
        rewrite(path, slot + 1, data)
    elif case == "beyond-applied":
        rewrite(path, SLOTS, reshaped(data, covers=SLOTS))
    elif case == "floor-above-log":
        rewrite(path, slot, reshaped(data, floor=5))
    node, store = start(path, Settings(filter_save_ids=200))
    assert node.learner.once.filter_start != "saved"
    assert missed(node, ids) == []
    store.close()


def test_a_log_restarted_above_the_saved_filter_falls_back(aged) -> None:
    """Guards the state-transfer case: the log now starts above the slot the
    blob covers (nothing of it is retained), so the full read is used."""
    path, ids, covers = aged
    conn = sqlite3.connect(path)
    try:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'log_start'", (covers + 2,))
        conn.execute("DELETE FROM decisions WHERE slot < ?", (covers + 2,))
        conn.execute("DELETE FROM requests WHERE slot < ?", (covers + 2,))
        conn.commit()
    finally:
        conn.close()
    node, store = start(path, Settings(filter_save_ids=200))
    assert node.learner.once.filter_start.startswith(f"it covers slot {covers}, below the retained log")
    assert missed(node, ids[covers + 2:]) == []
    store.close()


def test_the_blob_round_trips_and_refuses_what_is_not_one() -> None:
    """Guards `IdFilter.to_bytes`/`from_bytes`: the same answers after a
    round trip (across segments), and a one-line ValueError for bad blobs."""
    original = IdFilter()
    keys = [request_key(f"id-{i}") for i in range(70_000)]  # past the first segment
    original.add_all((k, i // 100) for i, k in enumerate(keys))
    original.forget_below(3)
    covers, restored = IdFilter.from_bytes(original.to_bytes(699))
    assert covers == 699 and restored.floor == 3 and restored.count == original.count
    assert restored.maybe(keys) == list(range(len(keys)))
    probe = [request_key(f"other-{i}") for i in range(5000)]
    assert restored.maybe(probe) == original.maybe(probe)
    blob = original.to_bytes(699)
    for bad in (b"", blob[:10], b"XXXX" + blob[4:], blob + b"\0", blob[:-1]):
        with pytest.raises(ValueError):
            IdFilter.from_bytes(bad)


def test_a_clean_stop_saves_the_filter_and_the_next_start_loads_it(make_cluster) -> None:
    """Guards the agent's side, with real processes: `down` (a clean stop)
    saves each learner's filter covering its applied prefix, the next `up`
    loads it (the learner's log says so), and a retry of a command applied
    before the stop is still answered with its first slot, not applied again."""
    cluster = make_cluster("roles")
    client = cluster.client()
    first = client.propose(b"before the stop", request_id="kept-1", timeout=30)
    for i in range(5):
        client.propose(f"more {i}".encode(), timeout=30)
    client.close()
    cluster.down()
    for learner in cluster.learners:
        conn = sqlite3.connect(f"{cluster.state_file(learner).resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT slot FROM id_filter").fetchone()
            applied = conn.execute("SELECT value FROM meta WHERE key = 'applied'").fetchone()[0]
        finally:
            conn.close()
        assert row is not None and row[0] == applied >= first.slot, (learner, row, applied)
    cluster.up()
    for learner in cluster.learners:
        assert "exactly-once filter: loaded the saved one" in cluster.agent_log(learner).read_text()
    again = cluster.client().propose(b"before the stop", request_id="kept-1", timeout=30)
    assert again.slot == first.slot
