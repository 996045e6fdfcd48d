"""`paxosctl apply` and SIGHUP: the running cluster reconciled with its manifest.

Real clusters: agents added and removed, settings applied live or by a
rolling restart, refusals that change nothing. The table tests at the end
check the plan (paxosctl.supervisor.reconcile) and the core's live membership
without processes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import sqlite3
import urllib.request
from pathlib import Path

import pytest
from clusters import Cluster, describe, manifest_text, wait_until

from paxos_agents.core.settings import Membership
from paxos_agents.core.messages import Stored
from paxos_agents.core.node import Node
from paxosctl import Client
from paxosctl import manifest as manifest_module
from paxosctl.manifest import load_manifest
from paxosctl.supervisor.reconcile import SECTIONS, SETTINGS, plan
from paxosctl.supervisor.rollout import interim_manifest

ROLES = {"proposer": ("proposer", 2), "acceptor": ("acceptor", 3), "learner": ("learner", 1)}
DRIFT = "warning: the running cluster differs from"


def rewrite(cluster: Cluster, groups: dict[str, tuple[str, int]] | None = None,
            **sections: dict) -> None:
    """Write the cluster's manifest anew (same name), with `groups` and `sections`."""
    cluster.groups = groups or cluster.groups
    cluster.manifest.write_text(manifest_text(cluster.topology, cluster.name,
                                              groups=cluster.groups, **sections))


def with_counts(**counts: int) -> dict[str, tuple[str, int]]:
    return {g: (role, counts.get(g, n)) for g, (role, n) in ROLES.items()}


def endpoints(cluster: Cluster) -> dict:
    return json.loads((cluster.state_dir / "run" / "endpoints.json").read_text())


def pids(cluster: Cluster) -> dict[str, int]:
    return {a["name"]: a["pid"] for a in cluster.status()["agents"]}


def stored_round(cluster: Cluster, agent: str) -> int:
    """The ballot round `agent`'s store holds (read-only, beside the running agent)."""
    path = cluster.state_file(agent).resolve()
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute("SELECT value FROM meta WHERE key = 'round'").fetchone()[0])
    finally:
        conn.close()


def lead(cluster: Cluster, proposer: str) -> int:
    """Make `proposer` the leader (cut the other proposers off until it leads);
    return its ballot round."""
    others = [p for p in cluster.proposers if p != proposer]
    cluster.request("chaos", partition=others)
    try:
        st = wait_until(lambda: (s := cluster.status())["leader"] == proposer and s,
                        20, f"{proposer} to lead")
    finally:
        cluster.request("chaos", heal=True)
    return st["ballot"][0]


def supervisor_pid(cluster: Cluster) -> int:
    return json.loads((cluster.state_dir / "supervisor.pid").read_text())["pid"]


def supervisor_log(cluster: Cluster) -> str:
    return (cluster.state_dir / "logs" / "supervisor.log").read_text()


# ------------------------------------------------------------------- agents


def test_apply_adds_a_proposer_then_a_learner_that_catches_up(make_cluster):
    cluster = make_cluster(groups=ROLES)
    first = cluster.run_ok("propose", "before")

    rewrite(cluster, with_counts(proposer=3))
    assert DRIFT in cluster.run("status").stderr
    result = cluster.run_ok("apply")
    assert "agents: proposer-2 added (proposer)" in result.stdout
    assert re.search(rf"^applied {cluster.manifest}: in force after", result.stdout, re.M)
    # apply returned once it was in force: no waiting here.
    status = cluster.run("status")
    assert status.returncode == 0 and DRIFT not in status.stderr, describe(status)
    assert cluster.agent("proposer-2")["state"] == "running"
    assert endpoints(cluster)["proposers"] == ["proposer-0", "proposer-1", "proposer-2"]
    assert cluster.agent_log("proposer-2").exists()
    # The agents that stayed learned it over their pipe, without a restart.
    assert "membership now: proposers proposer-0, proposer-1, proposer-2" in \
        cluster.agent_log("acceptor-0").read_text()
    assert all(a["restarts"] == 0 for a in cluster.status()["agents"])
    cluster.run_ok("propose", "after")

    rewrite(cluster, with_counts(proposer=3, learner=2))
    result = cluster.run_ok("apply")
    assert result.stdout.splitlines()[0] == "agents: learner-1 added (learner)"
    assert endpoints(cluster)["learners"] == ["learner-0", "learner-1"]
    decided = cluster.status()["decided_up_to"]
    # It started empty and copied the decided log from learner-0.
    wait_until(lambda: cluster.learners_caught_up(decided), 20, "learner-1 to catch up")
    assert [e["value"] for e in cluster.decided()][:2] == ["before", "after"]
    assert first.returncode == 0


