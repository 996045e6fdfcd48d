"""Membership changes under load (issue 14): scale the acceptors 3 -> 5, stop
any two of the five while the cluster keeps deciding, scale 5 -> 3, wipe one
acceptor's files and `replace` it, all while client threads propose unique
request ids. Afterwards every acknowledged command is in the decided log
exactly once at its acknowledged slot, and nothing unproposed is there
(`paxosctl.tools.history.check`, through `verify`).

In the replicas topology the group is "replica": each change moves
proposers and learners too, and the replaced replica's learner starts
empty and copies the log.
"""

from __future__ import annotations

import json
import random

import pytest

from .harness import TOPOLOGIES, Load, verify, wait_until


def group_of(topology: str) -> str:
    return "acceptor" if topology == "roles" else "replica"


def configuration(cluster) -> dict:
    return cluster.status()["configuration"]


def in_force(cluster, acceptors: set[str]) -> bool:
    config = configuration(cluster)
    return bool(config) and set(config["in_force"]) == acceptors and not config.get("change")


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_scale_stop_two_shrink_and_replace_under_load(fault_clusters, topology: str) -> None:
    cluster = fault_clusters(topology)
    group = group_of(topology)
    rng = random.Random(f"membership-{topology}")
    load = Load(cluster, f"members-{topology}", threads=4, timeout=8.0).start()
    try:
        load.wait_acked(10, 30, "before any change")

        # 3 -> 5: the new configuration is decided and in force.
        result = cluster.run_ok("scale", f"{group}=5", "--timeout", "30")
        five = {f"{group}-{i}" for i in range(5)}
        assert f"adding {group}-3, {group}-4" in result.stdout, result.stdout
        assert "in force after" in result.stdout
        config = configuration(cluster)
        assert set(config["in_force"]) == five and config["in_force_epoch"] == 1, config
        if topology == "replicas":
            # A new replica started empty yet knows epoch 0 was the first three
            # (seeded by the supervisor), not the five it was started among.
            seen = cluster.request("describe", agent=f"{group}-4")["agent"]["configuration"]
            assert seen["history"][3][0] == [0, 0, [f"{group}-{i}" for i in range(3)]], seen
        load.wait_acked(10, 30, "after 3 -> 5")

        # Any two of the five stopped: 3 of 5 still decide.
        stopped = rng.sample(sorted(five), 2)
        for name in stopped:
            cluster.run_ok("stop", name)
        load.wait_acked(20, 30, f"with {', '.join(stopped)} stopped")
        for name in stopped:
            cluster.run_ok("start", name)
        cluster.wait_healthy(30)

        # 5 -> 3: the highest two leave once the smaller set is in force.
        result = cluster.run_ok("scale", f"{group}=3", "--timeout", "30")
        three = {f"{group}-{i}" for i in range(3)}
        assert in_force(cluster, three), configuration(cluster)
        names = {a["name"] for a in cluster.status()["agents"]}
        assert not names & {f"{group}-3", f"{group}-4"}, names
        load.wait_acked(10, 30, "after 5 -> 3")

        # A lost disk: stop it, wipe its files; it refuses to start empty.
        victim = f"{group}-1"
        cluster.run_ok("stop", victim)
        for path in cluster.state_file(victim).parent.glob(f"{victim}.db*"):
            path.unlink()
        start = cluster.run("start", victim)
        assert start.returncode != 0 and "paxosctl replace" in start.stderr, start.stderr
        load.wait_acked(10, 30, f"with {victim} lost")
        # Its successor takes a name never used before ({group}-3 and -4 ran).
        result = cluster.run_ok("replace", victim, "--timeout", "30")
        successor = f"{group}-5"
        assert f"adding {successor}" in result.stdout and f"retiring {victim}" in result.stdout
        assert in_force(cluster, {f"{group}-0", f"{group}-2", successor}), configuration(cluster)
        # status lists the successor with its group, in index order.
        names = [a["name"] for a in cluster.status()["agents"]]
        members = [n for n in names if n.startswith(f"{group}-")]
        assert members == [f"{group}-0", f"{group}-2", successor], names
        assert names[names.index(members[0]):][:3] == members, names
        load.wait_acked(20, 30, "after the replace")
    finally:
        history = load.stop()

    report, log = verify(cluster, history, timeout=60)
    assert report.acknowledged >= 80, report.summary()
    topology_file = json.loads((cluster.state_dir / "topology.json").read_text())
    assert victim in topology_file["retired"] and topology_file["change"] is None
    # The new configuration is what every later slot was decided by: the
    # decided log carries on past every change, in one sequence.
    assert log[-1]["slot"] >= 3 * 64, log[-1]
