"""SQLite storage, version 2: compaction, retention, the request index,
constant-time load, reads for the core, and migration from version 1."""

from __future__ import annotations

import sqlite3
import tarfile
from pathlib import Path

import pytest

from paxos_agents.core.commands import NOOP, Command, Value
from paxos_agents.core.ids import Ballot
from paxos_agents.core.messages import Vote
from paxos_agents.core.ready import Persist
from paxos_agents.runtime.storage import SCHEMA_VERSION, SqliteStorage

DATA = Path(__file__).resolve().parents[1] / "data"


def cmd(rid: str, payload: str = "x") -> Command:
    return Command(rid, payload.encode())


def votes(slots: range, payload: str = "v") -> tuple[Vote, ...]:
    return tuple(Vote(s, Ballot(1, "p1"), Value.of([cmd(f"r{s}", payload)])) for s in slots)


def test_compaction_point_deletes_votes_below_it_in_the_same_save(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with SqliteStorage(path) as store:
        store.save(Persist(votes=votes(range(10))))
        store.save(Persist(compacted=6, votes=votes(range(10, 12))))
        assert [v.slot for v in store.votes_from(0)] == [6, 7, 8, 9, 10, 11]
    with SqliteStorage(path) as store:
        assert store.load().compacted == 6
        assert store.load().votes == {}  # votes stay on disk: read on demand
        assert [v.slot for v in store.votes_from(8)] == [8, 9, 10, 11]


def test_load_reads_only_the_decisions_above_the_applied_prefix(tmp_path: Path) -> None:
    with SqliteStorage(tmp_path / "l.db") as store:
        decided = tuple((s, Value.of([cmd(f"r{s}")])) for s in (*range(5), 7))
        store.save(Persist(decisions=decided, applied=4,
                           requests=tuple((f"r{s}", s) for s in range(5))))
        record = store.load()
        assert record.applied == 4 and set(record.decisions) == {7}
        assert store.first_slots(["r1", "r4", "nope"]) == {"r1": 1, "r4": 4}


def test_request_index_keeps_the_first_slot(tmp_path: Path) -> None:
    with SqliteStorage(tmp_path / "l.db") as store:
        store.save(Persist(decisions=((3, Value.of([cmd("a")])),), requests=(("a", 3),)))
        store.save(Persist(decisions=((9, Value.of([cmd("a"), cmd("b")])),),
                           requests=(("a", 9), ("b", 9))))
        assert store.first_slots(["a", "b"]) == {"a": 3, "b": 9}


def test_read_log_is_consecutive_applied_and_bounded(tmp_path: Path) -> None:
    with SqliteStorage(tmp_path / "l.db") as store:
        decided = tuple((s, Value.of([cmd(f"r{s}", "p" * 100)])) for s in range(20))
        store.save(Persist(decisions=decided + ((25, NOOP),), applied=19,
                           requests=tuple((f"r{s}", s) for s in range(20))))
        piece = store.read_log(5, 1 << 20)
        assert piece.start == 5 and [s for s, _ in piece.decisions] == list(range(5, 20))
        assert piece.first_slots == {f"r{s}": s for s in range(5, 20)}
        small = store.read_log(0, 250)  # about 2 slots of ~120 bytes
        assert 1 <= len(small.decisions) <= 3
        assert store.read_log(20, 1 << 20).decisions == ()  # 25 is not applied


def test_retention_deletes_decisions_and_index_below_log_start(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    with SqliteStorage(path) as store:
        decided = tuple((s, Value.of([cmd(f"r{s}")])) for s in range(10))
        store.save(Persist(decisions=decided, applied=9,
                           requests=tuple((f"r{s}", s) for s in range(10))))
        store.save(Persist(log_start=6))
        piece = store.read_log(0, 1 << 20)
        assert piece.start == 6 and [s for s, _ in piece.decisions] == [6, 7, 8, 9]
        assert store.first_slots([f"r{s}" for s in range(10)]) == {f"r{s}": s for s in range(6, 10)}
    with SqliteStorage(path) as store:
        assert store.load().log_start == 6 and store.log_start == 6


def test_file_stops_growing_once_old_rows_are_deleted(tmp_path: Path) -> None:
    """Guards bounded acceptor state: pages freed by compaction are reused."""
    path = tmp_path / "a.db"
    sizes = []
    with SqliteStorage(path) as store:
        for round_ in range(6):
            base = round_ * 2000
            for start in range(base, base + 2000, 200):
                store.save(Persist(votes=votes(range(start, start + 200), "p" * 100)))
            store.save(Persist(compacted=base + 1900))
            store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            sizes.append(path.stat().st_size)
    assert sizes[-1] <= sizes[1] * 1.05, sizes


def _v1_file(path: Path, decisions: dict[int, str]) -> None:
    """A state file exactly as paxosctl 0.1 (schema 1) wrote it."""
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id={0x50586374}")
    conn.execute("PRAGMA user_version=1")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value NOT NULL)")
    conn.execute("CREATE TABLE votes (slot INTEGER PRIMARY KEY, ballot_round INTEGER NOT NULL,"
                 " ballot_node TEXT NOT NULL, value TEXT NOT NULL)")
    conn.execute("CREATE TABLE decisions (slot INTEGER PRIMARY KEY, value TEXT NOT NULL)")
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [
        ("schema_version", 1), ("promised_round", 3), ("promised_node", "p1"), ("round", 0)])
    conn.executemany("INSERT INTO decisions VALUES (?, ?)", decisions.items())
    conn.commit()
    conn.close()


def test_migrates_a_version_1_learner_file(tmp_path: Path) -> None:
    """Version 1 replayed the whole log at each start; the migration derives the
    applied prefix and the request index the same way, once."""
    path = tmp_path / "learner.db"
    _v1_file(path, {0: '[["a","1"]]', 1: '[["b","2"],["a","1"]]', 2: "[]",
                    3: '[["c","3"],["b","2"]]', 5: '[["d","4"]]'})
    with SqliteStorage(path) as store:
        record = store.load()
        assert record.applied == 3 and set(record.decisions) == {5}
        assert record.promised == Ballot(3, "p1")
        assert store.first_slots(["a", "b", "c", "d"]) == {"a": 0, "b": 1, "c": 3}
        conn = store._conn
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    with SqliteStorage(path) as store:  # and it stays migrated
        assert store.load().applied == 3


def test_migrates_the_state_dir_made_by_paxosctl_0_1(tmp_path: Path) -> None:
    """The files of a real 0.1 cluster (tests/data/v1_state_dir.tar.gz, made by
    `paxosctl up`, 20 proposes and a 400-command bench) open as version 2."""
    with tarfile.open(DATA / "v1_state_dir.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    files = sorted((tmp_path / "state").glob("*.db"))
    assert len(files) == 7
    for path in files:
        with SqliteStorage(path) as store:
            record = store.load()
            if path.name.startswith("learner"):
                assert record.applied >= 20 and store.first_slots(["old-7"]) == {"old-7": 7}
            if path.name.startswith("acceptor"):
                assert store.votes_from(0)


def test_refuses_a_version_it_does_not_know_without_touching_it(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    _v1_file(path, {})
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(Exception, match=f"schema version {SCHEMA_VERSION + 1}.*upgrade paxosctl"):
        SqliteStorage(path)
    assert path.read_bytes() == before
