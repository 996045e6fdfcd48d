"""Storage: SQLite state files survive restarts and crashes, and damaged or
foreign files are refused, untouched, instead of being started over empty."""

from __future__ import annotations

import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paxos_agents.core.commands import NOOP, Command, Value
from paxos_agents.core.ids import ZERO_BALLOT, Ballot
from paxos_agents.core.messages import Vote
from paxos_agents.core.ready import Persist, Record
from paxos_agents.runtime.storage import (
    APPLICATION_ID,
    FAULT_POINTS,
    SCHEMA_VERSION,
    MemoryStorage,
    SqliteStorage,
    Storage,
    StorageError,
)

REPO = Path(__file__).resolve().parents[2]


def cmd(request_id: str, payload: str = "x") -> Command:
    return Command(request_id, payload.encode())


def vote(slot: int, round_: int, node: str = "p1", *commands: Command) -> Vote:
    return Vote(slot, Ballot(round_, node), Value.of(commands))


def applied(*persists: Persist) -> Record:
    record = Record()
    for persist in persists:
        record.apply(persist)
    return record


def everything(storage: Storage) -> Record:
    """All a store holds: `load()` (what a node keeps in memory) plus what the
    node reads back through the DurableLog methods (votes, applied log)."""
    record = storage.load()
    record.votes = {v.slot: v for v in storage.votes_from(0)}
    piece = storage.read_log(0, 1 << 62)
    record.decisions = {**dict(piece.decisions),
                        **{s: v for s, v in record.decisions.items() if s > record.applied}}
    rids = {c.request_id for value in record.decisions.values() for c in value}
    record.requests = storage.first_slots(rids)
    return record


def reopen(path: Path) -> Record:
    with SqliteStorage(path) as storage:
        return everything(storage)


def write_state_file(path: Path, slots: int = 5) -> None:
    """A valid, cleanly closed state file with `slots` votes and decisions."""
    with SqliteStorage(path) as storage:
        storage.save(Persist(
            promised=Ballot(4, "p1"),
            votes=tuple(vote(s, 4, "p1", cmd(f"r{s}", "v" * 300)) for s in range(slots)),
            decisions=tuple((s, Value.of([cmd(f"r{s}", "v" * 300)])) for s in range(slots)),
            round=4,
        ))


PERSISTS = [
    Persist(promised=Ballot(1, "p1")),
    Persist(votes=(vote(0, 1, "p1", cmd("r0", "héllo 🐙")), vote(1, 1, "p1"))),  # slot 1: no-op
    Persist(decisions=((0, Value.of([cmd("r0", "héllo 🐙")])), (1, NOOP)), round=1),
    Persist(promised=Ballot(2, "p2"), votes=(vote(1, 2, "p2", cmd("r1"), cmd("r2", "")),)),
    Persist(round=7),
]


# --- both implementations ------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path):
    s = MemoryStorage() if request.param == "memory" else SqliteStorage(tmp_path / "state.db")
    yield s
    s.close()


def test_implementations_satisfy_the_protocol(storage: Storage) -> None:
    assert isinstance(storage, Storage)


def test_new_store_loads_empty(storage: Storage) -> None:
    assert storage.load() == Record()
    assert storage.load().promised == ZERO_BALLOT


def test_saves_merge_like_record_apply(storage: Storage) -> None:
    for persist in PERSISTS:
        storage.save(persist)
    expected = applied(*PERSISTS)
    assert everything(storage) == expected
    # The later vote in slot 1 replaced the earlier one; the promise moved on.
    assert expected.votes[1].ballot == Ballot(2, "p2") and expected.promised == Ballot(2, "p2")


def test_load_returns_a_copy(storage: Storage) -> None:
    storage.save(PERSISTS[2])
    storage.load().decisions.clear()
    assert storage.load().decisions


def test_persist_seconds_is_reported(storage: Storage) -> None:
    storage.save(Persist(round=1))
    assert isinstance(storage.persist_seconds, float) and storage.persist_seconds >= 0


# --- SQLite: round trips ---------------------------------------------------------


def test_creates_missing_file_and_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.db"
    with SqliteStorage(path) as storage:
        assert storage.load() == Record()
    assert path.is_file()
    assert not list(path.parent.glob("*.creating*"))
    assert reopen(path) == Record()


def test_round_trips_across_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SqliteStorage(path) as storage:
        for persist in PERSISTS[:3]:
            storage.save(persist)
    assert reopen(path) == applied(*PERSISTS[:3])
    with SqliteStorage(path) as storage:
        for persist in PERSISTS[3:]:
            storage.save(persist)
    assert reopen(path) == applied(*PERSISTS)


