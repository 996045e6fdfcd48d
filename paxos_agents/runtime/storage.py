"""Durable state for one node: promise, votes, decisions, round, configuration history.

The runtime calls `save(persist)` and only after it returns sends the
messages that depend on it (`Ready.send_after_persist`); after a crash it
rebuilds the node from `load()`, which reads only what the node keeps in
memory (a few scalars and a learner's undecided tail), so start-up does
not grow with the log; the node reads votes, decisions and its request
index back through the store's `DurableLog` methods when it needs them.
An acceptor that forgot a promise or a vote could let two different
values be chosen, so a `Storage` must

- make a `save` durable before returning, all of it or none of it;
- fail loudly (`StorageError`) rather than lose or invent state; in
  particular never start empty over an existing file it cannot read.

`SqliteStorage` is the real one; `MemoryStorage` is for tests and the
simulator. One process owns a store at a time (the supervisor runs one
agent per node); nothing here locks out a second writer.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol, runtime_checkable

from paxos_agents.core.commands import BatchError, Command, Value
from paxos_agents.core.ids import Ballot
from paxos_agents.core.messages import Vote
from paxos_agents.core.ready import LogPiece, Persist, Record

__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "FAULT_POINTS",
    "StorageError",
    "Storage",
    "MemoryStorage",
    "SqliteStorage",
]

#: `PRAGMA application_id` of every paxosctl state file: ASCII "PXct".
APPLICATION_ID = 0x50586374

#: The schema this code writes and reads (`PRAGMA user_version` and meta.schema_version).
#: Older files are migrated when first opened: 1 (paxosctl 0.1) -> 2 -> 3 (0.2) -> 4.
SCHEMA_VERSION = 4

#: Files up to this size get a full `quick_check` when opened; above it only
#: the header and schema are checked at start (a page damaged later fails
#: the read or write that meets it), so start-up stays constant-time.
QUICK_CHECK_MAX_BYTES = 16 * 1024 * 1024

#: Request ids per `first_slots` query (SQLite's parameter limit is higher).
_IDS_PER_QUERY = 500

#: Where `SqliteStorage` calls its `fault` hook: once opened, then in each `save`, in order.
FAULT_POINTS = ("open", "before-write", "after-write", "after-commit")

_SQLITE_MAGIC = b"SQLite format 3\x00"

# `value` in meta has no declared type (BLOB affinity), so ints stay ints
# and text stays text. Node ids are TEXT.
# Version 2: the learner's request index (request id -> first slot), and
# meta keys for the compaction point, the applied prefix and the first
# retained slot. Deleted rows' pages are reused by later inserts, so the
# file stops growing once compaction or retention deletes old rows.
# Version 3: a vote's or decision's value is a BLOB, `Value.data` as it is
# (the batch encoding of core/commands.py, payloads as bytes); version 2
# held the old codec's JSON text there.
# Version 4: meta key "configs", the configuration history as one JSON
# text (`Persist.configs`, stored and returned as it is); absent until the
# node first writes one, and in every file migrated from 3.
_REQUESTS_TABLE = ("CREATE TABLE requests (request_id TEXT PRIMARY KEY NOT NULL,"
                   " slot INTEGER NOT NULL) WITHOUT ROWID")
_META_ADDED_IN_2 = (("compacted", 0), ("applied", -1), ("log_start", 0))
_VOTES_TABLE = ("CREATE TABLE votes (slot INTEGER PRIMARY KEY, ballot_round INTEGER NOT NULL,"
                " ballot_node TEXT NOT NULL, value BLOB NOT NULL)")
_DECISIONS_TABLE = "CREATE TABLE decisions (slot INTEGER PRIMARY KEY, value BLOB NOT NULL)"
_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value NOT NULL)",
    _VOTES_TABLE,
    _DECISIONS_TABLE,
    _REQUESTS_TABLE,
)
_INITIAL_META = (
    ("schema_version", SCHEMA_VERSION),
    ("promised_round", 0),  # ZERO_BALLOT: below every real ballot
    ("promised_node", ""),
    ("round", 0),
    *_META_ADDED_IN_2,
)


class StorageError(Exception):
    """The store cannot be opened, read or written. The message is one line
    naming the file. An agent that gets this from `save` must stop: it may
    not send what depended on the save."""


@runtime_checkable
class Storage(Protocol):
    """Where a node's `Record` lives.

    - `load()` returns everything committed so far (a fresh `Record` for a
      new store); the caller owns the returned object.
    - `save(persist)` durably merges `persist` (as `Record.apply` would),
      atomically, before returning; an empty `Persist` is a no-op. Raises
      `StorageError` on failure, after which the store refuses further use.
      `persist.configs` (a JSON-able list, else TypeError or ValueError
      before anything is written) replaces the stored history; `load()`
      returns it as JSON gives it back (lists), None if none was saved.
    - `close()` releases the store; idempotent.
    - `persist_seconds` is how long the last non-empty `save` took.
    - the `DurableLog` reads (`votes_from`, `first_slots`, `read_log`) see
      every committed `save`; `log_start` and `applied` are a learner's
      first retained and highest applied slots.
    """

    persist_seconds: float
    log_start: int
    applied: int

    def load(self) -> Record: ...

    def save(self, persist: Persist) -> None: ...

    def close(self) -> None: ...

    def votes_from(self, slot: int) -> list[Vote]: ...

    def first_slots(self, request_ids) -> dict[str, int]: ...

    def request_index(self) -> Iterable[tuple[str, int]]: ...

    def read_log(self, first_slot: int, max_bytes: int) -> LogPiece: ...


class MemoryStorage:
    """A `Storage` in memory: durable only for the life of the object."""

    def __init__(self, record: Record | None = None) -> None:
        self._record = record.copy() if record is not None else Record()
        self._record.configs = _configs_copy(self._record.configs)
        self.persist_seconds = 0.0

    def load(self) -> Record:
        record = self._record.copy()
        # As SqliteStorage: the caller owns the history it gets (a new list).
        record.configs = _configs_copy(record.configs)
        return record

    def save(self, persist: Persist) -> None:
        if not persist:
            return
        start = time.perf_counter()
        if persist.configs is not None:
            # Stored as SqliteStorage stores it: its JSON form, not the caller's list.
            persist = replace(persist, configs=_configs_copy(persist.configs))
        self._record.apply(persist)
        self.persist_seconds = time.perf_counter() - start

    def close(self) -> None:
        pass

    # DurableLog: the record in memory is the "disk".
    def votes_from(self, slot: int) -> list[Vote]:
        return self._record.votes_from(slot)

    def first_slots(self, request_ids) -> dict[str, int]:
        return self._record.first_slots(request_ids)

    def request_index(self) -> list[tuple[str, int]]:
        return self._record.request_index()

    def read_log(self, first_slot: int, max_bytes: int) -> LogPiece:
        return self._record.read_log(first_slot, max_bytes)

    @property
    def log_start(self) -> int:
        return self._record.log_start

    @property
    def applied(self) -> int:
        return self._record.applied


class SqliteStorage:
    """A `Storage` in one SQLite file (WAL journal, `synchronous=FULL`).

    `SqliteStorage(path)` opens `path`, creating it (and its parent
    directories) if it does not exist. An existing file is used only if it
    is an intact paxosctl state file of this schema version or an older one
    (migrated to this one, in one transaction, before use); otherwise the
    constructor raises `StorageError` and leaves the file untouched.

    Each non-empty `save` is one transaction (`BEGIN IMMEDIATE ... COMMIT`),
    fsynced before it returns; the runtime merges several steps' `Persist`s
    into one `save` to share the fsync (group commit).

    `identity` is (cluster id, member id): a new file records it, an existing
    file of another cluster or member is refused (`StorageError`), and an
    unmarked one (paxosctl 0.1) is marked with it.

    `fault`, for tests only, is called with each name in `FAULT_POINTS` as
    `save` passes that point; make it raise or `os._exit` to simulate a
    failure or crash there.
    """

    def __init__(self, path: str | os.PathLike[str], fault: Callable[[str], None] | None = None,
                 identity: tuple[str, str] | None = None) -> None:
        self.path = Path(path)
        self.persist_seconds = 0.0
        self._fault = fault
        self._failed: str | None = None
        self._conn: sqlite3.Connection | None = None
        self._applied = -1
        self._log_start = 0
        if not os.path.lexists(self.path):
            self._create(identity)
        self._conn = self._open_existing()
        try:
            meta = dict(self._conn.execute(
                "SELECT key, value FROM meta WHERE key IN"
                " ('applied', 'log_start', 'cluster_id', 'member_id')"))
            self._applied, self._log_start = _int(meta["applied"]), _int(meta["log_start"])
            if identity is not None:
                self._claim(meta, identity)
        except (sqlite3.Error, KeyError, TypeError) as exc:
            self._conn.close()
            raise StorageError(f"{self.path} is corrupt: bad meta ({_why(exc)})") from None
        except StorageError:
            self._conn.close()
            raise
        if fault:
            fault("open")

    # --- opening -------------------------------------------------------------

    def _claim(self, meta: dict, identity: tuple[str, str]) -> None:
        """Refuse a store of another cluster or member; adopt an unmarked one.

        A store written before stores recorded their owner (paxosctl 0.1)
        is marked now, on its first start under a registry.
        """
        cluster_id, member_id = identity
        if "member_id" not in meta:
            assert self._conn is not None
            self._conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                   [("cluster_id", cluster_id), ("member_id", member_id)])
            return
        if (meta.get("cluster_id"), meta["member_id"]) != identity:
            raise StorageError(
                f"{self.path} belongs to member {meta['member_id']} of cluster "
                f"{meta.get('cluster_id')}, not to member {member_id} of cluster {cluster_id}: "
                "it was copied or moved here; put the right file back")

    def _create(self, identity: tuple[str, str] | None = None) -> None:
        # A new store is built whole under a temporary name and renamed into
        # place, so `path` either does not exist or holds the complete schema.
        # That is why an existing zero-byte `path` is refused below instead of
        # being treated as new (which SQLite would happily do): we never leave
        # one, so it means damage (truncation, a stray `> file`) of a file that
        # may have held promises. Creating in place would leave a 0-byte or a
        # schema-less file after a crash during creation: SQLite writes page 1
        # as soon as journal_mode=WAL is set, before any schema exists.
        # Leftovers of an earlier crashed creation never held state (the rename
        # never happened), so they are removed.
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create directory {self.path.parent}: {exc.strerror}") from None
        tmp = self.path.with_name(self.path.name + ".creating")
        try:
            for leftover in (tmp, *(Path(f"{tmp}{s}") for s in ("-journal", "-wal", "-shm"))):
                leftover.unlink(missing_ok=True)
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", _INITIAL_META)
                if identity is not None:
                    conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                                     [("cluster_id", identity[0]), ("member_id", identity[1])])
                conn.execute("COMMIT")
                # Switch now so the file is born in WAL mode; closing the only
                # connection checkpoints and removes the -wal file, so the
                # single file we rename holds everything.
                conn.execute("PRAGMA journal_mode=WAL")
            finally:
                conn.close()
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot create {self.path}: {_why(exc)}") from None

    def _open_existing(self) -> sqlite3.Connection:
        path = self.path
        try:
            st = os.stat(path)
            if not stat.S_ISREG(st.st_mode):
                raise StorageError(f"{path} is not a paxosctl state file (not a regular file)")
            with open(path, "rb") as f:
                header = f.read(100)
        except OSError as exc:
            raise StorageError(f"cannot open {path}: {exc.strerror}") from None
        if not header:
            raise StorageError(
                f"{path} is corrupt: empty file (paxosctl never leaves an empty state file;"
                " move it aside to start this node with no state)"
            )
        # Checked by hand first so a foreign file is never handed to SQLite.
        if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
            raise StorageError(f"{path} is not a paxosctl state file (not a SQLite database)")
        try:
            # mode=rw: never create; the file was there a moment ago.
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, isolation_level=None)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {path}: {exc}") from None
        try:
            self._check(conn)
            # Only now may we write (switching to WAL writes the header): the
            # file is known to be ours. Both are no-ops for our own files
            # except synchronous, which is per connection.
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise StorageError(f"cannot use {path}: journal_mode is {mode}, WAL unavailable")
            conn.execute("PRAGMA synchronous=FULL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                _migrate(conn, version, path)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.OperationalError):
                raise StorageError(f"cannot open {path}: {exc}") from None
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"{path} is corrupt: {exc}") from None
            raise
        return conn

    def _check(self, conn: sqlite3.Connection) -> None:
        """Raise StorageError unless `conn` is an intact state file of our schema."""
        path = self.path
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if app_id != APPLICATION_ID:
            raise StorageError(f"{path} is not a paxosctl state file (application_id {app_id:#010x})")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (1, 2, 3, SCHEMA_VERSION):
            raise StorageError(
                f"{path} has schema version {version}; this paxosctl reads 1 to {SCHEMA_VERSION}"
                + (" (written by a newer paxosctl: upgrade paxosctl to use it)"
                   if isinstance(version, int) and version > SCHEMA_VERSION else ""))
        # quick_check reads every page (O(size)) but not index contents. It
        # is what turns bit rot into a refusal to start instead of a wrong
        # answer; it runs on files that stay small (acceptors, proposers,
        # learners with a short retained log), and not on a long learner log,
        # whose start-up would otherwise grow with it.
        if os.path.getsize(path) > QUICK_CHECK_MAX_BYTES:
            problems = ["ok"]
        else:
            problems = [
            line
                for (row,) in conn.execute("PRAGMA quick_check(3)")
                for line in str(row).splitlines()
                if line and not line.startswith("***")  # "*** in database main ***"
            ]
        if problems != ["ok"]:
            more = " (and more)" if len(problems) > 1 else ""  # quick_check(3) stops at 3
            raise StorageError(f"{path} is corrupt: {problems[0]}{more}")
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        if meta.get("schema_version") != version:
            raise StorageError(
                f"{path} is corrupt: meta schema_version {meta.get('schema_version')!r}"
                f" disagrees with user_version {version}"
            )

    # --- the Storage interface -----------------------------------------------

    def load(self) -> Record:
        """What the node keeps in memory, as a new `Record`: the scalars and the
        decisions above the applied prefix (votes, the applied log and the
        request index stay on disk; read them with the `DurableLog` methods)."""
        conn = self._usable()
        try:
            conn.execute("BEGIN")  # one snapshot for both reads
            try:
                meta = dict(conn.execute("SELECT key, value FROM meta"))
                applied = _int(meta["applied"])
                decision_rows = conn.execute(
                    "SELECT slot, value FROM decisions WHERE slot > ? ORDER BY slot", (applied,)
                ).fetchall()
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read {self.path}: {exc}") from None
        except (KeyError, TypeError) as exc:
            raise StorageError(f"{self.path} is corrupt: bad meta ({_why(exc)})") from None
        try:
            record = Record(
                promised=Ballot(_int(meta["promised_round"]), _text(meta["promised_node"])),
                decisions={slot: _blob_value(value) for slot, value in decision_rows},
                round=_int(meta["round"]),
                floor=_int(meta.get("floor", -1)),
                compacted=_int(meta["compacted"]),
                applied=applied,
                log_start=_int(meta["log_start"]),
                configs=_configs_from_text(meta.get("configs")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StorageError(f"{self.path} is corrupt: bad row ({_why(exc)})") from None
        self._applied, self._log_start = record.applied, record.log_start
        return record

    # --- DurableLog: what the node reads back ----------------------------------

    def votes_from(self, slot: int) -> list[Vote]:
        """Every vote in slots >= `slot`, in slot order."""
        rows = self._read("SELECT slot, ballot_round, ballot_node, value FROM votes"
                          " WHERE slot >= ? ORDER BY slot", (slot,))
        return [Vote(s, Ballot(r, n), self._value(v)) for s, r, n, v in rows]

    def first_slots(self, request_ids) -> dict[str, int]:
        """The request index entries of `request_ids` (request id -> first slot)."""
        ids = list(request_ids)
        found: dict[str, int] = {}
        for i in range(0, len(ids), _IDS_PER_QUERY):
            part = ids[i:i + _IDS_PER_QUERY]
            marks = ",".join("?" * len(part))
            found.update(self._read(
                f"SELECT request_id, slot FROM requests WHERE request_id IN ({marks})", part))
        return found

    def request_index(self) -> Iterator[tuple[str, int]]:
        """Every entry of the request index, streamed from one read cursor."""
        cursor = self._cursor("SELECT request_id, slot FROM requests", ())
        try:
            while rows := cursor.fetchmany(4096):
                yield from rows
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read {self.path}: {exc}") from None
        finally:
            cursor.close()

    def read_log(self, first_slot: int, max_bytes: int) -> LogPiece:
        """Applied slots from max(`first_slot`, the first retained one), consecutive,
        about `max_bytes` of stored value bytes at most (at least one slot)."""
        start = max(first_slot, self._log_start)
        decisions: list[tuple[int, Value]] = []
        size = 0
        expect = start
        cursor = self._cursor("SELECT slot, value FROM decisions WHERE slot >= ? AND slot <= ?"
                              " ORDER BY slot", (start, self._applied))
        try:
            for slot, data in cursor:
                if slot != expect or (decisions and size >= max_bytes):
                    break
                decisions.append((slot, self._value(data)))
                size += len(data)
                expect += 1
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read {self.path}: {exc}") from None
        finally:
            cursor.close()
        rids = {c.request_id for _, value in decisions for c in value}
        return LogPiece(start, tuple(decisions), self.first_slots(rids))

    @property
    def log_start(self) -> int:
        """The first retained slot of a learner's log."""
        return self._log_start

    @property
    def applied(self) -> int:
        """The learner's highest applied (and durable) slot."""
        return self._applied

    def _cursor(self, sql: str, params) -> sqlite3.Cursor:
        try:
            return self._usable().execute(sql, params)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read {self.path}: {exc}") from None

    def _read(self, sql: str, params) -> list:
        cursor = self._cursor(sql, params)
        try:
            return cursor.fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read {self.path}: {exc}") from None

    def _value(self, data: object) -> Value:
        try:
            return _blob_value(data)
        except TypeError as exc:
            raise StorageError(f"{self.path} is corrupt: bad row ({_why(exc)})") from None

    def save(self, persist: Persist) -> None:
        """Durably merge `persist`, in one transaction; no-op if it is empty.

        Raises `StorageError` if the write or commit fails (nothing of
        `persist` is then committed, unless the failure was in reporting a
        commit that did happen) and refuses every later call: after a failed
        fsync the file's state is unknown, so the agent must stop and be
        restarted, which reopens and re-checks the file.
        """
        if not persist:
            return
        conn = self._usable()
        # Encoded before the transaction: a history that is not JSON is the
        # caller's bug (TypeError/ValueError), and nothing is written.
        configs = None if persist.configs is None else _configs_text(persist.configs)
        fault = self._fault
        start = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if fault:
                    fault("before-write")
                meta = []
                if persist.promised is not None:
                    meta.append((persist.promised.round, "promised_round"))
                    meta.append((persist.promised.node_id, "promised_node"))
                if persist.round is not None:
                    meta.append((persist.round, "round"))
                if persist.floor is not None:
                    meta.append((persist.floor, "floor"))
                if persist.compacted is not None:
                    meta.append((persist.compacted, "compacted"))
                if persist.applied is not None:
                    meta.append((persist.applied, "applied"))
                if persist.log_start is not None:
                    meta.append((persist.log_start, "log_start"))
                if configs is not None:
                    # With this Persist's `applied` (a learner's), in this transaction.
                    meta.append((configs, "configs"))
                if meta:
                    conn.executemany("INSERT OR REPLACE INTO meta (value, key) VALUES (?, ?)",
                                     meta)
                if persist.votes:
                    conn.executemany(
                        "INSERT OR REPLACE INTO votes (slot, ballot_round, ballot_node, value)"
                        " VALUES (?, ?, ?, ?)",
                        [(v.slot, v.ballot.round, v.ballot.node_id, v.value.data)
                         for v in persist.votes],
                    )
                if persist.compacted is not None:
                    # The point (in meta above) and the deletion commit together.
                    conn.execute("DELETE FROM votes WHERE slot < ?", (persist.compacted,))
                if persist.decisions:
                    conn.executemany(
                        "INSERT OR REPLACE INTO decisions (slot, value) VALUES (?, ?)",
                        [(slot, value.data) for slot, value in persist.decisions],
                    )
                if persist.requests:
                    conn.executemany(
                        "INSERT OR IGNORE INTO requests (request_id, slot) VALUES (?, ?)",
                        persist.requests)
                if persist.log_start is not None:
                    conn.execute("DELETE FROM decisions WHERE slot < ?", (persist.log_start,))
                    conn.execute("DELETE FROM requests WHERE slot < ?", (persist.log_start,))
                if fault:
                    fault("after-write")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass  # the original error is the one to report
                raise
        except BaseException as exc:
            self._failed = _why(exc)
            if isinstance(exc, (sqlite3.Error, OverflowError, UnicodeError)):
                raise StorageError(f"cannot save to {self.path}: {self._failed}") from exc
            raise
        self.persist_seconds = time.perf_counter() - start
        if persist.applied is not None:
            self._applied = persist.applied
        if persist.log_start is not None:
            self._log_start = max(self._log_start, persist.log_start)
        if fault:
            fault("after-commit")

    def close(self) -> None:
        """Close the file; idempotent. Later `load`/`save` raise `StorageError`."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "SqliteStorage":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteStorage({str(self.path)!r})"

    def _usable(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError(f"{self.path} is closed")
        if self._failed is not None:
            raise StorageError(f"{self.path}: an earlier save failed ({self._failed}); reopen it")
        return self._conn


def _migrate(conn: sqlite3.Connection, version: int, path: Path) -> None:
    """Bring a file of schema `version` (1, 2 or 3) to `SCHEMA_VERSION`, in one
    transaction: a crash or an error midway leaves the file as it was."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if version <= 1:
            _migrate_1_to_2(conn)
        if version <= 2:
            _migrate_2_to_3(conn, path)
        # 3 -> 4 changes no row: version 4 adds the meta key "configs", and a
        # file of 3 has no configuration history (`Record.configs` None: the
        # node starts from epoch 0, its membership's acceptors).
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                     (SCHEMA_VERSION,))
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Version 1 (paxosctl 0.1) to 2, inside `_migrate`'s transaction.

    Version 1 kept no applied prefix and no request index: a learner
    replayed its whole log at every start. Both are derived here from the
    decisions, exactly as that replay did (the applied prefix is the gap-free
    run of decided slots from 0; a request id's first slot is the lowest
    slot it was decided in within that prefix). Runs in C (json_each), so
    even a long log takes seconds, not a replay in Python.
    """
    has_zero = conn.execute("SELECT 1 FROM decisions WHERE slot = 0").fetchone()
    applied = -1
    if has_zero:
        applied = conn.execute(
            "SELECT MIN(slot) FROM decisions d WHERE NOT EXISTS"
            " (SELECT 1 FROM decisions e WHERE e.slot = d.slot + 1)").fetchone()[0]
    conn.execute(_REQUESTS_TABLE)
    conn.execute(
        "INSERT INTO requests (request_id, slot)"
        " SELECT json_extract(j.value, '$[0]') AS rid, MIN(d.slot)"
        " FROM decisions d, json_each(d.value) j WHERE d.slot <= ? GROUP BY rid",
        (applied,))
    conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                     [("compacted", 0), ("applied", applied), ("log_start", 0)])


#: Rows converted per batch by the 2 -> 3 migration (bounds its memory).
_MIGRATE_ROWS = 10_000


def _migrate_2_to_3(conn: sqlite3.Connection, path: Path) -> None:
    """Version 2 to 3, inside `_migrate`'s transaction: every vote's and
    decision's value, JSON text of the version-2 codec, becomes the BLOB of
    its batch encoding. The tables are rebuilt (their column is declared
    BLOB now) and swapped in; slots, ballots and everything else are kept.
    """
    for table, create, columns in (
        ("votes", _VOTES_TABLE, "slot, ballot_round, ballot_node, value"),
        ("decisions", _DECISIONS_TABLE, "slot, value"),
    ):
        conn.execute(create.replace(f"TABLE {table} ", f"TABLE {table}_3 ", 1))
        marks = ", ".join("?" * len(columns.split(", ")))
        last = -(2**63)
        while True:
            # Keyset pages: no cursor stays open across the inserts.
            rows = conn.execute(
                f"SELECT {columns} FROM {table} WHERE slot > ? ORDER BY slot LIMIT ?",
                (last, _MIGRATE_ROWS)).fetchall()
            if not rows:
                break
            converted = []
            for *fields, text in rows:
                try:
                    converted.append((*fields, _json_value(text).data))
                except (ValueError, TypeError) as exc:
                    raise StorageError(
                        f"{path} is corrupt: {table} slot {fields[0]} holds no version-2 value"
                        f" ({_why(exc)}); the file was not changed") from None
            conn.executemany(f"INSERT INTO {table}_3 ({columns}) VALUES ({marks})", converted)
            last = rows[-1][0]
        conn.execute(f"DROP TABLE {table}")
        conn.execute(f"ALTER TABLE {table}_3 RENAME TO {table}")


def _json_value(text: object) -> Value:
    """A version-2 stored value: JSON `[[request_id, payload(, issued)], ...]`
    with text payloads, which become their UTF-8 bytes (surrogatepass: the
    old codec could hold any str, lone surrogates included)."""
    if type(text) is not str:
        raise TypeError(f"expected JSON text, got {type(text).__name__}")
    items = json.loads(text)
    if type(items) is not list:
        raise ValueError("not a list of commands")
    commands = []
    for item in items:
        if type(item) is not list or not 2 <= len(item) <= 3:
            raise ValueError(f"not a command: {item!r:.60}")
        request_id, payload, *issued = item
        if type(request_id) is not str or type(payload) is not str:
            raise ValueError(f"command fields must be strings: {item!r:.60}")
        stamp = issued[0] if issued else -1
        if type(stamp) is not int or stamp < -1:
            raise ValueError(f"command issued must be an integer >= -1: {item!r:.60}")
        commands.append(Command(request_id, payload.encode("utf-8", "surrogatepass"), stamp))
    try:
        return Value.of(commands)
    except BatchError as exc:
        raise ValueError(str(exc)) from None


def _configs_text(configs: list) -> str:
    """`Persist.configs` as stored: compact JSON text (TypeError if it is not JSON-able)."""
    if type(configs) is not list:
        raise TypeError(f"configs must be a list, got {type(configs).__name__}")
    return json.dumps(configs, separators=(",", ":"), allow_nan=False)


def _configs_from_text(text: object) -> list | None:
    """The stored history (None if none was stored); ValueError/TypeError if damaged."""
    if text is None:
        return None
    configs = json.loads(_text(text))
    if type(configs) is not list:
        raise ValueError("configs is not a JSON list")
    return configs


def _configs_copy(configs: list | None) -> list | None:
    """`configs` as it comes back from SqliteStorage: a new list, through JSON."""
    return None if configs is None else json.loads(_configs_text(configs))


def _blob_value(data: object) -> Value:
    """A stored value (version 3): the batch's bytes, not decoded here."""
    if type(data) is not bytes:
        raise TypeError(f"expected a BLOB value, got {type(data).__name__}")
    return Value.from_bytes(data)


def _int(obj: object) -> int:
    if type(obj) is not int:
        raise TypeError(f"expected an integer, got {obj!r:.40}")
    return obj


def _text(obj: object) -> str:
    if type(obj) is not str:
        raise TypeError(f"expected text, got {obj!r:.40}")
    return obj


def _why(exc: BaseException) -> str:
    """A one-line reason for `exc`."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {exc.filename}" if exc.filename else "")
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text or type(exc).__name__


def _fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable (POSIX; a no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a directory
    finally:
        os.close(fd)
