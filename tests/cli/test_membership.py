"""`paxosctl scale`, `replace`, and `apply` of the acceptors (issue 14) on real
clusters: refusals that change nothing, one change at a time, status and
metrics following the configuration in force, a restart that keeps the
scaled agents, `apply` putting the manifest's counts back, and a change
finished by the next supervisor when the one that began it was killed.
(The load test is tests/faults/test_faults_membership.py.)
"""

from __future__ import annotations

import json
import os
import signal

from clusters import Cluster, describe, wait_until

ROLES = {"proposer": ("proposer", 2), "acceptor": ("acceptor", 3), "learner": ("learner", 1)}
THREE = ["acceptor-0", "acceptor-1", "acceptor-2"]


def pids(cluster: Cluster) -> dict[str, int]:
    return {a["name"]: a["pid"] for a in cluster.status()["agents"]}


def signal_if_alive(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def config(cluster: Cluster) -> dict:
    return cluster.status()["configuration"]


def settled(cluster: Cluster, acceptors: list[str]) -> dict | None:
    """The configuration once `acceptors` are in force and no change runs."""
    c = config(cluster)
    if c and c["in_force"] == acceptors and c["epoch"] == c["in_force_epoch"] and not c["change"]:
        return c
    return None


def test_refusals_change_nothing(make_cluster):
    cluster = make_cluster(groups=ROLES)
    cluster.wait_healthy()
    wait_until(lambda: settled(cluster, THREE), 20, "the configuration to be reported")
    before = pids(cluster)
    cases = [
        (("scale", "acceptor=0"), 2, "error: the cluster would have no acceptor; it needs at least one acceptor"),
        (("scale", "learner=0"), 2, "error: the cluster would have no learner"),
        (("scale", "acceptor=1"), 2, "error: removing 2 of 3 acceptors at once (acceptor-1, acceptor-2) "
                                     "is more than a minority; remove at most 1 per change"),
        (("scale", "bogus=2"), 2, "error: no agent group 'bogus'; groups: proposer, acceptor, learner"),
        (("scale", "acceptor"), 2, "error: expected GROUP=N with N a whole number"),
        (("scale", "acceptor=2", "learner=2"), 2, "error: expected one GROUP=N, got 2"),
        (("scale", "acceptor=65"), 2, "error: replicas: expected an integer from 0 to 64, got 65"),
        (("replace", "acceptor-0"), 2, "error: acceptor-0 is running; replacing it retires a healthy "
                                       "member: add --force to replace it anyway"),
        (("replace", "nobody"), 2, "error: no agent 'nobody'"),
        (("scale", "acceptor=3"), 0, ""),
    ]
    for args, code, message in cases:
        result = cluster.run(*args)
        assert result.returncode == code, describe(result)
        lines = result.stderr.splitlines()
        assert (len(lines) == 1 and lines[0].startswith(message)) if code else not lines, lines
        assert "Traceback" not in result.stdout + result.stderr
    assert pids(cluster) == before
    assert settled(cluster, THREE)["epoch"] == 0
    assert not (cluster.state_dir / "topology.json").exists()


def test_one_change_at_a_time(make_cluster):
    # Long enough a health timeout that the stopped proposers are not killed meanwhile.
    cluster = make_cluster(groups=ROLES, health={"heartbeat_timeout": "20s"},
                           metrics={"listen": "127.0.0.1:0"})
    cluster.wait_healthy()
    wait_until(lambda: settled(cluster, THREE), 20, "the configuration to be reported")
    # With every proposer stopped nothing decides the change: it stays in progress.
    cluster.leader()
    stopped = [cluster.agent(p)["pid"] for p in cluster.proposers]
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        started = cluster.run_ok("scale", "acceptor=4", "--no-wait")
        assert "scale acceptor 3 -> 4: started" in started.stdout, started.stdout
        for args in (("scale", "acceptor=5"), ("replace", "acceptor-0", "--force"), ("apply",)):
            result = cluster.run(*args)
            assert result.returncode == 1, describe(result)
            assert "a membership change is in progress (scale acceptor 3 -> 4" in result.stderr, \
                result.stderr
        shown = cluster.run("status").stdout  # exit 3: the leader is unresponsive
        assert "change in progress: scale acceptor 3 -> 4: " in shown, shown
        # acceptor-3 runs but is not in force: the quorum is counted from the three.
        wait_until(lambda: cluster.agent("acceptor-3")["state"] == "running", 20, "acceptor-3 to run")
        scrape = cluster.run_ok("metrics").stdout.splitlines()
        for line in ("paxos_acceptors_up 3.0", "paxos_acceptors_configured 3.0",
                     "paxosctl_membership_change_in_progress 1.0"):
            assert line in scrape, line
    finally:
        for pid in stopped:
            signal_if_alive(pid, signal.SIGCONT)
    four = [*THREE, "acceptor-3"]
    wait_until(lambda: settled(cluster, four), 30, "acceptor-3 to be in force")
    cluster.run_ok("propose", "after the change")


def test_status_metrics_restart_and_apply_follow_the_configuration(make_cluster):
    cluster = make_cluster(groups=ROLES, metrics={"listen": "127.0.0.1:0"})
    cluster.wait_healthy()
    cluster.run_ok("propose", "before")
    result = cluster.run_ok("scale", "acceptor=4")
    assert "adding acceptor-3" in result.stdout
    assert "acceptors: acceptor-0, acceptor-1, acceptor-2, acceptor-3 (majority 3)" in result.stdout
    assert "scale acceptor 3 -> 4: in force after" in result.stdout
    four = [*THREE, "acceptor-3"]
    c = settled(cluster, four)
    assert c and c["epoch"] == 1 and c["majority"] == 3, c
    shown = cluster.run("status")
    assert "acceptors: acceptor-0, acceptor-1, acceptor-2, acceptor-3 (epoch 1, majority 3)" \
        in shown.stdout, shown.stdout
    assert "differs from" in shown.stderr  # the manifest still says 3
    scrape = cluster.run_ok("metrics").stdout
    for line in ("paxos_config_epoch 1.0", "paxos_config_in_force_epoch 1.0",
                 "paxos_acceptors_configured 4.0", "paxos_acceptor_quorum 3.0",
                 "paxosctl_membership_change_in_progress 0.0"):
        assert line in scrape.splitlines(), line

    # A new supervisor runs the scaled agents, not the manifest's names.
    cluster.down()
    cluster.up()
    assert "acceptor-3" in pids(cluster)
    wait_until(lambda: settled(cluster, four), 20, "epoch 1 reported after the restart")
    cluster.run_ok("propose", "after the restart")

    # apply puts the manifest's count back: a membership change, 4 -> 3.
    result = cluster.run_ok("apply")
    assert "removing acceptor-3 (the files stay)\nacceptors: acceptor-0, acceptor-1, " \
           "acceptor-2 (majority 2)\napplied " in result.stdout, result.stdout
    c = settled(cluster, THREE)
    assert c and c["epoch"] == 2, c
    assert "acceptor-3" not in pids(cluster)
    assert "differs from" not in cluster.run("status").stderr
    # A removed acceptor stops only once the smaller configuration is in force.
    events = [e["message"] for e in cluster.request("events")["events"]]
    in_force = events.index("configuration epoch 2 in force: acceptors acceptor-0, acceptor-1, "
                            "acceptor-2")
    removed = next(i for i, m in enumerate(events) if m.startswith("removed (apply"))
    assert in_force < removed, events[in_force - 3:]
    log = [e for e in cluster.decided() if not e.get("noop")]
    assert [e["value"] for e in log if "config" not in e] == ["before", "after the restart"], log
    # The two changes are in the log, each at its slot, with what they decided.
    assert [(e["config"]["epoch"], len(e["config"]["acceptors"])) for e in log if "config" in e] \
        == [(1, 4), (2, 3)], log
    text = cluster.run_ok("decided").stdout
    assert "\\x00config:1:" in text and "\x00" not in text, text  # escaped, never a raw NUL
    assert "\t(configuration epoch 2: acceptors acceptor-0, acceptor-1, acceptor-2)\n" in text, text


def test_a_change_is_finished_by_the_next_supervisor(make_cluster):
    cluster = make_cluster(groups=ROLES, health={"heartbeat_timeout": "20s"})
    cluster.wait_healthy()
    wait_until(lambda: settled(cluster, THREE), 20, "the configuration to be reported")
    cluster.leader()
    stopped = [cluster.agent(p)["pid"] for p in cluster.proposers]
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)  # the change cannot be decided yet
    cluster.run_ok("scale", "acceptor=4", "--no-wait")
    topology = json.loads((cluster.state_dir / "topology.json").read_text())
    assert topology["change"]["why"] == "scale acceptor 3 -> 4", topology
    processes = cluster.remember_processes()
    cluster.supervisor().send_signal(signal.SIGKILL)
    for pid in stopped:
        signal_if_alive(pid, signal.SIGKILL)
    for p in processes:  # agents end when their supervisor's pipe closes
        wait_until(lambda p=p: not p.is_running() or p.status() == "zombie", 20, f"{p.pid} to end")
    cluster.up()
    four = [*THREE, "acceptor-3"]
    wait_until(lambda: settled(cluster, four), 30, "the resumed change to be in force")
    topology = json.loads((cluster.state_dir / "topology.json").read_text())
    assert topology["change"] is None and [a[0] for a in topology["agents"]].count("acceptor-3") == 1
    cluster.run_ok("propose", "after the resumed change")