def test_apply_starts_new_agents_before_it_stops_old_ones(make_cluster):
    """The order `scale` keeps: a new learner runs (its first heartbeat)
    before the removed proposer is asked to stop, in one apply."""
    cluster = make_cluster(groups=ROLES)
    cluster.wait_healthy()
    rewrite(cluster, with_counts(proposer=1, learner=2))
    result = cluster.run_ok("apply")
    assert result.stdout.splitlines()[:2] == ["agents: learner-1 added (learner)",
                                              "agents: proposer-1 removed (proposer; its store "
                                              "is kept for when it comes back)"], result.stdout
    events = [(e["agent"], e["message"]) for e in cluster.request("events")["events"]]
    running = events.index(("learner-1", "running (first heartbeat)"))
    removed = next(i for i, (agent, message) in enumerate(events)
                   if agent == "proposer-1" and message.startswith("removed (apply"))
    assert running < removed, events[running - 3:]
    assert sorted(pids(cluster)) == ["acceptor-0", "acceptor-1", "acceptor-2", "learner-0",
                                     "learner-1", "proposer-0"]
    cluster.run_ok("propose", "after")


def test_removed_proposer_comes_back_by_sighup_above_its_old_round(make_cluster):
    cluster = make_cluster(groups=with_counts(proposer=3), metrics={"listen": "127.0.0.1:0"})
    old_round = lead(cluster, "proposer-2")
    assert stored_round(cluster, "proposer-2") >= old_round
    members = cluster.state_dir / "members.json"
    member_id = json.loads(members.read_text())["members"]["proposer-2"]["member_id"]
    incarnation = json.loads(cluster.run_ok("describe", "proposer-2", "-o", "json").stdout)[
        "incarnation"]

    rewrite(cluster, with_counts(proposer=2), metrics={"listen": "127.0.0.1:0"})
    result = cluster.run_ok("apply")
    assert result.stdout.startswith("agents: proposer-2 removed (proposer; its store is kept")
    assert "proposer-2" not in pids(cluster)
    assert endpoints(cluster)["proposers"] == ["proposer-0", "proposer-1"]
    assert 'agent="proposer-2"' not in cluster.run_ok("metrics").stdout
    # Nothing of it is deleted: its store and its member record wait for it.
    assert cluster.state_file("proposer-2").exists()
    assert json.loads(members.read_text())["members"]["proposer-2"]["member_id"] == member_id
    cluster.run_ok("propose", "two proposers")

    rewrite(cluster, with_counts(proposer=3), metrics={"listen": "127.0.0.1:0"})
    os.kill(supervisor_pid(cluster), signal.SIGHUP)
    wait_until(lambda: cluster.agent("proposer-2")["state"] == "running", 20,
               "SIGHUP to start proposer-2 again")
    assert "SIGHUP: applying" in supervisor_log(cluster)
    assert stored_round(cluster, "proposer-2") >= old_round  # it resumed from its store
    # The supervisor kept its record (the membership engine's retired agents):
    # its incarnations go on from the last, as after any restart.
    assert json.loads(cluster.run_ok("describe", "proposer-2", "-o", "json").stdout)[
        "incarnation"] == incarnation + 1
    assert lead(cluster, "proposer-2") > old_round
    assert DRIFT not in cluster.run("status").stderr
    cluster.run_ok("propose", "three again")


# ----------------------------------------------------------------- settings


def test_settings_live_and_by_rolling_restart_one_agent_at_a_time(make_cluster):
    cluster = make_cluster(groups=ROLES)
    before = pids(cluster)
    leader = cluster.leader()
    assert cluster.status()["metrics_url"] is None
    rewrite(cluster, restart={"policy": "never"}, health={"heartbeat_interval": "150ms"},
            metrics={"listen": "127.0.0.1:0"})
    result = cluster.run_ok("apply")
    assert "restart.policy: always -> never (live)" in result.stdout
    assert "metrics.enabled: false -> true (live)" in result.stdout
    with urllib.request.urlopen(cluster.status()["metrics_url"], timeout=10) as scrape:
        assert 'paxosctl_agent_up{agent="learner-0"' in scrape.read().decode()
    assert "health.heartbeat_interval: 200ms -> 150ms (rolling restart)" in result.stdout
    after = pids(cluster)
    assert all(after[name] != pid for name, pid in before.items()), (before, after)

    # One at a time: each agent runs again before the next one is restarted;
    # learners, then acceptors, then proposers, the leader last.
    log = supervisor_log(cluster).split("restart.policy: always -> never", 1)[1]
    order = re.findall(r"(\S+): restarting to apply new settings", log)
    assert order[0] == "learner-0" and order[1:4] == ["acceptor-0", "acceptor-1", "acceptor-2"]
    assert order[-1] == leader and sorted(order) == sorted(before)
    for name, following in zip(order, order[1:]):
        segment = log.split(f"{name}: restarting to apply new settings", 1)[1]
        segment = segment.split(f"{following}: restarting", 1)[0]
        assert f"{name}: running" in segment, f"{following} restarted before {name} ran again"
    cluster.run_ok("propose", "after the roll")

    # The new restart policy is in force: a killed agent stays stopped.
    cluster.run_ok("kill", "learner-0")
    wait_until(lambda: cluster.agent("learner-0")["state"] == "stopped", 10,
               "learner-0 to stay stopped under policy never")


