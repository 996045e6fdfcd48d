"""Storage schema 3 (values as BLOBs), 4 (the configuration history), 5
(the agent's own incarnation, its admitted marker, its peers' incarnations),
6 (the request index on integer keys) and 7 (the learner's saved id filter)
and the migrations into them: 6 -> 7, 5 -> 6 -> 7, 4 -> ..., 3 -> ...,
2 -> ..., and 1 -> ... -> 7 in one go, on the state dirs of real clusters
of the older code.

tests/data/v6_state_dir.tar.gz was made by paxosctl at main d1091a7
(schema 6, the release before the id filter was saved) with
`tests/data/make_v6_state_dir.sh`, as v5's below (that checkout run as
`PYTHONPATH=<git archive of d1091a7> .venv/bin/python -m paxosctl`);
tests/data/v6_decided.json is its decided log.

tests/data/v5_state_dir.tar.gz was made by paxosctl at main b34c644
(schema 5, the release before the index was keyed by integers) with
`tests/data/make_v5_state_dir.sh`, as v4's below, plus a 300-command bench
(ids of the client's layout, in batches) and a retry of old-3;
tests/data/v5_decided.json is its decided log.

tests/data/v4_state_dir.tar.gz was made the same way as v3's (below) by
paxosctl at main 951b937 (schema 4, the release before incarnations were
stored), with `tests/data/make_v4_state_dir.sh`; tests/data/v4_decided.json
is its decided log.

tests/data/v3_state_dir.tar.gz was made by paxosctl at main ba56af6 (schema
3, the release before the history was stored) with
`tests/data/make_v3_state_dir.sh`: in a `git archive main | tar -x -C /tmp/v3`
copy installed in its own venv (`python3 -m venv /tmp/v3venv &&
/tmp/v3venv/bin/pip install /tmp/v3`), then
`sh tests/data/make_v3_state_dir.sh /tmp/v3venv/bin/paxosctl "$PWD/tests/data"`:
a "roles" cluster "v3" (2 proposers, 3 acceptors, 2 learners), 11 proposes
(old-0..7, a non-ASCII, an empty and a tab/quote/newline value), then with
learner-1 stopped 3 more non-ASCII ones (slots 11-13, so the acceptors
still hold those votes), `paxosctl decided -o json` saved as
tests/data/v3_decided.json, `paxosctl down`, and the state dir's state/,
cluster.json and members.json tarred.

tests/data/v2_state_dir.tar.gz was made by paxosctl at commit 23af8d1
(schema 2, values as the old codec's JSON text): a "roles" cluster, 15
proposes with non-ASCII, empty and tab/quote/newline values, a 200-command
bench (multi-command batches), then 5 more non-ASCII proposes with
learner-1 stopped, so the acceptors still hold those votes;
tests/data/v2_decided.json is `paxosctl decided -o json` just before
`paxosctl down`. The archive also holds that cluster's cluster.json and
members.json (cluster "v2"): its stores record their owner.
tests/data/v1_state_dir.tar.gz is the same for 0.1.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import tarfile
from pathlib import Path

import pytest

import random

from paxos_agents.core import Accepted, Ballot, Membership, Settings
from paxos_agents.core.commands import Command, Value
from paxos_agents.core.node import Node
from paxos_agents.core.ready import Persist, log_entries
from paxos_agents.runtime.storage import SCHEMA_VERSION, SqliteStorage, StorageError
from paxos_agents.runtime.storage import migrations

DATA = Path(__file__).resolve().parents[1] / "data"


def extract(name: str, into: Path) -> dict[str, Path]:
    with tarfile.open(DATA / name) as tar:
        tar.extractall(into, filter="data")
    return {p.stem: p for p in sorted((into / "state").glob("*.db"))}


def expected_log(name: str) -> list[tuple]:
    """The decided log as the old code printed it, payloads as the bytes the new code holds."""
    return [(e["slot"], None if e["noop"] else e["value"].encode("utf-8", "surrogatepass"),
             e["request_id"], e["noop"]) for e in json.loads((DATA / name).read_text())]


def stored_log(store: SqliteStorage) -> list[tuple]:
    piece = store.read_log(0, 1 << 30)
    return [(e.slot, e.payload, e.request_id, e.noop)
            for e in log_entries(piece.decisions, piece.first_slots)]


def dump(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [*conn.iterdump(), str(conn.execute("PRAGMA user_version").fetchone())]
    finally:
        conn.close()


def schema(path: Path) -> tuple[int, set[str]]:
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        kinds = {kind for table in ("votes", "decisions")
                 for (kind,) in conn.execute(f"SELECT DISTINCT typeof(value) FROM {table}")}
        return version, kinds
    finally:
        conn.close()


def text_index(path: Path) -> dict[str, int]:
    """The request index of a file of schema 2 to 5 (request id -> first slot)."""
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT request_id, slot FROM requests"))
    finally:
        conn.close()


def test_state_dir_of_schema_2_reads_back_exactly_what_was_decided(tmp_path: Path) -> None:
    """Guards the 2 -> 3 migration on real files: every decided payload comes
    back byte for byte (non-ASCII, empty, control characters), request ids
    keep their first slots, and the acceptors' votes survive."""
    files = extract("v2_state_dir.tar.gz", tmp_path)
    assert len(files) == 7 and all(schema(p)[0] == 2 for p in files.values())
    expected = expected_log("v2_decided.json")
    assert any(p and not p.isascii() for _, p, _, _ in expected)  # the fixture has them
    with SqliteStorage(files["learner-0"]) as store:
        assert store.load().applied == expected[-1][0]
        assert stored_log(store) == expected
        assert store.first_slots(["uni-0", "empty-0", "old-19"]) == {
            "uni-0": 10, "empty-0": 11, "old-19": 30}
    with SqliteStorage(files["learner-1"]) as store:  # stopped before the last slots
        applied = store.load().applied
        assert stored_log(store) == [e for e in expected if e[0] <= applied]
    for name in ("acceptor-0", "acceptor-1", "acceptor-2"):
        with SqliteStorage(files[name]) as store:
            record = store.load()
            votes = store.votes_from(0)
            assert record.compacted == 26 and [v.slot for v in votes] == [26, 27, 28, 29, 30]
            assert [[(c.request_id, c.payload) for c in v.value] for v in votes] == [
                [(f"old-{i}", f"vote ü {i} ✓".encode())] for i in range(15, 20)]
    for path in files.values():
        SqliteStorage(path).close()
        assert schema(path) == (SCHEMA_VERSION, {"blob"} if "proposer" not in path.name else set())


