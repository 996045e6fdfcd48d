"""Bounded history on a real cluster: compaction, state transfer between
learners, retention, expired requests, and a state dir from paxosctl 0.1.

Real processes, real SQLite files (read here through read-only connections
beside the running agents), in temporary folders.
"""

from __future__ import annotations

import json
import re
import sqlite3
import tarfile
from pathlib import Path

import pytest

from paxos_agents.runtime.storage import SCHEMA_VERSION
from paxosctl import Client
from paxosctl.client.sync import Expired

from clusters import describe, wait_until

DATA = Path(__file__).resolve().parents[1] / "data"


def db(cluster, agent: str) -> sqlite3.Connection:
    path = cluster.state_dir / "state" / f"{agent}.db"
    return sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)


def query(cluster, agent: str, sql: str, *params) -> list[tuple]:
    conn = db(cluster, agent)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def meta(cluster, agent: str, key: str) -> int:
    return query(cluster, agent, "SELECT value FROM meta WHERE key = ?", key)[0][0]


def propose_many(cluster, n: int, prefix: str) -> dict[str, int]:
    """Propose `n` values at once; request id -> slot."""
    with Client.for_manifest(cluster.manifest) as client:
        futures = {f"{prefix}-{i}": client.propose_async(f"{prefix} {i}", request_id=f"{prefix}-{i}")
                   for i in range(n)}
        return {rid: f.result(60).slot for rid, f in futures.items()}


