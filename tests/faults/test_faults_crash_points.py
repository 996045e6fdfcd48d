"""Crashes at the storage's crash points, under load.

`PAXOSCTL_FAULTS` (paxos_agents.runtime.faults), set in the environment of
`paxosctl up -d` and so inherited by the supervisor and its agents, makes
an agent SIGKILL itself the n-th time its storage passes a point:
before-write, after-write (written, not committed), after-commit
(committed, nothing answered yet). Each rule fires once: it leaves
`<state file>.fault-<point>` behind.

Separate roles, one cluster per point: acceptor-1 and learner-1 die at
their 5th save; each proposer at its 3rd (a proposer saves its round each
time it runs for leader, and the leader saves its decided floor every 64
slots: after at most two elections the 3rd save is a leader's, in the
middle of the load; the test insists that one proposer died while it was
the leader, as its log says).
Replicas: one cluster, a different point on each replica. Each crashed
agent must be restarted (status restarts >= 1, its last exit a SIGKILL),
the cluster must keep deciding, and the history must pass `check`.
"""

from __future__ import annotations

import pytest

from .harness import FAST_RESTART, FaultCluster, Load, verify, wait_until

POINTS = ("before-write", "after-write", "after-commit")


def marker(cluster: FaultCluster, agent: str, point: str):
    return cluster.state_file(agent).with_name(f"{agent}.db.fault-{point}")


def crashed_and_back(cluster: FaultCluster, agent: str, point: str) -> bool:
    """The rule fired (its marker exists) and the agent runs again after a SIGKILL."""
    if not marker(cluster, agent, point).exists():
        return False
    row = cluster.agent(agent)
    return (row["restarts"] >= 1 and row["state"] == "running"
            and (row.get("last_exit") or {}).get("code") == -9)


def led_when_it_crashed(cluster: FaultCluster, agent: str) -> bool:
    """Whether `agent`'s incarnation that crashed was leading at that moment:
    its log's last leadership line before the next incarnation started."""
    lines = cluster.agent_log(agent).read_text(errors="replace").splitlines()
    starts = [i for i, line in enumerate(lines) if "INFO starting (roles" in line]
    if len(starts) < 2:
        return False  # not restarted yet
    said = [line for line in lines[starts[-2]:starts[-1]]
            if "INFO leading with ballot" in line or "INFO no longer leading" in line]
    return bool(said) and "leading with ballot" in said[-1]


class NoLeaderCrashed(AssertionError):
    """Every proposer's rule fired while it was only a candidate (elections
    duelled: on a loaded machine their saves can all be phase 1's), so this
    run could not crash a leader: the scenario is worth running again."""


def run_with_faults(cluster: FaultCluster, rules: list[tuple[str, str, int]],
                    must_fire: list[tuple[str, str]], leaders: list[tuple[str, str]]) -> None:
    """Load until every rule in `must_fire` fired and its agent is back,
    and (if `leaders` is given) one of those fired while its agent led
    (as the agent's log says: see `led_when_it_crashed`)."""

    def done() -> bool:
        return (all(crashed_and_back(cluster, a, p) for a, p in must_fire)
                and (not leaders or any(crashed_and_back(cluster, a, p)
                                        and led_when_it_crashed(cluster, a)
                                        for a, p in leaders)))

    def explain() -> str:
        return "; ".join(f"{a}: fired {marker(cluster, a, p).exists()}, back "
                         f"{crashed_and_back(cluster, a, p)}, led {led_when_it_crashed(cluster, a)}"
                         for a, p in must_fire + leaders)

    load = Load(cluster, "crash", threads=6, timeout=8.0).start()
    try:
        def settled() -> bool:
            return done() or (bool(leaders) and all(crashed_and_back(cluster, a, p)
                                                    for a, p in must_fire + leaders))

        try:
            wait_until(settled, 90, f"{must_fire} to crash at their point and come back"
                                    + (f", and the leader at one of {leaders}" if leaders else ""),
                       interval=0.02)
        except AssertionError as e:
            raise AssertionError(f"{e} ({explain()})") from None
        no_leader = not done()
        # The cluster keeps deciding after the crashes.
        load.wait_acked(20, 45, "after the crashes")
    finally:
        history = load.stop()
    report, _ = verify(cluster, history, timeout=60)
    assert report.acknowledged >= 20, report.summary()
    # No agent without a rule was ever restarted.
    ruled = {agent for agent, _, _ in rules}
    status = cluster.status()
    assert all(a["restarts"] == 0 for a in status["agents"] if a["name"] not in ruled), status
    if no_leader:  # checked and safe, but no leader crashed: the caller runs it again
        raise NoLeaderCrashed(explain())


@pytest.mark.parametrize("point", POINTS)
def test_crash_point_separate_roles(fault_clusters, point: str) -> None:
    rules = [("acceptor-1", point, 5), ("learner-1", point, 5),
             ("proposer-0", point, 3), ("proposer-1", point, 3)]
    spec = ";".join(f"{a}:{p}:{n}:crash" for a, p, n in rules)
    for attempt in range(3):  # a fresh cluster when elections duelled (NoLeaderCrashed)
        cluster = fault_clusters("roles", restart=FAST_RESTART, env={"PAXOSCTL_FAULTS": spec})
        try:
            run_with_faults(cluster, rules,
                            must_fire=[("acceptor-1", point), ("learner-1", point)],
                            leaders=[("proposer-0", point), ("proposer-1", point)])
            return
        except NoLeaderCrashed as e:
            if attempt == 2:
                raise AssertionError(f"three runs in a row crashed no leader: {e}") from None
            cluster.down()


def test_crash_points_replicas(fault_clusters) -> None:
    rules = [("replica-0", "before-write", 5), ("replica-1", "after-write", 6),
             ("replica-2", "after-commit", 7)]
    spec = ";".join(f"{a}:{p}:{n}:crash" for a, p, n in rules)
    cluster = fault_clusters("replicas", restart=FAST_RESTART, env={"PAXOSCTL_FAULTS": spec})
    run_with_faults(cluster, rules, must_fire=[(a, p) for a, p, _ in rules], leaders=[])


def test_a_slow_store_opening_is_not_a_hung_start(fault_clusters) -> None:
    """Guards `starting` = alive: an agent whose store takes 4 s to open (as a
    one-time migration of an old state dir may) reports "loading" meanwhile,
    so a 2 s start_timeout does not kill it; it then runs, never restarted."""
    spec = "acceptor-2:open:1:slow"
    cluster = fault_clusters("roles", env={"PAXOSCTL_FAULTS": spec},
                             health={"start_timeout": "2s"})
    wait_until(lambda: (cluster.state_dir / "state" / "acceptor-2.db.fault-open").exists(), 10,
               "the slow opening to happen")
    row = wait_until(lambda: next((a for a in cluster.status()["agents"]
                                   if a["name"] == "acceptor-2" and a["state"] == "running"), None),
                     15, "acceptor-2 to run")
    assert row["restarts"] == 0 and "last_exit" not in row, (
        row, (cluster.state_dir / "logs" / "supervisor.log").read_text()[-3000:],
        (cluster.state_dir / "logs" / "acceptor-2.log").read_text()[-3000:])
    supervisor_log = (cluster.state_dir / "logs" / "supervisor.log").read_text()
    assert "no first heartbeat" not in supervisor_log