def test_a_new_agent_that_cannot_start_undoes_the_change(make_cluster):
    cluster = make_cluster(groups=ROLES)
    cluster.wait_healthy()
    wait_until(lambda: settled(cluster, THREE), 20, "the configuration to be reported")
    before = pids(cluster)
    # acceptor-3's state file cannot be opened: a folder stands where it goes.
    cluster.state_file("acceptor-3").mkdir(parents=True)
    result = cluster.run("scale", "acceptor=4", "--timeout", "30")
    assert result.returncode == 1, describe(result)
    assert result.stderr.startswith("error: acceptor-3 did not start (see paxosctl logs acceptor-3); "
                                    "nothing was proposed"), result.stderr
    assert pids(cluster) == before
    assert settled(cluster, THREE)["epoch"] == 0
    topology = json.loads((cluster.state_dir / "topology.json").read_text())
    assert topology["change"] is None and "acceptor-3" not in [a[0] for a in topology["agents"]]
    cluster.run_ok("propose", "still deciding")


def test_scale_proposers_and_learners(make_cluster):
    """No configuration change: new proposers and learners join the membership
    (the endpoints file lists them), removed ones stop; the epoch stays 0."""
    cluster = make_cluster(groups=ROLES)
    cluster.wait_healthy()
    cluster.run_ok("propose", "before")
    result = cluster.run_ok("scale", "proposer=3")
    assert "adding proposer-2" in result.stdout and "(configuration epoch" not in result.stdout
    result = cluster.run_ok("scale", "learner=2")
    assert "adding learner-1" in result.stdout
    endpoints = json.loads((cluster.state_dir / "run" / "endpoints.json").read_text())
    assert endpoints["proposers"] == ["proposer-0", "proposer-1", "proposer-2"]
    assert endpoints["learners"] == ["learner-0", "learner-1"]
    # The new learner copies the log; then the old proposers leave.
    result = cluster.run_ok("scale", "proposer=1")
    assert "removing proposer-1, proposer-2 (the files stay)" in result.stdout
    assert [a["name"] for a in cluster.status()["agents"] if a["role"] == "proposer"] == ["proposer-0"]
    cluster.run_ok("propose", "after")
    wait_until(lambda: cluster.learners_caught_up(1), 20, "both learners to hold both values")
    assert config(cluster)["epoch"] == 0


