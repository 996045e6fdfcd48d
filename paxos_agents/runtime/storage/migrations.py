"""Bringing a state file of an older schema version to `SCHEMA_VERSION`.

`opening.open_existing` calls `migrate` once, on a file it has checked to
be ours, before anything else reads it. Each step is written for one
version and never changes once released: the tests start this code on
state dirs of every older version (tests/runtime/test_storage_migration.py).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from paxos_agents.core.commands import BatchError
from paxos_agents.core.requestkeys import request_key

from .contract import StorageError, why
from .rows import blob_value, json_value
from .schema import (DECISIONS_TABLE, ID_FILTER_TABLE, PEERS_TABLE, REQUESTS_TABLE,
                     REQUESTS_TABLE_2, SCHEMA_VERSION, VOTES_TABLE)

log = logging.getLogger(__name__)


def migrate(conn: sqlite3.Connection, version: int, path: Path) -> None:
    """Bring a file of schema `version` (1 to 6) to `SCHEMA_VERSION`, in one
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
        if version <= 4:
            _migrate_4_to_5(conn)
        if version <= 5:
            _migrate_5_to_6(conn, path)
        if version <= 6:
            # 6 -> 7: the (empty) table of the saved id filter; the learner
            # reads every key at its first start and saves one then.
            conn.execute(ID_FILTER_TABLE)
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                     (SCHEMA_VERSION,))
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Version 1 (paxosctl 0.1) to 2, inside `migrate`'s transaction.

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
    conn.execute(REQUESTS_TABLE_2)
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
    """Version 2 to 3, inside `migrate`'s transaction: every vote's and
    decision's value, JSON text of the version-2 codec, becomes the BLOB of
    its batch encoding. The tables are rebuilt (their column is declared
    BLOB now) and swapped in; slots, ballots and everything else are kept.
    """
    for table, create, columns in (
        ("votes", VOTES_TABLE, "slot, ballot_round, ballot_node, value"),
        ("decisions", DECISIONS_TABLE, "slot, value"),
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
                    converted.append((*fields, json_value(text).data))
                except (ValueError, TypeError) as exc:
                    raise StorageError(
                        f"{path} is corrupt: {table} slot {fields[0]} holds no version-2 value"
                        f" ({why(exc)}); the file was not changed") from None
            conn.executemany(f"INSERT INTO {table}_3 ({columns}) VALUES ({marks})", converted)
            last = rows[-1][0]
        conn.execute(f"DROP TABLE {table}")
        conn.execute(f"ALTER TABLE {table}_3 RENAME TO {table}")



def _migrate_4_to_5(conn: sqlite3.Connection) -> None:
    """Version 4 to 5, inside `migrate`'s transaction: the agent's own
    incarnation counter, its admitted marker and the `peers` table.

    Before 5 the supervisor numbered incarnations per run, so nothing in
    the file says how often the agent started: the counter starts at 0
    and the first start after the migration is incarnation 1 (peers of
    the older release remembered no number, so none of them holds a
    higher one). A file of an older version has run, by definition: it is
    admitted. No peer incarnation was remembered: `peers` starts empty.
    """
    conn.execute(PEERS_TABLE)
    conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                     [("incarnation", 0), ("admitted", 1)])


#: Request index rows converted per batch by the 5 -> 6 migration (bounds its memory).
_MIGRATE_REQUESTS = 50_000
#: The 5 -> 6 migration logs its progress at most this often (seconds).
PROGRESS_SECONDS = 1.0


def _migrate_5_to_6(conn: sqlite3.Connection, path: Path) -> None:
    """Version 5 to 6, inside `migrate`'s transaction: the request index
    keyed by `request_key(request_id)` and the command's position in its
    first slot, instead of the id's text.

    Read in pages in id order (for the client's ids, time order: their keys
    arrive almost sorted, so the new B-tree fills at its end), each id's
    position found in its slot's decision, written to a new table that
    replaces the old one. An entry whose slot's decision is gone (not
    retained) is dropped: version 6 could not confirm it. Progress is
    logged every `PROGRESS_SECONDS`, since a learner's start waits for it
    (start_timeout); bench/migrate_index.py times it on a 600,000-command
    store: 5.3 s wall, 2.0 s CPU, on this 2-core machine at load 7.
    """
    total = conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    if total:
        log.info("migrating %s to schema 6: re-keying %d request index entries", path, total)
    conn.execute(REQUESTS_TABLE.replace("TABLE requests ", "TABLE requests_6 ", 1))
    started = reported = time.monotonic()
    done = dropped = 0
    last = ""
    while True:
        rows = conn.execute(
            "SELECT request_id, slot FROM requests WHERE request_id > ? ORDER BY request_id LIMIT ?",
            (last, _MIGRATE_REQUESTS)).fetchall()
        if not rows:
            break
        held = _decided_ids(conn, path, sorted({slot for _, slot in rows}))
        keyed = []
        for rid, slot in rows:
            ids = held.get(slot)
            if ids is None:
                dropped += 1
                continue
            try:
                keyed.append((request_key(rid), slot, ids.index(rid)))
            except (TypeError, AttributeError, ValueError):
                raise StorageError(
                    f"{path} is corrupt: the request index says {rid!r:.40} was first decided"
                    f" at slot {slot}, which does not hold it; the file was not changed") from None
        conn.executemany("INSERT INTO requests_6 (key, slot, pos) VALUES (?, ?, ?)", keyed)
        done += len(rows)
        last = rows[-1][0]
        now = time.monotonic()
        if now - reported >= PROGRESS_SECONDS:
            reported = now
            log.info("migrating %s to schema 6: %d of %d request index entries re-keyed (%.1f s)",
                     path, done, total, now - started)
    conn.execute("DROP TABLE requests")
    conn.execute("ALTER TABLE requests_6 RENAME TO requests")
    if total:
        log.info("migrated %s to schema 6: %d request index entries in %.1f s (%d of them"
                 " in slots no longer retained left out)", path, total, time.monotonic() - started, dropped)


def _decided_ids(conn: sqlite3.Connection, path: Path, slots: list[int]) -> dict[int, list[str]]:
    """The request ids of each of `slots`' decisions, in order (those present)."""
    held: dict[int, list[str]] = {}
    for i in range(0, len(slots), 500):
        part = slots[i:i + 500]
        marks = ",".join("?" * len(part))
        for slot, data in conn.execute(
                f"SELECT slot, value FROM decisions WHERE slot IN ({marks})", part):
            try:
                held[slot] = blob_value(data).request_ids()
            except (TypeError, BatchError) as exc:
                raise StorageError(f"{path} is corrupt: decision {slot} ({why(exc)});"
                                   " the file was not changed") from None
    return held