def test_state_dir_of_paxosctl_0_1_migrates_through_2_to_3(tmp_path: Path) -> None:
    files = extract("v1_state_dir.tar.gz", tmp_path)
    expected = expected_log("v1_decided.json")
    with SqliteStorage(files["learner-0"]) as store:
        assert stored_log(store)[:len(expected)] == expected
    for path in files.values():
        SqliteStorage(path).close()
        assert schema(path)[0] == SCHEMA_VERSION


def _v2_file(path: Path, votes: list[tuple], decisions: list[tuple]) -> None:
    """A state file as paxosctl at schema 2 wrote it (values as JSON text)."""
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id={0x50586374}")
    conn.execute("PRAGMA user_version=2")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value NOT NULL)")
    conn.execute("CREATE TABLE votes (slot INTEGER PRIMARY KEY, ballot_round INTEGER NOT NULL,"
                 " ballot_node TEXT NOT NULL, value TEXT NOT NULL)")
    conn.execute("CREATE TABLE decisions (slot INTEGER PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("CREATE TABLE requests (request_id TEXT PRIMARY KEY NOT NULL,"
                 " slot INTEGER NOT NULL) WITHOUT ROWID")
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [
        ("schema_version", 2), ("promised_round", 3), ("promised_node", "p1"), ("round", 0),
        ("compacted", 0), ("applied", -1), ("log_start", 0)])
    conn.executemany("INSERT INTO votes VALUES (?, ?, ?, ?)", votes)
    conn.executemany("INSERT INTO decisions VALUES (?, ?)", decisions)
    conn.commit()
    conn.close()


def test_version_2_values_become_batches_with_utf8_payloads(tmp_path: Path) -> None:
    """Both command forms of schema 2 (with and without `issued`), the no-op,
    and a lone surrogate (which the old codec could hold) carried by surrogatepass."""
    path = tmp_path / "a.db"
    _v2_file(path, votes=[(0, 2, "p1", '[["a","x",4],["b","\\u00e9"]]'), (1, 2, "p1", "[]")],
             decisions=[(5, '[["c","\\ud800"]]')])
    with SqliteStorage(path) as store:
        record = store.load()
        votes = store.votes_from(0)
    assert [(v.slot, v.ballot.round, v.value) for v in votes] == [
        (0, 2, Value.of([Command("a", b"x", 4), Command("b", "é".encode())])), (1, 2, Value.of([]))]
    assert record.decisions == {5: Value.of([Command("c", b"\xed\xa0\x80")])}
    assert record.promised.round == 3
    assert schema(path) == (SCHEMA_VERSION, {"blob"})


