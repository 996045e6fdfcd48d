"""The heartbeat report both ends import, held against real agents.

`AgentReport` makes its own fields typed; what stays a string key is the
node's `stats`, named by the core. Every stat name the supervisor reads
(the metrics' counters and gauges, the columns of `status`) must be in
some real agent's report, or a rename would silently empty a metric.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import pytest
from clusters import manifest_text
from in_process import Driven

from paxos_agents.core import NOOP, Accept, Accepted, Ballot, Promise
from paxos_agents.core.committime import COMMIT_BUCKETS
from paxos_agents.core.configs import History
from paxos_agents.runtime import frames
from paxos_agents.runtime.report import AgentReport, PersistHistogram, ReportError
from paxosctl.supervisor.fleet import STALL_SECONDS, Fleet, membership_of
from paxosctl.supervisor.roster import Roster
from paxosctl.supervisor.loop import Loop
from paxosctl.manifest import load_manifest
from paxosctl.supervisor.members import MemberRegistry
from paxosctl.supervisor.metrics import COUNTER_STATS, GAUGES
from paxosctl.supervisor.ops import STATUS_STATS
from paxosctl.supervisor.restart import AgentState


@pytest.fixture
def reports(tmp_path) -> dict[str, AgentReport]:
    """One report per role, from agents that did some work."""
    b1 = Ballot(1, "p1")
    p1, a1, l1 = (Driven(name, tmp_path) for name in ("p1", "a1", "l1"))
    try:
        p1.tick(25)  # runs for leader
        ballot = p1.agent.node.proposer.ballot
        p1.step(*(Promise(src=a, dst="p1", ballot=ballot, first_slot=0, votes=())
                  for a in ("a1", "a2")))
        a1.step(Accept(src="p1", dst="a1", ballot=b1, slot=0, value=NOOP))
        l1.step(*(Accepted(src=a, dst="l1", ballot=b1, slot=0, value=NOOP) for a in ("a1", "a2")))
        yield {"proposer": p1.report(), "acceptor": a1.report(), "learner": l1.report()}
    finally:
        for driven in (p1, a1, l1):
            driven.close()


def test_every_stat_the_supervisor_reads_is_in_a_real_report(reports):
    reported = set().union(*(report.stats for report in reports.values()))
    read = {*COUNTER_STATS, *GAUGES, *STATUS_STATS}
    assert read - reported == set()


def test_each_gauge_comes_from_the_role_the_metrics_say(reports):
    for stat, (_, _, role) in GAUGES.items():
        assert stat in reports[role].stats, (stat, role)


def test_typed_fields_carry_what_the_agents_did(reports):
    leader, acceptor, learner = reports["proposer"], reports["acceptor"], reports["learner"]
    assert leader.leader and leader.ballot is not None and leader.ballot[1] == "p1"
    assert leader.decided_up_to is None  # no learner in p1
    assert acceptor.received.get("Accept") == 1 and acceptor.persist.count >= 1
    assert learner.decided_up_to == 0
    assert all(report.state_bytes > 0 for report in reports.values())


def test_a_report_survives_its_json(reports):
    for report in reports.values():
        assert AgentReport.from_json(report.to_json()) == report


GOOD = AgentReport(name="a1", incarnation=1, leader=False, ballot=None, leader_hint=None,
                   decided_up_to=None, stats={"compacted": 0}, received={}, sent={},
                   malformed=0, dropped={}, chaos={},
                   persist=PersistHistogram(count=1, sum=0.01, buckets=(1, 0)),
                   state_bytes=4096).to_json()


#: A learner's configuration part, with a good history (epoch 0, a1..a3).
_CONFIG = {"epoch": 0, "acceptors": ["a1", "a2", "a3"], "in_force_epoch": 0,
           "in_force": ["a1", "a2", "a3"], "pending_slot": -1,
           "history": [1, 64, 0, [[0, 0, ["a1", "a2", "a3"]]]]}


def _with(**changes):
    obj = {**GOOD, **changes}
    return {k: v for k, v in obj.items() if v is not ...}


@pytest.mark.parametrize("obj", [
    [1, 2],
    _with(name=...),
    _with(incarnation="1"),
    _with(leader=1),
    _with(ballot=[1]),
    _with(ballot=["1", "p1"]),
    _with(decided_up_to=True),
    _with(stats={"compacted": "0"}),
    _with(received={"Accept": 1.5}),
    _with(malformed=None),
    _with(persist={"count": 1, "sum": 0.0}),
    _with(persist={"count": 1, "sum": 0.0, "buckets": [1, "x"]}),
    _with(state_bytes=...),
    _with(commit=[1, 0.5, [1]]),
    _with(commit={"count": 1, "sum": "0.5", "buckets": [1]}),
    _with(config={**_CONFIG, "history": [1, 64, 0]}),
    _with(config={**_CONFIG, "history": [1, 64, 0, [[0, 0, [7]]]]}),
], ids=["not-an-object", "no-name", "incarnation-text", "leader-number", "short-ballot",
        "ballot-round-text", "decided-bool", "stat-text", "count-float", "malformed-null",
        "persist-no-buckets", "persist-bucket-text", "no-state-bytes",
         "commit-not-an-object", "commit-sum-text",
         "config-history-short", "config-history-bad-name"])
def test_a_malformed_report_is_refused(obj):
    with pytest.raises(ReportError):
        AgentReport.from_json(obj)


def test_a_report_without_commit_times_is_an_earlier_agents_and_reads_as_none_timed():
    """An agent of an earlier version (a rolling upgrade) sends no `commit`."""
    assert "commit" in GOOD
    report = AgentReport.from_json(_with(commit=...))
    assert report.commit.count == 0 and report.commit.buckets == ()


def test_the_leaders_report_carries_its_commit_times(reports):
    leader = reports["proposer"]
    assert leader.commit.buckets and len(leader.commit.buckets) == len(COMMIT_BUCKETS) + 1
    assert reports["acceptor"].commit.count == 0 and reports["acceptor"].commit.buckets == ()


def test_the_configuration_history_is_parsed_where_the_report_is_read():
    report = AgentReport.from_json(_with(config=_CONFIG))
    assert report.config is not None and isinstance(report.config.history, History)
    assert report.config.history.latest.acceptors == ("a1", "a2", "a3")
    assert report.to_json()["config"] == _CONFIG  # the same JSON on the wire


# ------------------------------------------------- the supervisor's side


@pytest.fixture
def fleet(tmp_path) -> Fleet:
    (tmp_path / "cluster.toml").write_text(manifest_text(
        "roles", health={"heartbeat_timeout": "1s"}))
    manifest = load_manifest(tmp_path / "cluster.toml")
    state = {"state": tmp_path / "state", "logs": tmp_path / "logs", "run": tmp_path / "run"}
    return Fleet(manifest, MemberRegistry(tmp_path / "members.json", cluster_id="c"), Loop(), state,
                 Roster(membership_of(manifest), None))


def _started(fleet: Fleet, now: float):
    """An agent as if spawned at `now` (no process: signals to it find nobody)."""
    agent = next(iter(fleet.agents.values()))
    agent.incarnation = 1
    agent.lifecycle.spawned(now)
    agent.last_beat = now
    return agent


def test_the_fleet_ignores_a_malformed_report_and_logs_it_once(fleet, caplog):
    agent = _started(fleet, time.monotonic())
    good = dataclasses.replace(AgentReport.from_json(GOOD), name=agent.name)
    caplog.set_level(logging.INFO, logger="paxosctl.supervisor")
    for body in (b"{not json", b'"\xff"', frames.json_frame(frames.HEARTBEAT, {"name": 1})[1:],
                 frames.json_frame(frames.HEARTBEAT, {**good.to_json(), "name": "nobody"})[1:]):
        fleet._on_frame(agent, frames.HEARTBEAT + body)
    assert agent.report is None and agent.state is AgentState.STARTING
    malformed = [r for r in caplog.records if "malformed heartbeat report" in r.message]
    assert len(malformed) == 1, [r.message for r in caplog.records]

    # The report's incarnation is the agent's own (its store's counter), not
    # the supervisor's count of its processes: any number is taken.
    good = dataclasses.replace(good, incarnation=agent.incarnation + 41)
    fleet._on_frame(agent, frames.json_frame(frames.HEARTBEAT, good.to_json()))
    assert agent.report == good and agent.state is AgentState.RUNNING
    assert f"{agent.name}: running" in caplog.text


def test_after_the_loop_stalled_nobody_is_killed_for_the_silence(fleet, caplog):
    now = time.monotonic()
    agent = _started(fleet, now)
    agent.lifecycle.became_ready(now)
    fleet.tick(now)
    caplog.set_level(logging.WARNING, logger="paxosctl.supervisor")
    later = now + STALL_SECONDS + 5.0  # past heartbeat_timeout too: the loop did not run
    fleet.tick(later)
    assert agent.health_failures == 0
    assert "the supervisor's loop stalled for" in caplog.text
    for step in range(1, 5):  # turns on time, and still no heartbeat: now it is the agent's
        fleet.tick(later + step * 0.3)
    assert agent.health_failures == 1
    assert f"{agent.name}: no heartbeat for" in caplog.text
