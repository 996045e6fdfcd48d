"""A kill storm: `kill -9` every 100-150 ms, 70 times per topology (140 per
run), over every agent in turn and the current leader every third time,
while client threads propose unique request ids. (A leader's turn that
finds no leader, an election being under way, waits up to LEADER_WAIT for
one.) Then the kills stop, the
cluster heals, every learner catches up, and the history of every proposal
goes through `paxosctl.tools.history.check` against the decided log: nothing
acknowledged lost, nothing applied twice, real-time order kept.
"""

from __future__ import annotations

import collections
import random
import threading
import time

import pytest

from .harness import FAST_RESTART, TOPOLOGIES, Load, kill9, verify, wait_until

KILLS = 70
#: Seconds between two kills, drawn uniformly (seeded: a run can be replayed).
PACE = (0.10, 0.15)
LEADER_EVERY = 3
#: Elections twice as fast as the defaults, so the leader's turns find one sooner.
FAST_FAILOVER = {"heartbeat": "30ms", "election_timeout": "150ms"}
#: Seconds a leader's turn waits for there to be a leader (elections under way).
LEADER_WAIT = 1.0


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_kill_storm(fault_clusters, topology: str) -> None:
    cluster = fault_clusters(topology, restart=FAST_RESTART, paxos=FAST_FAILOVER)
    rng = random.Random(f"kill-storm-{topology}")
    names = cluster.agent_names
    kills: collections.Counter[str] = collections.Counter()
    leader_kills = 0
    load = Load(cluster, f"storm-{topology}", threads=6, timeout=8.0).start()
    try:
        load.wait_acked(10, 30, "before the storm")
        acked_before = load.acked
        with cluster.client() as client:
            stop = threading.Event()
            turn = cursor = 0
            started = time.monotonic()
            attempts = 0
            while sum(kills.values()) < KILLS:
                attempts += 1
                assert attempts < KILLS * 4, f"could only kill {sum(kills.values())} times: {kills}"
                status = client.request("status")
                if turn % LEADER_EVERY == LEADER_EVERY - 1:
                    # The leader's turn: give the cluster a moment to elect one.
                    deadline = time.monotonic() + LEADER_WAIT
                    while status["leader"] is None and time.monotonic() < deadline:
                        stop.wait(0.02)
                        status = client.request("status")
                    target = status["leader"]
                else:
                    target = names[cursor % len(names)]
                    cursor += 1
                turn += 1
                rows = {a["name"]: a for a in status["agents"]}
                pid = rows[target]["pid"] if target else None
                if pid is not None and kill9(pid, cluster):
                    kills[target] += 1
                    if target == status["leader"]:
                        leader_kills += 1
                stop.wait(rng.uniform(*PACE))  # the pace of the storm
        acked_in_storm = load.acked - acked_before
        storm_seconds = time.monotonic() - started
    finally:
        history = load.stop()

    assert set(kills) == set(names), f"not every agent was killed: {kills}"
    assert leader_kills >= KILLS // LEADER_EVERY - 6, (leader_kills, kills)
    report, _ = verify(cluster, history, timeout=90)
    assert acked_in_storm > 0, "nothing was decided during the storm"
    # Every kill was noticed and followed by a restart. (Waited for: a status
    # taken just after the last kill may not show that kill's restart yet.)
    def restarted_after_every_kill():
        status = cluster.healthy()
        restarts = {a["name"]: a["restarts"] for a in status["agents"]} if status else {}
        return status and all(restarts[n] >= kills[n] for n in names) and restarts

    wait_until(restarted_after_every_kill, 30,
               f"a healthy cluster with a restart for every kill ({dict(kills)})")
    print(f"{topology}: {sum(kills.values())} kills ({leader_kills} of the leader), "
          f"in {storm_seconds:.1f}s, {acked_in_storm} acknowledged meanwhile; "
          f"{report.summary()}, {report.unknown} unknown")
