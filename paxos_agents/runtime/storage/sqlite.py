"""`SqliteStorage`: a node's `Storage` in one SQLite file.

The class holds the open file's reads (`load` and the `DurableLog` reads)
and its one write (`save` of a `Persist`); opening the file (creating,
checking, migrating, claiming it) is in opening.py, the file's format in
schema.py, and how rows become the core's types in rows.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Callable, Iterator

from paxos_agents.core.commands import BatchError, Value
from paxos_agents.core.ids import Ballot
from paxos_agents.core.messages import Vote
from paxos_agents.core.ready import LogPiece, Persist, Record
from paxos_agents.core.requestkeys import request_key

from .contract import StorageError, why
from .opening import open_store
from .rows import blob_value, configs_from_text, configs_text, int_field, text_field

#: Request ids per `first_slots` query (SQLite's parameter limit is higher).
_IDS_PER_QUERY = 500

#: Where `SqliteStorage` calls its `fault` hook: once opened, then in each `save`, in
#: order (`write` passes the two write points, `commit` the two commit points).
FAULT_POINTS = ("open", "before-write", "after-write", "before-commit", "after-commit")


class SqliteStorage:
    """A `Storage` in one SQLite file (WAL journal, `synchronous=FULL`).

    `SqliteStorage(path)` opens `path`, creating it (and its parent
    directories) if it does not exist. An existing file is used only if it
    is an intact paxosctl state file of this schema version or an older one
    (migrated to this one, in one transaction, before use); otherwise the
    constructor raises `StorageError` and leaves the file untouched.

    Each non-empty `save` is one transaction (`BEGIN IMMEDIATE ... COMMIT`),
    fsynced before it returns. For group commit, `write` adds a `Persist`
    to the open transaction without committing and `commit` makes all of
    it durable with one fsync; the runtime writes every loop turn's
    `Persist` at once and commits a learner's every few milliseconds
    (runtime/persister.py).

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
        #: What pending `write`s took (see `commit`).
        self._written = 0.0
        self._fault = fault
        self._failed: str | None = None
        self._conn: sqlite3.Connection | None = None
        self._conn, self._applied, self._log_start = open_store(self.path, identity)
        try:
            meta = dict(self._conn.execute(
                "SELECT key, value FROM meta WHERE key IN ('incarnation', 'admitted')"))
            self._incarnation = int_field(meta["incarnation"])
            self._admitted = bool(int_field(meta["admitted"]))
            self._peers = {text_field(name): int_field(number) for name, number
                           in self._conn.execute("SELECT name, incarnation FROM peers")}
        except (sqlite3.Error, KeyError, TypeError) as exc:
            self.close()
            raise StorageError(f"{self.path} is corrupt: bad incarnation rows ({why(exc)})") from None
        if fault:
            fault("open")

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
                applied = int_field(meta["applied"])
                decision_rows = conn.execute(
                    "SELECT slot, value FROM decisions WHERE slot > ? ORDER BY slot", (applied,)
                ).fetchall()
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read {self.path}: {exc}") from None
        except (KeyError, TypeError) as exc:
            raise StorageError(f"{self.path} is corrupt: bad meta ({why(exc)})") from None
        try:
            record = Record(
                promised=Ballot(int_field(meta["promised_round"]),
                                text_field(meta["promised_node"])),
                decisions={slot: blob_value(value) for slot, value in decision_rows},
                round=int_field(meta["round"]),
                floor=int_field(meta.get("floor", -1)),
                compacted=int_field(meta["compacted"]),
                applied=applied,
                log_start=int_field(meta["log_start"]),
                configs=configs_from_text(meta.get("configs")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StorageError(f"{self.path} is corrupt: bad row ({why(exc)})") from None
        self._applied, self._log_start = record.applied, record.log_start
        return record

    # --- incarnations: this agent's own, and its peers' (schema 5) -------------

    @property
    def incarnation(self) -> int:
        """This agent's incarnation: the number of times it was started on this
        store (0 before `start_incarnation` is first called)."""
        return self._incarnation

    @property
    def admitted(self) -> bool:
        """The store has run in its cluster (a migrated file, or `admit` was
        called); False for a new file until its peers admit it."""
        return self._admitted

    def start_incarnation(self) -> int:
        """Count one start: the incarnation + 1, committed (fsynced) before
        this returns, so no two starts of this store ever share a number."""
        self._commit([(self._incarnation + 1, "incarnation")])
        self._incarnation += 1
        return self._incarnation

    def admit(self, incarnation: int) -> None:
        """Mark the store admitted, its incarnation raised to `incarnation`
        if lower (a learner moving past what its peers saw), committed."""
        number = max(self._incarnation, incarnation)
        self._commit([(1, "admitted"), (number, "incarnation")])
        self._admitted, self._incarnation = True, number

    def welcomed(self) -> dict[str, int]:
        """Per member name, the newest incarnation this agent welcomed (a copy)."""
        return dict(self._peers)

    def remember_welcome(self, name: str, incarnation: int) -> None:
        """Record `incarnation` as the newest welcomed from `name`, committed."""
        self._commit([], (name, incarnation))
        self._peers[name] = incarnation

    # --- the membership record it runs (meta "members"; no schema change) ----

    def stored_members(self) -> dict | None:
        """The latest membership record saved (`save_members`), as the JSON
        object it was saved as; None if none was (the manifest's applies).

        A meta key, not a schema version: older files simply lack it (no
        record: the manifest's membership, as before), and an older release
        opening a newer file ignores keys it does not read, so neither way
        needs a migration."""
        conn = self._usable()
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'members'").fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read {self.path}: {exc}") from None
        if row is None:
            return None
        try:
            found = json.loads(text_field(row[0]))
        except (TypeError, ValueError) as exc:
            raise StorageError(f"{self.path} is corrupt: bad membership record ({why(exc)})") from None
        if not isinstance(found, dict):
            raise StorageError(f"{self.path} is corrupt: the membership record is not an object")
        return found

    def save_members(self, record: dict) -> None:
        """Keep `record` (a JSON object) as the membership record, committed
        (fsynced) before this returns."""
        self._commit([(json.dumps(record, separators=(",", ":"), sort_keys=True), "members")])

    def _commit(self, meta: list[tuple[object, str]], peer: tuple[str, int] | None = None) -> None:
        """One small transaction of meta values (value, key) and a peer row,
        committed with whatever `write`s are pending; a failure refuses later
        use, as a failed `save` does."""
        conn = self._usable()
        try:
            if not conn.in_transaction:
                conn.execute("BEGIN IMMEDIATE")
            if meta:
                conn.executemany("INSERT OR REPLACE INTO meta (value, key) VALUES (?, ?)", meta)
            if peer is not None:
                conn.execute("INSERT OR REPLACE INTO peers (name, incarnation) VALUES (?, ?)", peer)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._fail(exc)
            raise StorageError(f"cannot save to {self.path}: {self._failed}") from exc

    # --- DurableLog: what the node reads back ----------------------------------

    def votes_from(self, slot: int) -> list[Vote]:
        """Every vote in slots >= `slot`, in slot order."""
        rows = self._read("SELECT slot, ballot_round, ballot_node, value FROM votes"
                          " WHERE slot >= ? ORDER BY slot", (slot,))
        return [Vote(s, Ballot(r, n), self._value(v)) for s, r, n, v in rows]

    def first_slots(self, request_ids, values: dict[int, Value] | None = None) -> dict[str, int]:
        """The request index entries of `request_ids` (request id -> first slot).

        The index is keyed by `request_key` (schema 6), which two ids may
        share: a row of an id's key names a (slot, position), and counts
        only if the command at that position of that slot's decision has
        this very id. `values`: decisions the caller already holds, by slot
        (not read again).
        """
        by_key: dict[int, list[str]] = {}
        for rid in request_ids:
            by_key.setdefault(request_key(rid), []).append(rid)
        keys = list(by_key)
        candidates: list[tuple[int, int, list[str]]] = []
        for i in range(0, len(keys), _IDS_PER_QUERY):
            part = keys[i:i + _IDS_PER_QUERY]
            marks = ",".join("?" * len(part))
            for key, slot, pos in self._read(
                    f"SELECT key, slot, pos FROM requests WHERE key IN ({marks})", part):
                candidates.append((slot, pos, by_key[key]))
        if not candidates:
            return {}
        held = self._decided_ids({slot for slot, _, _ in candidates}, values or {})
        found: dict[str, int] = {}
        for slot, pos, rids in sorted(candidates, key=lambda c: c[0]):
            ids = held.get(slot)
            if ids is not None and pos < len(ids) and ids[pos] in rids:
                found.setdefault(ids[pos], slot)
        return found

    def _decided_ids(self, slots: set[int], values: dict[int, Value]) -> dict[int, list[str]]:
        """The request ids of each of `slots`' decisions, in order (those retained)."""
        held = {s: values[s].request_ids() for s in slots if s in values}
        ask = [s for s in slots if s not in held]
        for i in range(0, len(ask), _IDS_PER_QUERY):
            part = ask[i:i + _IDS_PER_QUERY]
            marks = ",".join("?" * len(part))
            for slot, data in self._read(
                    f"SELECT slot, value FROM decisions WHERE slot IN ({marks})", part):
                try:
                    held[slot] = self._value(data).request_ids()
                except BatchError as exc:
                    raise StorageError(f"{self.path} is corrupt: decision {slot} ({exc})") from None
        return held

    def request_keys(self) -> Iterator[tuple[int, int]]:
        """(key, first slot) of every entry of the request index, streamed
        from one read cursor (the learner's `IdFilter` is built from them)."""
        cursor = self._cursor("SELECT key, slot FROM requests", ())
        try:
            while rows := cursor.fetchmany(4096):
                yield from rows
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read {self.path}: {exc}") from None
        finally:
            cursor.close()

    def saved_id_filter(self) -> tuple[int, bytes] | None:
        """(slot it covers, blob) of the saved id filter (schema 7), None if none."""
        rows = self._read("SELECT slot, data FROM id_filter", ())
        if not rows:
            return None
        slot, data = rows[0]
        if not isinstance(slot, int) or not isinstance(data, bytes):
            return None  # not ours to read: the learner reads every key instead
        return slot, data

    def request_keys_from(self, slot: int) -> Iterator[tuple[int, int]]:
        """(key, slot) of every request id in the decisions of slots >= `slot`
        (a range read of their primary key): every index entry of those
        slots, since an entry counts only where its decision holds its id
        (`first_slots`), and harmless extras for a filter."""
        cursor = self._cursor("SELECT slot, value FROM decisions WHERE slot >= ? ORDER BY slot",
                              (slot,))
        try:
            while rows := cursor.fetchmany(256):
                for s, data in rows:
                    try:
                        rids = self._value(data).request_ids()
                    except BatchError as exc:
                        raise StorageError(f"{self.path} is corrupt: decision {s} ({exc})") from None
                    yield from zip(map(request_key, rids), [s] * len(rids))
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
        rids = {rid for _, value in decisions for rid in value.request_ids()}
        return LogPiece(start, tuple(decisions), self.first_slots(rids, dict(decisions)))

    @property
    def log_start(self) -> int:
        """The first retained slot of a learner's log (as written: see `write`)."""
        return self._log_start

    @property
    def applied(self) -> int:
        """The learner's highest applied slot, as written (durable once `commit`
        returns; a crash before it loses only what every learner derives again
        from the acceptors' votes)."""
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
            return blob_value(data)
        except TypeError as exc:
            raise StorageError(f"{self.path} is corrupt: bad row ({why(exc)})") from None

    def save(self, persist: Persist) -> None:
        """Durably merge `persist`, in one transaction: `write` then
        `commit`, so what earlier `write`s left pending commits with it (an
        empty `persist` with nothing pending does nothing).

        Raises `StorageError` if the write or commit fails (nothing of
        `persist` is then committed, unless the failure was in reporting a
        commit that did happen) and refuses every later call: after a failed
        fsync the file's state is unknown, so the agent must stop and be
        restarted, which reopens and re-checks the file.
        """
        self.write(persist)
        self.commit()

    @property
    def pending(self) -> bool:
        """Whether `write`s are waiting for a `commit` (not durable yet)."""
        return self._conn is not None and self._conn.in_transaction

    def write(self, persist: Persist) -> None:
        """Write `persist` into the open transaction (begun if none), not
        committed: this store's own reads see it at once, a crash forgets it.
        Nothing that depends on it may leave the process before `commit`
        returns (group commit over loop turns: runtime/persister.py).

        A failure rolls back everything pending, raises `StorageError` and
        refuses every later call, as in `save`.
        """
        if not persist:
            return
        conn = self._usable()
        # Encoded before the transaction: a history that is not JSON is the
        # caller's bug (TypeError/ValueError), and nothing is written.
        configs = None if persist.configs is None else configs_text(persist.configs)
        fault = self._fault
        start = time.perf_counter()
        try:
            if not conn.in_transaction:
                conn.execute("BEGIN IMMEDIATE")
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
                conn.executemany("INSERT OR REPLACE INTO meta (value, key) VALUES (?, ?)", meta)
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
                self._write_requests(conn, persist)
            if persist.log_start is not None:
                conn.execute("DELETE FROM decisions WHERE slot < ?", (persist.log_start,))
                conn.execute("DELETE FROM requests WHERE slot < ?", (persist.log_start,))
            if persist.id_filter is not None:
                # With the `applied` and index rows it covers, in this transaction.
                conn.execute("INSERT OR REPLACE INTO id_filter (one, slot, data) VALUES (0, ?, ?)",
                             persist.id_filter)
            if fault:
                fault("after-write")
        except BaseException as exc:
            self._fail(exc)
            if isinstance(exc, (sqlite3.Error, OverflowError, UnicodeError)):
                raise StorageError(f"cannot save to {self.path}: {self._failed}") from exc
            raise
        self._written += time.perf_counter() - start
        # What this store's reads see from now on (durable at `commit`).
        if persist.applied is not None:
            self._applied = persist.applied
        if persist.log_start is not None:
            self._log_start = max(self._log_start, persist.log_start)

    def commit(self) -> None:
        """Make every pending `write` durable: COMMIT (an fsync); no-op if
        none is pending. `persist_seconds` is then the time the writes and
        this commit took."""
        conn = self._usable()
        if not conn.in_transaction:
            return
        start = time.perf_counter()
        try:
            if self._fault:
                self._fault("before-commit")
            conn.execute("COMMIT")
        except BaseException as exc:
            self._fail(exc)
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"cannot save to {self.path}: {self._failed}") from exc
            raise
        self.persist_seconds = self._written + time.perf_counter() - start
        self._written = 0.0
        if self._fault:
            self._fault("after-commit")

    def _write_requests(self, conn: sqlite3.Connection, persist: Persist) -> None:
        """The request index rows (key, slot, pos) of `persist.requests`.

        From the learner's `request_keys`, one statement per slot: the usual
        slot (every command new, at positions 0, 1, ...) goes as one JSON
        array of its keys that SQLite unpacks itself (json_each: 0.77 µs of
        CPU a command against 1.15 for an executemany of its rows, 200,000
        keys in slots of 100 on this 2-core machine); others as rows. A `Persist` made by hand (no keys
        for its requests) gets each id's key at the first position of its
        slot that holds it.
        """
        packed = persist.request_keys
        if sum(len(keys) for _, keys, _ in packed) == len(persist.requests):
            for slot, keys, positions in packed:
                if positions is None:
                    conn.execute("INSERT OR IGNORE INTO requests (key, slot, pos)"
                                 " SELECT value, ?, key FROM json_each(?)",
                                 (slot, json.dumps(keys)))
                else:
                    conn.executemany("INSERT OR IGNORE INTO requests (key, slot, pos)"
                                     " VALUES (?, ?, ?)",
                                     zip(keys, [slot] * len(keys), positions))
            return
        held = self._decided_ids({slot for _, slot in persist.requests}, dict(persist.decisions))
        rows = []
        for rid, slot in persist.requests:
            ids = held.get(slot, [])
            rows.append((request_key(rid), slot, ids.index(rid) if rid in ids else 0))
        conn.executemany("INSERT OR IGNORE INTO requests (key, slot, pos) VALUES (?, ?, ?)", rows)

    def _fail(self, exc: BaseException) -> None:
        """A write or commit failed: roll back what is pending, refuse later calls."""
        self._failed = why(exc)
        conn = self._conn
        if conn is not None and conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the original error is the one to report

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
