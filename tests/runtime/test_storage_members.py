"""The membership record in an agent's store (issue 23): meta "members", a
key of the existing meta table, so no schema version of its own."""

from __future__ import annotations

import sqlite3
import tarfile
from pathlib import Path

import pytest

from paxos_agents.core.settings import Membership
from paxos_agents.runtime.members import MembersRecord
from paxos_agents.runtime.storage import SCHEMA_VERSION, SqliteStorage, StorageError

DATA = Path(__file__).resolve().parent.parent / "data"
RECORD = MembersRecord(3, Membership(("replica-0", "replica-3"), ("replica-0", "replica-1", "replica-3"),
                                     ("replica-0", "replica-3")),
                       frozenset({"replica-2"}), {"replica-3": "replica-3.replica.demo.svc:7100"})


def test_a_saved_record_is_read_back_after_reopening(tmp_path):
    path = tmp_path / "a.db"
    with SqliteStorage(path) as store:
        assert store.stored_members() is None
        store.save_members(RECORD.to_json())
    with SqliteStorage(path) as store:
        assert MembersRecord.from_json(store.stored_members()) == RECORD


def test_a_state_dir_of_the_previous_release_opens_without_a_record_and_keeps_one(tmp_path):
    """v4 (and, migrated, v5) files have no "members" key: the manifest's membership."""
    with tarfile.open(DATA / "v4_state_dir.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    path = tmp_path / "state" / "acceptor-0.db"
    with SqliteStorage(path) as store:
        assert store.stored_members() is None
        store.save_members(RECORD.to_json())
    with SqliteStorage(path) as store:
        assert MembersRecord.from_json(store.stored_members()) == RECORD
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_corrupt_record_is_refused_not_ignored(tmp_path):
    path = tmp_path / "a.db"
    SqliteStorage(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO meta (key, value) VALUES ('members', '{not json')")
    with SqliteStorage(path) as store, pytest.raises(StorageError, match="bad membership record"):
        store.stored_members()


@pytest.mark.parametrize("body, problem", [
    ({"version": 0, "proposers": []}, "version: expected an integer from 1"),
    ({"version": 2, "proposers": "a"}, "proposers: expected a list"),
    ({"version": 2, "acceptors": ["a"], "retired": ["a"]}, "a: retired, so never a member again"),
    ({"version": 2, "addresses": {"a": 1}}, "addresses: expected"),
], ids=["version", "not-a-list", "retired-member", "address"])
def test_a_bad_record_is_one_line(body, problem):
    with pytest.raises(ValueError, match=problem):
        MembersRecord.from_json(body)
