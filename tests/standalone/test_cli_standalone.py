"""The CLI against agents no supervisor runs (`paxosctl agent NAME`), over
Unix sockets: `status`, `describe`, `events`, `logs` and `metrics` ask the
agents themselves (WELCOME, INFO frames, /metrics), learn members the
manifest lacks from the agents, and say which agent is silent (exit 3)."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Iterator

import pytest

from clusters import wait_until
from harness import REPLICAS, Agents, warm_replicas

from paxos_agents.runtime.records import EVENTS, LOG_LINES
from paxosctl.client.admin import AdminRefused, AdminTarget, send_admin
from paxosctl.client.probe import survey
from paxosctl.endpoints import read_endpoints



@pytest.fixture
def agents(tmp_short: Path) -> Iterator[Agents]:
    yield from warm_replicas(tmp_short, "cli")


def _endpoints(agents: Agents):
    return read_endpoints(agents.folder / "st" / "run", "cluster.toml")


def _json(agents: Agents, *args: str):
    result = agents.run(*args, "-o", "json")
    return result, json.loads(result.stdout) if result.stdout else None


def test_status_asks_every_agent_and_names_the_silent_one_with_exit_3(agents):
    def agreed():
        """The status once every agent knows the same leader (a follower hears
        of it at the leader's next heartbeat: not always before the warm-up
        propose returns)."""
        result, doc = _json(agents, "status")
        assert result.returncode == 0, result
        leaders = {row["leader"] for row in doc["agents"]}
        return doc if len(leaders) == 1 and None not in leaders else None

    doc = wait_until(agreed, 10, "every agent knowing the leader")
    rows = {row["name"]: row for row in doc["agents"]}
    assert sorted(rows) == list(REPLICAS) and all(r["answered"] for r in rows.values())
    leader = doc["leader"]
    assert leader in REPLICAS
    # Every agent knows the leader, its incarnation (its store's start counter),
    # a ballot, and slots decided and applied (lag: their difference).
    for row in rows.values():
        assert row["leader"] == leader and row["incarnation"] == 1
        assert row["ballot"][0] >= 1 and row["applied"] >= 0
        assert row["lag"] == row["decided"] - row["applied"] >= 0
    agents.running["replica-1"].stop(signal.SIGKILL)
    result = agents.run("status")
    assert result.returncode == 3, result
    line = next(l for l in result.stdout.splitlines() if l.startswith("replica-1 "))
    assert "silent" in line and "not listening" in line, line


def test_describe_is_the_agents_own_view_and_refuses_an_unknown_name(agents):
    result, view = _json(agents, "describe", "replica-2")
    assert result.returncode == 0, result
    assert view["kind"] == "Agent"
    view = view["spec"] if "spec" in view else view
    one = agents.running["replica-2"]
    assert view["pid"] == one.process.pid and view["name"] == "replica-2"
    assert view["incarnation"] == 1 and 0 < view["uptime_s"] < 120
    assert view["members"] == list(REPLICAS) and view["roles"] == ["acceptor", "learner", "proposer"]
    assert view["files"]["state"].endswith("st/state/replica-2.db")
    text = agents.run("describe", "replica-2")
    assert text.returncode == 0 and f"PID:             {one.process.pid}" in text.stdout, text
    bad = agents.run("describe", "replica-9")
    assert bad.returncode == 2, bad
    assert bad.stderr == "error: no agent 'replica-9'; agents: replica-0, replica-1, replica-2\n"
    agents.running["replica-2"].stop()
    silent = agents.run("describe", "replica-2")
    assert silent.returncode == 3 and silent.stderr.startswith("error: replica-2 did not answer: ")


def test_events_are_the_agents_own_merged_by_time_with_admin_frames_and_paging(agents):
    target = AdminTarget.of(_endpoints(agents), "replica-0")
    assert send_admin(target, {"op": "chaos", "settings": {"drop": 0.0}})["ok"] is True
    with pytest.raises(AdminRefused):
        send_admin(target, {"op": "reconfig", "acceptors": "replica-0"})
    wanted = {(name, kind) for name in REPLICAS
              for kind in ("started", "leader_seen", "peer_welcomed", "config_in_force")}

    def events_so_far() -> list | None:
        """Every agent's events once each has logged all of `wanted` (a
        configuration in force is noticed at a heartbeat: not at once)."""
        result, doc = _json(agents, "events")
        assert result.returncode == 0, result
        events = doc["events"] if "events" in doc else doc["spec"]["events"]
        return events if wanted <= {(e["agent"], e["kind"]) for e in events} else None

    events = wait_until(events_so_far, 10, f"the events {sorted(wanted)}")
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    mine = [e for e in events if e["agent"] == "replica-0"]
    assert [e["kind"] for e in mine if e["kind"].startswith("admin_")] == ["admin_taken",
                                                                           "admin_refused"]
    # Paging: after the last record, nothing new; the agent's own numbers.
    last = max(e["seq"] for e in mine)
    again = survey(_endpoints(agents), ("replica-0",), {"op": "events", "since": last}, learn=False)
    assert again[0].reply["items"] == [] and again[0].reply["last"] == last
    table = agents.run("events", "replica-1")
    assert table.returncode == 0, table
    header, *rows = table.stdout.splitlines()
    assert header.split()[:4] == ["TIME", "TYPE", "AGENT", "KIND"]
    assert rows and {row.split()[2] for row in rows} == {"replica-1"}
    bad = survey(_endpoints(agents), ("replica-0",), {"op": "events", "since": -1}, learn=False)
    assert bad[0].error.startswith("refused the question (bad_request): malformed b'I' frame: "
                                   "ValueError: since: expected a record number from 0, got -1")


def test_events_follow_prints_what_happens_after_it_started(agents):
    import subprocess

    from clusters import PAXOSCTL

    with open(agents.folder / "follow.out", "w") as out:
        follower = subprocess.Popen([PAXOSCTL, "events", "--follow"], cwd=agents.folder,
                                    stdout=out, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: "started" in (agents.folder / "follow.out").read_text(), 10,
                   "the first page")
        send_admin(AdminTarget.of(_endpoints(agents), "replica-2"),
                   {"op": "chaos", "settings": {"drop": 0.0}})
        wait_until(lambda: "admin_taken" in (agents.folder / "follow.out").read_text(), 10,
                   "the admin frame's event, followed")
    finally:
        follower.send_signal(signal.SIGINT)
        assert follower.wait(10) == 130


def test_logs_are_the_agents_recent_lines_and_say_where_the_full_log_is(agents):
    result = agents.run("logs", "replica-0", "--tail", "3")
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    stdout = agents.running["replica-0"].stdout().splitlines()
    assert all(line in stdout for line in lines), (lines, stdout[-5:])
    assert result.stderr == ("full logs: replica-0: the standard output of its "
                             "`paxosctl agent replica-0`\n")
    every = agents.run("logs")
    assert every.returncode == 0
    assert {line.split(" | ")[0].strip() for line in every.stdout.splitlines()} == set(REPLICAS)


def test_metrics_scrapes_every_agent_and_names_the_one_that_did_not_answer(agents):
    result = agents.run("metrics")
    assert result.returncode == 0, result
    for name in REPLICAS:
        assert f"# paxosctl: {name} (http://127.0.0.1:{agents.running[name].port}/metrics)" \
            in result.stdout
        assert f'paxos_decisions_total{{agent="{name}"' in result.stdout or \
            f'agent="{name}"' in result.stdout
    agents.running["replica-0"].stop()
    result = agents.run("metrics")
    assert result.returncode == 3, result
    assert "# paxosctl: replica-0 (http://127.0.0.1:" in result.stdout
    assert "did not answer" in result.stdout.split("# paxosctl: replica-0")[1].splitlines()[0]


def test_members_the_manifest_lacks_are_learned_from_the_agents(agents):
    members = {"op": "members", "version": 1, "proposers": list(REPLICAS),
               "acceptors": list(REPLICAS), "learners": [*REPLICAS, "replica-3"]}
    for name in REPLICAS:
        send_admin(AdminTarget.of(_endpoints(agents), name), members)
    result, doc = _json(agents, "status")
    assert result.returncode == 3, result  # replica-3 runs nowhere
    rows = {row["name"]: row for row in doc["agents"]}
    assert list(rows) == [*REPLICAS, "replica-3"]
    assert rows["replica-3"]["learned"] and not rows["replica-3"]["answered"]
    described = agents.run("describe", "replica-3")
    assert described.returncode == 3, described  # known now, but silent
    events = agents.run("events")
    assert events.returncode == 3 and "replica-3 did not answer" in events.stderr


def test_the_rings_are_bounded_as_documented():
    from paxos_agents.runtime.records import Records
    import logging

    records = Records("x", log_lines=5, events=3)
    logger = logging.getLogger("test.rings")
    logger.addHandler(records.logs)
    logger.addHandler(records.events)
    logger.setLevel(logging.INFO)
    try:
        for i in range(10):
            logger.info("line %d", i, extra={"paxos_event": "tick"} if i % 2 else None)
    finally:
        logger.removeHandler(records.logs)
        logger.removeHandler(records.events)
    page = records.logs.since(0)
    assert [i["seq"] for i in page.items] == [6, 7, 8, 9, 10] and page.missed
    assert [e["message"] for e in records.events.since(0).items] == ["line 5", "line 7", "line 9"]
    assert records.events.since(4).items[0]["message"] == "line 9"
    assert not records.logs.since(7).missed
    assert (LOG_LINES, EVENTS) == (2000, 500)  # README "On several hosts" says so
