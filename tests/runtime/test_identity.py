"""Agents refuse to forget: a member that ran before never starts with a
missing store, or with another member's store (real clusters, real files)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from paxos_agents.runtime.storage import SqliteStorage, StorageError
from paxosctl import Client

from clusters import wait_until


def state(cluster, agent: str) -> Path:
    return cluster.state_dir / "state" / f"{agent}.db"


def stop_and(cluster, agent: str, change) -> None:
    """Freeze `agent`, change its files, then kill it (the supervisor restarts it)."""
    with Client.for_manifest(cluster.manifest) as client:
        client.kill(agent, "STOP")
        change()
        client.kill(agent, "KILL")
    cluster.remember_processes()


def fatal(cluster, agent: str) -> dict:
    return wait_until(lambda: next((a for a in cluster.status()["agents"]
                                    if a["name"] == agent and a["state"] == "fatal"), None),
                      20, f"{agent} to refuse to start")


def remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def test_an_acceptor_whose_store_vanished_refuses_to_start(make_cluster):
    """Guards the forgetful acceptor: its files deleted while it ran, it is
    killed; it must not come back empty and vote again."""
    cluster = make_cluster("roles")
    with Client.for_manifest(cluster.manifest) as client:
        client.propose("before", timeout=20)
    stop_and(cluster, "acceptor-1", lambda: remove(state(cluster, "acceptor-1")))
    row = fatal(cluster, "acceptor-1")
    assert "acceptor-1.db is missing, but acceptor-1" in row["error"]
    assert "has run here before" in row["error"] and "\n" not in row["error"]
    assert not state(cluster, "acceptor-1").exists()  # it created nothing
    with Client.for_manifest(cluster.manifest) as client:  # a majority still decides
        assert client.propose("after", timeout=20).value == b"after"


def test_a_store_of_another_member_is_refused(make_cluster):
    """Guards member identity: acceptor-0's file copied over acceptor-2's."""
    cluster = make_cluster("roles")
    stop_and(cluster, "acceptor-2", lambda: (
        remove(state(cluster, "acceptor-2")),
        shutil.copy(state(cluster, "acceptor-0"), state(cluster, "acceptor-2"))))
    row = fatal(cluster, "acceptor-2")
    assert "acceptor-2.db belongs to member" in row["error"]


def test_members_are_registered_once_and_stores_record_them(make_cluster):
    cluster = make_cluster("roles")
    registry = json.loads((cluster.state_dir / "members.json").read_text())
    assert registry["format"] == 1 and set(registry["members"]) == set(cluster.agent_names)
    assert all(m["started"] for m in registry["members"].values())
    conn = sqlite3.connect(f"{state(cluster, 'acceptor-0').as_uri()}?mode=ro", uri=True)
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    conn.close()
    assert meta["member_id"] == registry["members"]["acceptor-0"]["member_id"]
    assert meta["cluster_id"] == registry["cluster_id"]
    cluster.down()
    cluster.up()  # the same ids again
    assert json.loads((cluster.state_dir / "members.json").read_text()) == registry


@pytest.mark.parametrize(("stored", "given", "outcome"), [
    (("c1", "m1"), ("c1", "m1"), "ok"),
    (("c1", "m1"), ("c1", "m2"), "refused"),
    (("c1", "m1"), ("c2", "m1"), "refused"),
    (None, ("c1", "m1"), "adopted"),
], ids=["same-member", "other-member", "other-cluster", "unmarked-store-is-adopted"])
def test_store_identity(tmp_path, stored, given, outcome):
    path = tmp_path / "s.db"
    SqliteStorage(path, identity=stored).close()
    if outcome == "refused":
        with pytest.raises(StorageError, match="belongs to member m1 of cluster c1"):
            SqliteStorage(path, identity=given)
        return
    SqliteStorage(path, identity=given).close()
    SqliteStorage(path, identity=given).close()  # and stays so
    if outcome == "adopted":
        with pytest.raises(StorageError):
            SqliteStorage(path, identity=("c1", "other"))
