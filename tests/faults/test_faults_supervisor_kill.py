"""The supervisor itself killed with `kill -9` in the middle of the load.

No agent may outlive it (each notices its inbox closing; the forkserver
notices its parent gone): within a bounded wait, every process it had
started is gone and no process is left whose command line names the
cluster's folder (the forkserver and the agents forked from it carry it).
`up -d` again then serves a decided log holding every acknowledged value,
once, at its slot: the history passes `check`.
"""

from __future__ import annotations

import json
import time

import pytest

from .harness import FAST_RESTART, TOPOLOGIES, Load, alive, verify, wait_until


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_supervisor_kill9_mid_load(fault_clusters, topology: str) -> None:
    cluster = fault_clusters(topology, restart=FAST_RESTART)
    supervisor = cluster.supervisor()
    assert supervisor is not None
    load = Load(cluster, f"sup-{topology}", threads=6, timeout=5.0).start()
    try:
        load.wait_acked(50, 30, "before the kill")
        descendants = supervisor.children(recursive=True)
        agents = {a["name"]: a["pid"] for a in cluster.status()["agents"]}
        assert all(agents.values()), agents
        forkservers = [p for p in supervisor.children() if "forkserver" in " ".join(p.cmdline())]
        assert forkservers, [p.cmdline() for p in supervisor.children()]
        assert {pid for pid in agents.values()} <= {p.pid for p in descendants}
        acked_before = load.acked

        supervisor.kill()  # SIGKILL, mid-load

        wait_until(lambda: not alive(supervisor), 5, "the supervisor to die")
        wait_until(lambda: not any(alive(p) for p in descendants), 15,
                   f"all {len(descendants)} processes it started (agents, forkserver) to exit")
        wait_until(lambda: not cluster.marked_processes(), 10,
                   f"no process left whose command line names {cluster.dir} or that runs in it")
        # The load keeps trying (reconnecting) while the cluster is down.
        result = cluster.run("status")
        assert result.returncode == 1 and "no cluster running" in result.stderr, result

        # Its parent (init) reaps it in its own time; `up` must not take the
        # zombie for a live supervisor.
        cluster.up()
        cluster.wait_healthy(30)
        load.wait_acked(20, 45, "after the new supervisor came up")
    finally:
        history = load.stop()
    assert acked_before >= 50
    report, _ = verify(cluster, history)
    assert report.acknowledged >= acked_before + 20, report.summary()


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_supervisor_stopped_stalls_no_command_and_kills_no_agent(fault_clusters,
                                                                  topology: str) -> None:
    """SIGSTOP the supervisor for longer than the health timeout: proposals
    are still decided (the data path does not go through it), and after
    SIGCONT it restarts nobody for the silence its own stall caused."""
    cluster = fault_clusters(topology, health={"heartbeat_interval": "100ms",
                                               "heartbeat_timeout": "1s"})
    supervisor = cluster.supervisor()
    before = {a["name"]: (a["pid"], a["restarts"]) for a in cluster.status()["agents"]}
    load = Load(cluster, f"stop-{topology}", threads=3, timeout=5.0).start()
    try:
        load.wait_acked(20, 30, "before the stop")
        supervisor.suspend()
        try:
            acked = load.acked
            load.wait_acked(acked + 50, 10, "while the supervisor is stopped")
            result = cluster.run("propose", "--timeout", "3", "while-stopped", "-o", "json")
            assert result.returncode == 0, result
            by_cli = json.loads(result.stdout)["request_id"]
            # Past the 1s heartbeat timeout, in the supervisor's own clock.
            time.sleep(2.5)
        finally:
            supervisor.resume()
        status = wait_until(lambda: cluster.status(), 10, "the supervisor to answer again")
        load.wait_acked(load.acked + 20, 20, "after SIGCONT")
        after = {a["name"]: (a["pid"], a["restarts"]) for a in cluster.status()["agents"]}
    finally:
        history = load.stop()
    assert after == before, (before, after, status)
    assert "stalled for" in (cluster.state_dir / "logs" / "supervisor.log").read_text()
    verify(cluster, history, others=frozenset({by_cli}))