def test_refused_changes_change_nothing(make_cluster):
    cluster = make_cluster(groups=ROLES)
    original = cluster.manifest.read_text()
    before = cluster.status()

    cases = [
        # The acceptors change through the membership-change protocol, alone.
        (with_counts(acceptor=4), {}, "the acceptors and restart.policy change together"),
        (ROLES, {"log": {"retain": 100}}, "log.retain: cannot change from 0 to 100"),
    ]
    for groups, sections, refusal in cases:
        # Each with a change that alone would apply: all or nothing.
        rewrite(cluster, groups, restart={"policy": "never"}, **sections)
        result = cluster.run("apply")
        assert result.returncode == 2, describe(result)
        lines = result.stderr.splitlines()
        assert len(lines) == 2 and lines[0].startswith(f"refused: cluster.toml: {refusal}"), lines
        assert lines[1] == "error: 1 change(s) refused; nothing was changed"
        after = cluster.status()
        assert after["manifest"] == before["manifest"]
        assert pids(cluster) == {a["name"]: a["pid"] for a in before["agents"]}
        assert DRIFT in cluster.run("status").stderr

    # A new state_dir is another cluster's folder to the CLI; SIGHUP refuses it.
    cluster.manifest.write_text(original.replace('name = "test"',
                                                 'name = "test"\nstate_dir = "elsewhere"'))
    result = cluster.run("apply")
    assert result.returncode == 1 and f"error: no cluster running for {cluster.manifest}" in \
        result.stderr and "cluster.state_dir, that cannot change while it runs" in result.stderr
    os.kill(supervisor_pid(cluster), signal.SIGHUP)
    wait_until(lambda: "SIGHUP: cluster.toml: cluster.state_dir: cannot change from" in
               supervisor_log(cluster), 10, "SIGHUP to refuse the state_dir")
    with Client(cluster.state_dir / "control.sock") as client:  # the file points elsewhere
        assert client.request("status")["manifest"] == before["manifest"]
    assert not (cluster.dir / "elsewhere").exists()

    cluster.manifest.write_text(original)
    result = cluster.run_ok("apply")
    assert result.stdout == f"no change: cluster test already runs {cluster.manifest}\n"
    assert DRIFT not in cluster.run("status").stderr


def test_apply_on_a_stopped_cluster_says_it_is_not_running(make_cluster):
    cluster = make_cluster(start=False)
    result = cluster.run("apply")
    assert result.returncode == 1, describe(result)
    assert result.stderr.startswith(
        f"error: no cluster running for {cluster.manifest}: apply changes a running cluster\n")


# ------------------------------------------------------------- the plan, pure


def test_every_manifest_setting_is_classified():
    """A new key in a settings section must say how it changes live."""
    manifest = load_manifest_text(manifest_text("roles"))
    keys = {f"{section}.{f.name}" for section in SECTIONS
            for f in dataclasses.fields(getattr(manifest, section))}
    keys |= {"cluster.name", "cluster.id", "cluster.state_dir"}
    assert keys == set(SETTINGS)
    assert set(manifest_module.SECTIONS) == {"cluster", "agents", *SECTIONS}


@pytest.mark.parametrize(("sections", "groups", "restart", "refused"), [
    ({"health": {"heartbeat_timeout": "5s"}}, None, set(), 0),
    ({"paxos": {"election_timeout": "1s"}}, None, {"proposer-0", "proposer-1"}, 0),
    ({"paxos": {"gap_timeout": "200ms"}}, None, {"learner-0"}, 0),
    ({"paxos": {"tick": "20ms"}}, with_counts(proposer=3), {
        "proposer-0", "proposer-1", "acceptor-0", "acceptor-1", "acceptor-2", "learner-0"}, 0),
    ({"log": {"retain": 10}}, None, set(), 1),
    ({"paxos": {"alpha": 128}}, None, set(), 1),
    ({}, with_counts(acceptor=5), set(), 0),
    ({"restart": {"policy": "never"}}, with_counts(acceptor=5), set(), 1),
    ({}, {**ROLES, "backup": ("proposer", 1)}, set(), 1),
    ({"transport": {"kind": "tls"}}, None, set(), 1),
], ids=["health-live", "election-restarts-proposers", "gap-restarts-learners",
        "tick-restarts-all-but-the-new-agent", "retain-refused", "alpha-refused",
        "acceptors-reconfigure",
        "acceptors-with-others-refused", "role-refused", "transport-refused"])