def test_acceptors_compact_below_what_every_learner_stored(make_cluster):
    """Guards the compaction rule end to end: acceptors delete old votes, and
    only below the applied prefix that both learners persisted."""
    cluster = make_cluster("roles")
    slots = propose_many(cluster, 300, "c")
    top = max(slots.values())

    def compacted() -> bool:
        return all(meta(cluster, f"acceptor-{i}", "compacted") > top // 2 for i in range(3))

    wait_until(compacted, 20, "acceptors to compact")
    stored = min(meta(cluster, f"learner-{i}", "applied") for i in range(2))
    for i in range(3):
        point = meta(cluster, f"acceptor-{i}", "compacted")
        assert point <= stored + 1, (point, stored)
        lowest = query(cluster, f"acceptor-{i}", "SELECT MIN(slot) FROM votes")[0][0]
        assert lowest is None or lowest >= point


def test_a_learner_that_lost_its_disk_copies_the_log_from_its_peer(make_cluster):
    """Guards state transfer: learner-1 restarts with no files, copies the
    decided log and the request index from learner-0 in chunks (logging its
    progress), ends with the same log, and deduplicates old request ids."""
    # One command per slot: 450 slots to copy. With the commands batched into a
    # handful of slots, the learner's Retries to the leader could fetch them
    # all before a peer's report started the state transfer (a correct route,
    # but not the one this test guards).
    cluster = make_cluster("roles", paxos={"batch": 1})
    propose_many(cluster, 400, "a")
    with Client.for_manifest(cluster.manifest) as client:
        client.kill("learner-1", "STOP")  # hold it still while its files go
        for suffix in ("", "-wal", "-shm"):
            (cluster.state_dir / "state" / f"learner-1.db{suffix}").unlink(missing_ok=True)
        client.kill("learner-1", "KILL")
    cluster.remember_processes()
    slots = propose_many(cluster, 50, "b")  # and the cluster goes on meanwhile
    top = max(slots.values())

    def caught_up() -> bool:
        path = cluster.state_dir / "state" / "learner-1.db"
        return path.exists() and meta(cluster, "learner-1", "applied") >= top

    wait_until(caught_up, 30, "learner-1 to catch up")
    sql = "SELECT slot, value FROM decisions WHERE slot <= ? ORDER BY slot"
    assert query(cluster, "learner-1", sql, top) == query(cluster, "learner-0", sql, top)
    sql = "SELECT key, slot, pos FROM requests WHERE slot <= ? ORDER BY key, slot, pos"
    assert query(cluster, "learner-1", sql, top) == query(cluster, "learner-0", sql, top)
    assert len(query(cluster, "learner-1", sql, top)) == 450
    # Progress is logged (and reported) with the next heartbeat.
    log = cluster.state_dir / "logs" / "learner-1.log"
    wait_until(lambda: "catching up from peer learners" in log.read_text(), 10,
               "a catch-up progress line in learner-1's log")
    assert cluster.agent("learner-1")["installed"] > 0
    # Deduplication still holds for a request decided before the wipe.
    cluster.run_ok("kill", "learner-0")
    with Client.for_manifest(cluster.manifest) as client:
        again = client.propose("a 7", request_id="a-7", timeout=20)
    assert again.slot < top and again.value == b"a 7"


def test_retention_bounds_the_log_and_expires_old_requests(make_cluster):
    """Guards [log] retain: learners delete old slots, `decided` starts at the
    first retained slot and refuses one below it with its name, and a
    request issued before the retained window is refused as expired."""
    cluster = make_cluster("roles", log={"retain": 60}, paxos={"batch": 1})
    # In groups, so no request waits behind more than `retain` slots (one that
    # does is refused as expired: it was issued before the retained window).
    for group in range(10):
        propose_many(cluster, 20, f"r{group}")

    def trimmed() -> bool:
        return all(meta(cluster, f"learner-{i}", "log_start") > 0 for i in range(2))

    wait_until(trimmed, 20, "learners to delete old slots")
    start = max(meta(cluster, f"learner-{i}", "log_start") for i in range(2))
    entries = json.loads(cluster.run_ok("decided", "-o", "json").stdout)
    assert entries and entries[0]["slot"] >= start
    below = cluster.run("decided", "--from", "0")
    assert below.returncode == 1, describe(below)
    assert "no longer retained; the log starts at slot" in below.stderr, below.stderr
    assert len(below.stderr.strip().splitlines()) == 1
    # After a restart nothing remembers r0-3 but the learners: they judge it.
    cluster.down()
    cluster.up()
    with Client.for_manifest(cluster.manifest) as client:
        with pytest.raises(Expired, match="r0-3"):
            client.propose("late retry", request_id="r0-3", issued=2, timeout=20)
        # A fresh request (stamped by the client from its learner) is applied as usual.
        fresh = client.propose("fresh", request_id="fresh-1", timeout=20)
    assert fresh.value == b"fresh"
    # The CLI says so too, and exits 1: it was not applied.
    late = cluster.run("propose", "late retry 2", "--request-id", "r0-4", "--issued", "2")
    assert late.returncode == 1 and "expired" in late.stderr, describe(late)
    values = [e["value"] for e in cluster.decided()]
    assert "late retry" not in values and values.count("fresh") == 1
    # Two commands were refused, each counted once cluster-wide (not once per learner).
    def expired_total() -> int:
        text = cluster.run_ok("metrics").stdout
        return int(float(re.search(r"^paxos_proposals_expired_total (\S+)$", text, re.M).group(1)))
    wait_until(lambda: expired_total() >= 2, 20, "paxos_proposals_expired_total to count both")
    assert expired_total() == 2


def without_positions(entries: list[dict]) -> list[dict]:
    """Entries as releases before positions printed them (slot, value, request_id, noop)."""
    return [{k: e[k] for k in ("slot", "value", "request_id", "noop")} for e in entries]


def test_starts_on_a_state_dir_written_by_paxosctl_0_1(make_cluster):
    """Guards the format migration: the agents' files of a real 0.1 cluster
    (tests/data/v1_state_dir.tar.gz) are migrated on first start; the decided
    log reads back as 0.1 printed it, and its request ids stay deduplicated."""
    cluster = make_cluster("roles", start=False)
    with tarfile.open(DATA / "v1_state_dir.tar.gz") as tar:
        tar.extractall(cluster.state_dir, filter="data")
    cluster.up()
    before = json.loads((DATA / "v1_decided.json").read_text())
    assert without_positions(cluster.decided()[:len(before)]) == before
    with Client.for_manifest(cluster.manifest) as client:
        again = client.propose("value 3", request_id="old-3", timeout=20)
        assert again.slot == 3
        new = client.propose("after the upgrade", timeout=20)
    assert new.slot > before[-1]["slot"]
    assert meta(cluster, "learner-0", "schema_version") == SCHEMA_VERSION


def test_starts_on_a_state_dir_written_by_storage_schema_2(make_cluster):
    """Guards the 2 -> 3 migration end to end: the agents' files of a real
    cluster of schema 2 (tests/data/v2_state_dir.tar.gz, see
    test_storage_migration.py) start; the decided log reads back exactly as
    that code printed it (non-ASCII values included), and its request ids
    stay deduplicated."""
    # The dir holds the old cluster's identity (cluster.json, members.json),
    # which its stores carry: the manifest must name that cluster.
    cluster = make_cluster("roles", start=False, name="v2")
    with tarfile.open(DATA / "v2_state_dir.tar.gz") as tar:
        tar.extractall(cluster.state_dir, filter="data")
    cluster.up()
    before = json.loads((DATA / "v2_decided.json").read_text())
    assert without_positions(cluster.decided()[:len(before)]) == before
    with Client.for_manifest(cluster.manifest) as client:
        again = client.propose("héllo wörld ✓ 日本語 🐘", request_id="uni-0", timeout=20)
        assert again.slot == 10
        new = client.propose("after the upgrade ✓", timeout=20)
    assert new.slot > before[-1]["slot"]
    assert cluster.decided()[-1]["value"] == "after the upgrade ✓"
    assert meta(cluster, "learner-0", "schema_version") == SCHEMA_VERSION


def test_starts_on_a_state_dir_written_by_storage_schema_3(make_cluster):
    """Guards the 3 -> 4 migration end to end: the agents' files of a real
    cluster of the previous release (tests/data/v3_state_dir.tar.gz, see
    test_storage_migration.py; learner-1 was stopped before its last 3 slots)
    start with no configuration history; the decided log reads back as that
    code printed it, request ids stay deduplicated, and the cluster decides on."""
    cluster = make_cluster("roles", start=False, name="v3")
    with tarfile.open(DATA / "v3_state_dir.tar.gz") as tar:
        tar.extractall(cluster.state_dir, filter="data")
    cluster.up()
    before = without_positions(json.loads((DATA / "v3_decided.json").read_text()))
    assert without_positions(cluster.decided()[:len(before)]) == before
    with Client.for_manifest(cluster.manifest) as client:
        again = client.propose("héllo ✓ 🐘", request_id="uni-0", timeout=20)
        assert again.slot == 8
        new = client.propose("after the upgrade to 4", timeout=20)
    assert new.slot > before[-1]["slot"]
    for agent in ("learner-0", "acceptor-0", "proposer-0"):
        assert meta(cluster, agent, "schema_version") == SCHEMA_VERSION
