"""Opening a state file: create it whole, refuse one that is not ours, migrate, claim.

`open_store(path, identity)` is everything `SqliteStorage(path)` does
before its first read: a missing file is created (`create`: built under a
temporary name and renamed into place, the directory fsynced); an
existing one is checked by hand and by SQLite (`open_existing`, `check`:
ours, of a schema version this code reads, intact) and migrated to this
version (migrations.py); then it is claimed for its cluster and member
(`claim`). Every refusal is a one-line `StorageError` naming the file,
and leaves the file as it was.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from .contract import StorageError, why
from .migrations import migrate
from .rows import int_field
from .schema import APPLICATION_ID, INITIAL_META, QUICK_CHECK_MAX_BYTES, SCHEMA, SCHEMA_VERSION

_SQLITE_MAGIC = b"SQLite format 3\x00"


def open_store(path: Path, identity: tuple[str, str] | None) -> tuple[sqlite3.Connection, int, int]:
    """The open connection to `path` (created if missing), with the stored
    applied prefix and first retained slot; `StorageError` if it cannot be
    used (see the module doc), the connection then closed."""
    if not os.path.lexists(path):
        create(path, identity)
    conn = open_existing(path)
    try:
        meta = dict(conn.execute(
            "SELECT key, value FROM meta WHERE key IN"
            " ('applied', 'log_start', 'cluster_id', 'member_id')"))
        applied, log_start = int_field(meta["applied"]), int_field(meta["log_start"])
        if identity is not None:
            claim(conn, path, meta, identity)
    except (sqlite3.Error, KeyError, TypeError) as exc:
        conn.close()
        raise StorageError(f"{path} is corrupt: bad meta ({why(exc)})") from None
    except StorageError:
        conn.close()
        raise
    return conn, applied, log_start


def claim(conn: sqlite3.Connection, path: Path, meta: dict, identity: tuple[str, str]) -> None:
    """Refuse a store of another cluster or member; adopt an unmarked one.

    A store written before stores recorded their owner (paxosctl 0.1)
    is marked now, on its first start under a registry.
    """
    cluster_id, member_id = identity
    if "member_id" not in meta:
        conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                         [("cluster_id", cluster_id), ("member_id", member_id)])
        return
    if (meta.get("cluster_id"), meta["member_id"]) != identity:
        raise StorageError(
            f"{path} belongs to member {meta['member_id']} of cluster "
            f"{meta.get('cluster_id')}, not to member {member_id} of cluster {cluster_id}: "
            "it was copied or moved here; put the right file back")


def create(path: Path, identity: tuple[str, str] | None = None) -> None:
    """Create the state file `path`, whole, with `identity` recorded (if given)."""
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
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create directory {path.parent}: {exc.strerror}") from None
    tmp = path.with_name(path.name + ".creating")
    try:
        for leftover in (tmp, *(Path(f"{tmp}{s}") for s in ("-journal", "-wal", "-shm"))):
            leftover.unlink(missing_ok=True)
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            for statement in SCHEMA:
                conn.execute(statement)
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", INITIAL_META)
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
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except (OSError, sqlite3.Error) as exc:
        raise StorageError(f"cannot create {path}: {why(exc)}") from None


def open_existing(path: Path) -> sqlite3.Connection:
    """A connection to the existing file `path`, checked, in WAL mode, migrated."""
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
        check(conn, path)
        # Only now may we write (switching to WAL writes the header): the
        # file is known to be ours. Both are no-ops for our own files
        # except synchronous, which is per connection.
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise StorageError(f"cannot use {path}: journal_mode is {mode}, WAL unavailable")
        conn.execute("PRAGMA synchronous=FULL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            migrate(conn, version, path)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.OperationalError):
            raise StorageError(f"cannot open {path}: {exc}") from None
        if isinstance(exc, sqlite3.Error):
            raise StorageError(f"{path} is corrupt: {exc}") from None
        raise
    return conn


def check(conn: sqlite3.Connection, path: Path) -> None:
    """Raise StorageError unless `conn` (open on `path`) is an intact state
    file of our schema or an older one."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    if app_id != APPLICATION_ID:
        raise StorageError(f"{path} is not a paxosctl state file (application_id {app_id:#010x})")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version not in (1, 2, 3, 4, 5, 6, SCHEMA_VERSION):
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


def fsync_dir(directory: Path) -> None:
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

