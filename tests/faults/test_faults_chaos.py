"""Chaos in the hub (`paxosctl chaos`, `[chaos]` in the manifest).

10% of the messages dropped, 5% duplicated and a minority of the
acceptors cut off: the cluster keeps deciding. Then the leader is cut off
instead: another proposer takes over and the cluster keeps deciding.
After `--heal`, every learner catches up to the highest acknowledged
slot, and the history of every proposal passes `check`.

`[chaos]` in a manifest is in force from `up` on: status shows it, and the
metrics count the messages it dropped.
"""

from __future__ import annotations

import json
import re

import pytest

from .harness import (
    FAST_RESTART,
    TOPOLOGIES,
    FaultCluster,
    Load,
    describe,
    verify,
    wait_until,
)


def dropped(cluster: FaultCluster) -> dict[str, float]:
    """`paxos_messages_dropped_total` by reason, summed over agents, from `paxosctl metrics`."""
    text = cluster.run_ok("metrics").stdout
    found = {}
    for line in text.splitlines():
        m = re.match(r'paxos_messages_dropped_total\{(.*)\} (\S+)$', line)
        if m:
            reason = re.search(r'reason="([^"]*)"', m.group(1))
            if reason:
                # One series per agent and reason: the cluster's is their sum.
                found[reason.group(1)] = found.get(reason.group(1), 0.0) + float(m.group(2))
    return found


def chaos_cli(cluster: FaultCluster, *args: str) -> str:
    result = cluster.run("chaos", *args)
    assert result.returncode == 0 and result.stderr == "", describe(result)
    return result.stdout.strip()


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_chaos_then_leader_partition_then_heal(fault_clusters, topology: str) -> None:
    cluster = fault_clusters(topology, restart=FAST_RESTART)
    leader = cluster.leader()
    # A minority of the acceptors, not the leader (it is cut off next).
    minority = next(a for a in reversed(cluster.acceptors) if a != leader)
    load = Load(cluster, f"chaos-{topology}", threads=4, timeout=8.0).start()
    try:
        load.wait_acked(10, 30, "before the chaos")

        shown = chaos_cli(cluster, "--drop", "0.1", "--duplicate", "0.05", "--partition", minority)
        assert shown == f"chaos: drop=0.1, duplicate=0.05, partition={minority}", shown
        assert cluster.status()["chaos"] == {"drop": 0.1, "duplicate": 0.05, "partition": [minority]}
        load.wait_acked(30, 45, f"with drops, duplicates and {minority} cut off")

        old = cluster.status()["leader"] or leader
        shown = chaos_cli(cluster, "--partition", old, "-o", "json")
        assert json.loads(shown) == {"drop": 0.1, "duplicate": 0.05, "partition": [old]}, shown
        new = wait_until(lambda: (lead := cluster.status()["leader"]) not in (None, old) and lead,
                         30, f"a leader other than {old}, which is cut off")
        assert new in cluster.proposers
        load.wait_acked(30, 45, f"with the leader {old} cut off, under {new}")

        assert chaos_cli(cluster, "--heal") == "chaos: off"
        assert cluster.status()["chaos"] == {}
    finally:
        history = load.stop()
    counts = dropped(cluster)
    assert counts.get("chaos_drop", 0) > 0 and counts.get("partition", 0) > 0, counts
    report, _ = verify(cluster, history, timeout=60)
    # verify() waited until every learner's decided prefix reached the highest
    # acknowledged slot; it also shows in status.
    assert cluster.status()["decided_up_to"] >= load.max_acked_slot
    assert report.acknowledged >= 70, report.summary()


def test_chaos_in_the_manifest(fault_clusters) -> None:
    cluster = fault_clusters("roles", restart=FAST_RESTART,
                             chaos={"drop": 0.1, "duplicate": 0.05, "seed": 7})
    status = cluster.status()
    assert status["chaos"] == {"drop": 0.1, "duplicate": 0.05}, status["chaos"]
    text = cluster.run("status")
    assert text.returncode == 0, describe(text)
    assert "chaos: drop=0.1, duplicate=0.05" in text.stdout.splitlines()[1], text.stdout
    assert chaos_cli(cluster) == "chaos: drop=0.1, duplicate=0.05"
    load = Load(cluster, "manifest-chaos", threads=4, timeout=8.0).start()
    try:
        load.wait_acked(30, 45, "under the manifest's chaos")
    finally:
        history = load.stop()
    verify(cluster, history, timeout=60)
    counts = wait_until(lambda: (c := dropped(cluster)).get("chaos_drop", 0) > 0 and c, 10,
                        'paxos_messages_dropped_total{reason="chaos_drop"} > 0')
    assert counts.get("partition", 0) == 0, counts