def test_plan_classifies_changes(tmp_path, sections, groups, restart, refused):
    running_groups = {**ROLES, "backup": ("learner", 1)} if "backup" in (groups or {}) else ROLES
    running = load_manifest_text(manifest_text("roles", groups=running_groups), tmp_path / "a.toml")
    wanted = load_manifest_text(manifest_text("roles", groups=groups or ROLES, **sections),
                                tmp_path / "b.toml")
    found = plan(running, wanted)
    assert set(found.restart) == restart
    assert len(found.refused) == refused
    assert found.reconfigure == (running.acceptors != wanted.acceptors)
    assert not found.empty


def test_a_new_cluster_id_is_refused_while_the_cluster_runs(tmp_path):
    """`certs init` gives the manifest an id: the running cluster keeps its own
    until it is brought down and up again."""
    running = load_manifest_text(manifest_text("roles"), tmp_path / "a.toml")
    text = manifest_text("roles").replace("[cluster]\n", '[cluster]\nid = "abcdef0123456789"\n', 1)
    wanted = load_manifest_text(text, tmp_path / "b.toml")
    found = plan(running, wanted)
    assert [line.split(": ", 2)[1] for line in found.refused] == ["cluster.id"]
    assert "cannot change from (none) to abcdef0123456789 while the cluster runs" in found.refused[0]


@pytest.mark.parametrize(("old", "new", "during"), [
    ({"heartbeat_interval": "1s", "heartbeat_timeout": "3s"},
     {"heartbeat_interval": "100ms", "heartbeat_timeout": "500ms"}, 3.0),
    ({"heartbeat_timeout": "3s"}, {"heartbeat_timeout": "1s"}, 1.0),
], ids=["interval-rolls-longer-timeout-meanwhile", "timeout-alone-at-once"])
def test_health_timeout_during_a_rollout(tmp_path, old, new, during):
    running = load_manifest_text(manifest_text("roles", health=old), tmp_path / "a.toml")
    wanted = load_manifest_text(manifest_text("roles", health=new), tmp_path / "b.toml")
    assert interim_manifest(plan(running, wanted)).health.heartbeat_timeout == during


def load_manifest_text(text: str, path: Path | None = None):
    path = path or Path(f"/tmp/px-apply-{os.getpid()}.toml")
    path.write_text(text)
    try:
        return load_manifest(path)
    finally:
        if path.name.startswith("px-apply-"):
            path.unlink()


# ----------------------------------------------- live membership in the core


def test_a_removed_learner_no_longer_holds_compaction_back():
    """Acceptors compact below what every configured learner stored."""
    old = Membership(("p0",), ("a0",), ("l0", "l1"))
    node = Node("a0", old)
    node.step(Stored(src="l0", dst="a0", upto=9))
    assert node.acceptor.compacted == 0  # l1 has not reported: it holds the point back
    node.step(Stored(src="l1", dst="a0", upto=3))
    assert node.acceptor.compacted == 4
    node.set_membership(Membership(("p0",), ("a0",), ("l0",)))
    node.step(Stored(src="l0", dst="a0", upto=9))
    assert node.acceptor.compacted == 10
    # An added learner holds the point where it is until it reports; it never moves down.
    node.set_membership(Membership(("p0", "p1"), ("a0",), ("l0", "l2")))
    node.step(Stored(src="l0", dst="a0", upto=20))
    assert node.acceptor.compacted == 10
    node.step(Stored(src="l2", dst="a0", upto=15))
    assert node.acceptor.compacted == 16


# Other acceptors are no longer refused: quorums come from the configuration
# history (issue 14; see tests/core/test_core_configs.py).
@pytest.mark.parametrize("membership", [
    Membership(("p0", "a0"), ("a0",), ("l0",)),
], ids=["own-roles-changed"])
def test_set_membership_refuses_what_cannot_change_live(membership):
    node = Node("a0", Membership(("p0",), ("a0",), ("l0",)))
    with pytest.raises(ValueError):
        node.set_membership(membership)