def test_a_removed_acceptor_runs_until_the_change_is_in_force(make_cluster):
    """The new configuration is decided, but with the learner stopped it is
    not in force (every learner must store the slots the old one governs):
    the removed acceptor keeps running meanwhile, and stops once it is."""
    groups = {**ROLES, "acceptor": ("acceptor", 4)}
    cluster = make_cluster(groups=groups, health={"heartbeat_timeout": "20s"})
    cluster.wait_healthy()
    four = [*THREE, "acceptor-3"]
    wait_until(lambda: settled(cluster, four), 20, "the configuration to be reported")
    learner = cluster.agent("learner-0")["pid"]
    os.kill(learner, signal.SIGSTOP)
    try:
        cluster.run_ok("scale", "acceptor=3", "--no-wait")
        wait_until(lambda: config(cluster)["epoch"] == 1, 20, "epoch 1 to be decided")
        c = config(cluster)
        assert c["in_force_epoch"] == 0 and c["change"]["phase"] == \
            "waiting for the new configuration to be in force", c
        rows = {a["name"]: a for a in cluster.status()["agents"]}
        assert "acceptor-3" in rows and rows["acceptor-3"]["state"] == "running", rows
        os.kill(rows["acceptor-3"]["pid"], 0)  # its process is alive
    finally:
        signal_if_alive(learner, signal.SIGCONT)
    wait_until(lambda: settled(cluster, THREE), 30, "epoch 1 to be in force")
    wait_until(lambda: "acceptor-3" not in pids(cluster), 20, "acceptor-3 to stop")