def test_one_save_holding_several_merged_steps(tmp_path: Path) -> None:
    """The runtime merges steps into one Persist (group commit); the same
    slot may appear twice and the last entry wins, as in Record.apply."""
    merged = Persist(
        promised=Ballot(3, "p1"),
        votes=(vote(5, 2, "p1", cmd("a")), vote(6, 3, "p1", cmd("b")), vote(5, 3, "p1", cmd("c"))),
        decisions=((4, NOOP), (4, Value.of([cmd("d")]))),
        round=3,
    )
    with SqliteStorage(tmp_path / "state.db") as storage:
        storage.save(merged)
    record = reopen(tmp_path / "state.db")
    assert record == applied(merged)
    assert record.votes[5] == vote(5, 3, "p1", cmd("c")) and record.decisions[4] == Value.of([cmd("d")])


texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)  # UTF-8 request ids
persists = st.builds(
    Persist,
    promised=st.none() | st.builds(Ballot, st.integers(0, 2**62), texts),
    votes=st.lists(
        st.builds(Vote, st.integers(0, 50), st.builds(Ballot, st.integers(0, 2**62), texts),
                  st.lists(st.builds(Command, texts, st.binary(max_size=30)), max_size=3).map(Value.of)),
        max_size=4,
    ).map(tuple),
    decisions=st.lists(
        st.tuples(st.integers(0, 50),
                  st.lists(st.builds(Command, texts, st.binary(max_size=12)), max_size=3).map(Value.of)),
        max_size=4,
    ).map(tuple),
    round=st.none() | st.integers(0, 2**62),
    # JSON-able lists, stored as they are (configs.py's History.to_json is one).
    configs=st.none() | st.lists(st.integers(-2**62, 2**62) | texts | st.lists(texts, max_size=3),
                                 max_size=4),
)