@pytest.mark.parametrize("bad", ['{"not": "a list"}', '[["a"]]', '[["a", 1]]', '[["a","x",-2]]',
                                 "not json"],
                         ids=["object", "short-command", "int-payload", "stamp-below-minus-one",
                              "not-json"])
def test_a_bad_version_2_row_refuses_the_file_and_leaves_it_as_it_was(tmp_path: Path, bad: str):
    path = tmp_path / "a.db"
    _v2_file(path, votes=[(0, 1, "p1", '[["a","x"]]')], decisions=[(3, bad)])
    before = dump(path)
    with pytest.raises(StorageError, match=r"is corrupt: decisions slot 3 holds no version-2 value"):
        SqliteStorage(path)
    assert dump(path) == before  # (the header says WAL now: opening switches before migrating)


def test_a_text_value_in_a_version_3_file_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    SqliteStorage(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO votes VALUES (0, 1, 'p1', '[]')")
    conn.commit()
    conn.close()
    with SqliteStorage(path) as store, pytest.raises(StorageError, match="expected a BLOB"):
        store.votes_from(0)


def test_state_dir_of_schema_3_opens_intact_with_no_history(tmp_path: Path) -> None:
    """Guards the 3 -> 4 migration on real files of the previous release: every
    decided payload, request id, vote, promise and round is intact, no file has a
    configuration history (the nodes start from epoch 0, their manifest's
    acceptors), and a migrated file then stores one."""
    files = extract("v3_state_dir.tar.gz", tmp_path)
    assert len(files) == 7 and all(schema(p)[0] == 3 for p in files.values())
    expected = expected_log("v3_decided.json")
    assert [e[0] for e in expected] == list(range(14))
    with SqliteStorage(files["learner-0"]) as store:
        record = store.load()
        assert record.applied == 13 and record.configs is None
        assert stored_log(store) == expected
        assert store.first_slots(["uni-0", "empty-0", "odd-0", "old-13"]) == {
            "uni-0": 8, "empty-0": 9, "odd-0": 10, "old-13": 13}
    with SqliteStorage(files["learner-1"]) as store:  # stopped before the last slots
        record = store.load()
        assert record.applied == 10 and record.configs is None
        assert stored_log(store) == expected[:11]
    for name in ("acceptor-0", "acceptor-1", "acceptor-2"):
        with SqliteStorage(files[name]) as store:
            record = store.load()
            votes = store.votes_from(0)
            assert record.configs is None and record.compacted == 11
            assert record.promised.round >= 1
            assert [[(c.request_id, c.payload) for c in v.value] for v in votes] == [
                [(f"old-{i}", f"vote ü {i}".encode())] for i in (11, 12, 13)]
    rounds = []
    for name in ("proposer-0", "proposer-1"):
        with SqliteStorage(files[name]) as store:
            record = store.load()
            assert record.configs is None
            rounds.append(record.round)
    assert max(rounds) >= 1  # the leader's round survived
    for path in files.values():
        assert schema(path)[0] == SCHEMA_VERSION
    history = [1, 32, 14, [[0, 0, ["acceptor-0", "acceptor-1", "acceptor-2"]]]]
    with SqliteStorage(files["learner-0"]) as store:
        store.save(Persist(configs=history))
    with SqliteStorage(files["learner-0"]) as store:
        assert store.load().configs == history and stored_log(store) == expected



def test_state_dir_of_schema_4_starts_admitted_at_incarnation_1(tmp_path: Path) -> None:
    """Guards the 4 -> 5 migration on real files of the previous release:
    every store has run, so it is admitted (no peer is asked), its first start
    after the migration is incarnation 1 and the next one 2, no peer
    incarnation is remembered yet, and the decided log and votes are intact."""
    files = extract("v4_state_dir.tar.gz", tmp_path)
    assert len(files) == 7 and all(schema(p)[0] == 4 for p in files.values())
    expected = expected_log("v4_decided.json")
    index = text_index(files["learner-0"])
    assert len(index) == 14
    for path in files.values():
        with SqliteStorage(path) as store:
            assert store.admitted and store.incarnation == 0 and store.welcomed() == {}
            assert store.start_incarnation() == 1
        assert schema(path)[0] == SCHEMA_VERSION
        with SqliteStorage(path) as store:
            assert store.admitted and store.start_incarnation() == 2
    with SqliteStorage(files["learner-0"]) as store:
        assert stored_log(store) == expected
        assert store.first_slots(index) == index  # re-keyed through 5 -> 6
    with SqliteStorage(files["acceptor-0"]) as store:
        assert [v.slot for v in store.votes_from(0)] == [11, 12, 13]


def test_state_dir_of_schema_5_rekeys_the_request_index_and_logs_progress(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Guards the 5 -> 6 migration on real files of the previous release:
    each learner's index answers every id it held with the same first slot
    (now by key, confirmed by the full id at its position), ids it never
    held are unknown, the decided log and the votes are intact, and the
    migration logs its progress (pages of 100 here, a line per page)."""
    files = extract("v5_state_dir.tar.gz", tmp_path)
    assert len(files) == 7 and all(schema(p)[0] == 5 for p in files.values())
    before = {name: text_index(files[name]) for name in ("learner-0", "learner-1")}
    assert len(before["learner-0"]) == 314 and len(before["learner-1"]) == 311
    monkeypatch.setattr(migrations, "_MIGRATE_REQUESTS", 100)
    monkeypatch.setattr(migrations, "PROGRESS_SECONDS", 0.0)
    caplog.set_level(logging.INFO, logger=migrations.__name__)
    for path in files.values():
        with SqliteStorage(path) as store:
            assert store.admitted and store.incarnation >= 1  # kept, as everything but the index
        assert schema(path)[0] == SCHEMA_VERSION == 7
    for name, index in before.items():
        with SqliteStorage(files[name]) as store:
            assert store.first_slots(index) == index
            assert store.first_slots(["old-99", "0" * 32]) == {}
        conn = sqlite3.connect(files[name])
        try:
            columns = [row[1] for row in conn.execute("PRAGMA table_info(requests)")]
        finally:
            conn.close()
        assert columns == ["key", "slot", "pos"]
    with SqliteStorage(files["learner-0"]) as store:
        assert stored_log(store) == expected_log("v5_decided.json")
    with SqliteStorage(files["acceptor-0"]) as store:
        assert [v.slot for v in store.votes_from(0)] == [23, 24, 25]
    lines = [r.getMessage() for r in caplog.records if str(files["learner-0"]) in r.getMessage()]
    assert sum("314 request index entries re-keyed" in line or "re-keyed (" in line
               for line in lines) >= 3, lines
    assert any(line.startswith("migrated ") and "314 request index entries" in line
               for line in lines), lines


V6_MEMBERS = Membership(proposers=("proposer-0", "proposer-1"),
                        acceptors=("acceptor-0", "acceptor-1", "acceptor-2"),
                        learners=("learner-0", "learner-1"))


def start_learner(path: Path, settings: Settings) -> tuple[Node, SqliteStorage]:
    store = SqliteStorage(path)
    return Node("learner-0", V6_MEMBERS, settings, store.load(), random.Random(0), store=store), store


def test_state_dir_of_schema_6_starts_with_a_full_read_then_saves_its_filter(tmp_path: Path) -> None:
    """Guards the 6 -> 7 migration on real files of the previous release:
    every file opens at schema 7 with no saved id filter and everything
    else intact; the learner's first start reads its whole index (every id
    it applied is found at its first slot), then saves a filter with the
    slots it applies, and its next start loads that filter and still finds
    every id, the old ones and the new."""
    files = extract("v6_state_dir.tar.gz", tmp_path)
    assert len(files) == 7 and all(schema(p)[0] == 6 for p in files.values())
    expected = expected_log("v6_decided.json")
    firsts: dict[str, int] = {}
    for slot, _, rid, noop in expected:
        if not noop:
            firsts.setdefault(rid, slot)
    for path in files.values():
        with SqliteStorage(path) as store:
            assert store.saved_id_filter() is None and store.admitted
        assert schema(path)[0] == SCHEMA_VERSION == 7
    with SqliteStorage(files["acceptor-0"]) as store:
        assert [v.slot for v in store.votes_from(0)] == [21, 22, 23]
    settings = Settings(filter_save_ids=16)
    node, store = start_learner(files["learner-0"], settings)
    assert node.learner.once.filter_start == "none saved"
    assert node.learner.requests.lookup(list(firsts)) == firsts
    assert stored_log(store) == expected
    applied = store.applied
    new = {}
    for slot in range(applied + 1, applied + 4):
        rids = [f"new-{slot}-{i}" for i in range(40)]  # 120 ids: past a quarter of the index
        value = Value.of([Command(r, b"v", slot) for r in rids])
        for src in ("acceptor-0", "acceptor-1"):
            node.step(Accepted(src=src, dst="learner-0", ballot=Ballot(9, "proposer-0"),
                               slot=slot, value=value))
        store.save(node.ready().persist)
        new.update(dict.fromkeys(rids, slot))
    saved = store.saved_id_filter()
    store.close()
    assert saved is not None and applied < saved[0] <= applied + 3
    node, store = start_learner(files["learner-0"], settings)
    assert node.learner.once.filter_start == "saved"
    assert node.learner.requests.lookup([*firsts, *new]) == {**firsts, **new}
    store.close()