@given(st.lists(persists, max_size=6), st.integers(0, 6))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_sequence_of_saves_reloads_as_applied(history: list[Persist], split: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "state.db"
        with SqliteStorage(path) as storage:
            for persist in history[:split]:
                storage.save(persist)
        with SqliteStorage(path) as storage:
            for persist in history[split:]:
                storage.save(persist)
            assert everything(storage) == applied(*history)
        assert reopen(path) == applied(*history)


def test_empty_persist_writes_nothing(tmp_path: Path) -> None:
    calls: list[str] = []
    with SqliteStorage(tmp_path / "state.db", fault=calls.append) as storage:
        storage.save(Persist(round=1))
        seconds = storage.persist_seconds
        calls.clear()
        storage.save(Persist())
        assert calls == [] and storage.persist_seconds == seconds
        assert everything(storage) == applied(Persist(round=1))


# --- SQLite: settings and schema ------------------------------------------------------


def test_wal_and_synchronous_full_are_set(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SqliteStorage(path) as storage:
        storage.save(Persist(round=1))
        # synchronous is per connection: ask the storage's own.
        assert storage._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert storage._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # journal_mode, application_id and user_version live in the file.
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == {"meta", "votes", "decisions", "requests", "peers", "id_filter"}
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        assert meta == {"schema_version": SCHEMA_VERSION, "promised_round": 0,
                        "promised_node": "", "round": 1, "compacted": 0, "applied": -1,
                        "log_start": 0, "incarnation": 0, "admitted": 0}
    finally:
        conn.close()


def test_rows_are_stored_in_the_documented_columns(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SqliteStorage(path) as storage:
        storage.save(Persist(promised=Ballot(5, "p2"), votes=(vote(3, 5, "p2", cmd("r", "ü")),),
                             decisions=((2, NOOP),)))
    conn = sqlite3.connect(path)
    try:
        # A value is its batch encoding as a BLOB (core/commands.py), the no-op b"".
        votes = conn.execute("SELECT *, typeof(value) FROM votes").fetchall()
        assert votes == [(3, 5, "p2", Value.of([Command("r", "ü".encode())]).data, "blob")]
        assert conn.execute("SELECT *, typeof(value) FROM decisions").fetchall() == [(2, b"", "blob")]
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        assert (meta["promised_round"], meta["promised_node"]) == (5, "p2")
    finally:
        conn.close()


# --- SQLite: refusing files ---------------------------------------------------------------


def assert_refused(path: Path, message: str) -> None:
    before = path.read_bytes()
    with pytest.raises(StorageError) as info:
        SqliteStorage(path)
    text = str(info.value)
    assert str(path) in text and message in text, text
    assert "\n" not in text
    assert path.read_bytes() == before, "a refused file must be left untouched"


def test_refuses_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"promised=3\n" * 500)
    assert_refused(path, "is not a paxosctl state file")


def test_refuses_short_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"SQLite format 3\x00")
    assert_refused(path, "is not a paxosctl state file")


def test_refuses_zero_byte_file(tmp_path: Path) -> None:
    """We create files whole by rename, so an empty one is damage, not a
    crash during creation; starting it empty could forget promises."""
    path = tmp_path / "state.db"
    path.touch()
    assert_refused(path, "is corrupt: empty file")


def test_refuses_database_with_overwritten_pages(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    write_state_file(path, slots=200)
    data = bytearray(path.read_bytes())
    assert len(data) >= 8 * 4096
    middle = (len(data) // 4096 // 2) * 4096  # the start of a page mid-file
    data[middle:middle + 2048] = bytes(range(256)) * 8
    path.write_bytes(bytes(data))
    assert_refused(path, "is corrupt:")


def test_refuses_truncated_database(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    write_state_file(path, slots=200)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_refused(path, "is corrupt:")


def test_refuses_other_applications_database(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 1234")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value)")
    conn.commit()
    conn.close()
    assert_refused(path, "is not a paxosctl state file (application_id 0x000004d2)")


def test_refuses_plain_sqlite_database(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    assert_refused(path, "is not a paxosctl state file")


def test_refuses_newer_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    write_state_file(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 9")
    conn.commit()
    conn.close()
    assert_refused(path, f"has schema version 9; this paxosctl reads 1 to {SCHEMA_VERSION} (written by a newer paxosctl")


def test_refuses_directory(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="not a regular file"):
        SqliteStorage(tmp_path)


def test_refused_file_stays_refused(tmp_path: Path) -> None:
    """No half-open state: a second attempt sees the same refusal."""
    path = tmp_path / "state.db"
    path.write_bytes(b"\x00" * 4096)
    for _ in range(2):
        assert_refused(path, "is not a paxosctl state file")


def test_leftover_from_a_crashed_creation_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    (tmp_path / "state.db.creating").write_bytes(b"half a database")
    with SqliteStorage(path) as storage:
        assert storage.load() == Record()
    assert not (tmp_path / "state.db.creating").exists()


# --- SQLite: failures inside save ----------------------------------------------------------


class SimulatedCrash(Exception):
    pass


def failing_at(point: str):
    def fault(at: str) -> None:
        if at == point:
            raise SimulatedCrash(point)
    return fault


def test_fault_points_are_called_in_order(tmp_path: Path) -> None:
    calls: list[str] = []
    with SqliteStorage(tmp_path / "state.db", fault=calls.append) as storage:
        storage.save(Persist(round=1))
    assert tuple(calls) == FAULT_POINTS


@pytest.mark.parametrize("point", ["before-write", "after-write", "before-commit"])
def test_failure_before_commit_keeps_previous_state(tmp_path: Path, point: str) -> None:
    path = tmp_path / "state.db"
    with SqliteStorage(path) as storage:
        storage.save(PERSISTS[0])
    storage = SqliteStorage(path, fault=failing_at(point))
    with pytest.raises(SimulatedCrash):
        storage.save(Persist(promised=Ballot(9, "p9"), votes=(vote(0, 9, "p9"),), round=9))
    # The store refuses further use: the agent must stop, not carry on.
    with pytest.raises(StorageError, match="an earlier save failed"):
        storage.save(Persist(round=10))
    storage.close()
    assert reopen(path) == applied(PERSISTS[0])


def test_failure_after_commit_keeps_new_state(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    new = Persist(promised=Ballot(9, "p9"), votes=(vote(0, 9, "p9"),), round=9)
    storage = SqliteStorage(path, fault=failing_at("after-commit"))
    with pytest.raises(SimulatedCrash):
        storage.save(new)
    storage.close()
    assert reopen(path) == applied(new)


def test_sqlite_error_in_save_raises_storage_error(tmp_path: Path) -> None:
    def fault(point: str) -> None:
        if point == "after-write":
            raise sqlite3.OperationalError("disk I/O error")

    path = tmp_path / "state.db"
    storage = SqliteStorage(path, fault=fault)
    with pytest.raises(StorageError, match=r"cannot save to .*state.db: disk I/O error"):
        storage.save(Persist(round=3))
    storage.close()
    assert reopen(path) == Record()


def test_unstorable_value_raises_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SqliteStorage(path) as storage:
        with pytest.raises(StorageError, match="cannot save"):
            storage.save(Persist(round=2**64))  # beyond SQLite's 64-bit integers
    assert reopen(path) == Record()


def test_closed_store_refuses_use(tmp_path: Path) -> None:
    storage = SqliteStorage(tmp_path / "state.db")
    storage.close()
    storage.close()  # idempotent
    with pytest.raises(StorageError, match="is closed"):
        storage.load()
    with pytest.raises(StorageError, match="is closed"):
        storage.save(Persist(round=1))


# --- SQLite: real process crashes -----------------------------------------------------------

# Saves the pickled Persists in order, printing the count after each save
# returns. With crash_after = N >= 0 it dies at "after-write" of save N+1,
# i.e. with N saves committed and the next one written but not committed.
CHILD = r"""
import os, pickle, signal, sys
from paxos_agents.runtime.storage import SqliteStorage

path, persists_file, crash_after, how = sys.argv[1:]
crash_after = int(crash_after)
with open(persists_file, "rb") as f:
    persists = pickle.load(f)
saved = 0

def fault(point):
    if point == "after-write" and saved == crash_after:
        if how == "exit":
            os._exit(9)
        os.kill(os.getpid(), signal.SIGKILL)

storage = SqliteStorage(path, fault=fault)
for persist in persists:
    storage.save(persist)
    saved += 1
    print(saved, flush=True)
"""


def workload(count: int) -> list[Persist]:
    """Saves that touch every kind of row and overwrite earlier slots; every
    third one also replaces the configuration history."""
    return [
        Persist(
            promised=Ballot(i, f"p{i % 3}"),
            votes=(vote(i, i, "p1", cmd(f"r{i}", "é" * (i % 5))), vote(max(i - 1, 0), i, "p2")),
            decisions=((i // 2, Value.of([cmd(f"r{i}")])),),
            round=i,
            configs=[1, 32, i, [[0, 0, ["a0", "a1", "a2"]]]] if i % 3 == 0 else None,
        )
        for i in range(count)
    ]


def spawn_child(tmp_path: Path, persists: list[Persist], crash_after: int, how: str) -> subprocess.Popen:
    persists_file = tmp_path / "persists.pickle"
    persists_file.write_bytes(pickle.dumps(persists))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "state.db"), str(persists_file),
         str(crash_after), how],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.mark.parametrize("how", ["exit", "sigkill"])
@pytest.mark.parametrize("committed", [0, 1, 13])
def test_crash_mid_save_keeps_exactly_the_committed_prefix(tmp_path: Path, how: str, committed: int) -> None:
    # The crashing save is big enough (~3 MB, over SQLite's default 2 MB page
    # cache) that its uncommitted pages spill into the WAL file before the
    # crash, so recovery must actually skip frames on disk.
    big = Persist(
        promised=Ballot(10**6, "big"),
        votes=tuple(vote(s, 10**6, "big", cmd(f"b{s}", "z" * 1000)) for s in range(3000)),
        round=10**6,
        configs=[1, 32, 10**6, [[0, 0, ["big"]]]],
    )
    persists = [*workload(committed), big]
    child = spawn_child(tmp_path, persists, committed, how)
    out, err = child.communicate(timeout=60)
    assert child.returncode == (9 if how == "exit" else -signal.SIGKILL), err
    assert out.split() == [str(i) for i in range(1, committed + 1)]
    wal = tmp_path / "state.db-wal"
    assert wal.stat().st_size > 1_000_000, "the crashing save should have reached the WAL"

    record = reopen(tmp_path / "state.db")
    assert record == applied(*persists[:committed])


def test_sigkill_at_a_random_moment_keeps_a_committed_prefix(tmp_path: Path) -> None:
    persists = workload(400)
    child = spawn_child(tmp_path, persists, -1, "none")
    reported = 0
    for line in child.stdout:  # kill it part-way through, mid-loop
        reported = int(line)
        if reported == 150:
            child.kill()
            break
    rest, _ = child.communicate(timeout=60)
    reported = max([reported, *map(int, rest.split())])
    assert child.returncode == -signal.SIGKILL
    assert reported < len(persists), "the child finished before it was killed"

    record = reopen(tmp_path / "state.db")
    # The save in flight when the kill landed may have committed unreported.
    assert record in (applied(*persists[:reported]), applied(*persists[:reported + 1]))


def test_the_incarnation_counts_every_start_and_peers_are_remembered(tmp_path: Path) -> None:
    """Guards the store's incarnation (schema 5): each start is a higher
    number, committed before `start_incarnation` returns (a second connection
    reads it at once); a new store is not admitted until `admit`; a peer's
    newest welcomed incarnation survives a reopen."""
    path = tmp_path / "state.db"
    with SqliteStorage(path) as store:
        assert not store.admitted and store.start_incarnation() == 1
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("SELECT value FROM meta WHERE key = 'incarnation'").fetchone() == (1,)
        finally:
            conn.close()
        store.remember_welcome("b", 4)
        store.admit(3)
    with SqliteStorage(path) as store:
        assert store.admitted and store.incarnation == 3 and store.welcomed() == {"b": 4}
        assert store.start_incarnation() == 4
