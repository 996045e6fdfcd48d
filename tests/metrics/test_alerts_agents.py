"""examples/alerts.yml and examples/grafana-dashboard.json on per-agent scrapes.

Seven real `paxosctl agent NAME` processes (no supervisor), each its own
target of a real Prometheus configured by examples/prometheus.yml's job
"paxosctl-agents" (target labels cluster, agent, role), with alerts.yml's
rules (every `for:` 0s):
- every rule evaluates without error, every dashboard query returns data
  (but the supervisor's own process and chaos state), every metric name in
  them is in an agent's scrape or the supervisor's;
- a healthy cluster fires nothing; an acceptor killed fires the agent-down
  and majority-at-risk alerts, and only those.
"""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path

import pytest
from clusters import manifest_text, short_tmpdir, wait_until
from examples_files import (
    alert_exprs, alert_names, dashboard_targets, grafana_to_promql, prometheus_config,
    rules_with_no_waiting, template_queries,
)
from prom import Prometheus, require
from promql import metric_names, template_metric_names

# The standalone agents' harness lives with their own tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "standalone"))
from harness import Agents  # noqa: E402

ROLES = {"proposer-0": "proposer", "proposer-1": "proposer", "acceptor-0": "acceptor",
         "acceptor-1": "acceptor", "acceptor-2": "acceptor", "learner-0": "learner",
         "learner-1": "learner"}
#: Only the supervisor exports these (tests/metrics/test_alerts.py scrapes it).
SUPERVISOR_ONLY = {
    "paxosctl_agent_up", "paxosctl_agent_stopped", "paxosctl_agent_restarts_total",
    "paxosctl_agent_cpu_seconds_total", "paxosctl_agent_resident_memory_bytes",
    "paxosctl_build_info", "paxos_has_leader", "paxos_leader_changes_total",
    "paxos_leader_change_timestamp_seconds", "paxos_decided_commands_total",
    "paxos_decided_slots_total", "paxos_decided_slot", "paxos_proposals_expired_total",
    "paxos_acceptors_up", "paxosctl_membership_change_in_progress", "paxosctl_chaos_active",
}
#: Dashboard targets with nothing to show on per-agent scrapes, and why.
AGENTS_EMPTY = {
    ("CPU (cores)", "B"), ("Resident memory", "B"),  # the supervisor process: none runs
    ("Chaos in force", "A"),  # chaos settings are the supervisor's; agents count what they did
}


@pytest.fixture(scope="module")
def agents():
    require("prometheus")
    folder = short_tmpdir()
    group = Agents(folder, manifest_text("roles", "peragent", state_dir="st",
                                         health={"heartbeat_interval": "100ms"}))
    server = None
    try:
        for name in ROLES:
            group.start(name)
        result = group.run("propose", "before the scrape", "--timeout", "10")
        assert result.returncode == 0, result
        config = prometheus_config("paxosctl-agents", [
            (f"127.0.0.1:{agent.port}", {"cluster": "peragent", "agent": name, "role": ROLES[name]})
            for name, agent in group.running.items()])
        prom = folder / "prom"
        prom.mkdir()
        (prom / "alerts.yml").write_text(rules_with_no_waiting())
        server = Prometheus(config, prom)
        wait_until(lambda: server.query('count(up{job="paxosctl-agents"} == 1)') == len(ROLES),
                   30, "every agent scraped")
        yield group, server
    finally:
        if server is not None:
            server.stop()
        group.close()
        shutil.rmtree(folder, ignore_errors=True)


def firing(server: Prometheus) -> set[tuple[str, str]]:
    return {(a["labels"]["alertname"], a["labels"].get("agent", ""))
            for a in server.api("alerts")["alerts"] if a["state"] == "firing"}


def evaluated_after_scrapes(server: Prometheus, scrapes: int) -> bool:
    """Every rule evaluated, over at least `scrapes` scrapes of every target."""
    fewest = server.query('min(count_over_time(up{job="paxosctl-agents"}[1m]))') or 0
    rules = [r for g in server.api("rules")["groups"] for r in g["rules"]]
    return fewest >= scrapes and len(rules) == len(alert_names()) and all(
        r["lastEvaluation"] != "0001-01-01T00:00:00Z" for r in rules)


def test_rules_evaluate_and_dashboard_queries_return_data(agents):
    group, server = agents
    for i in range(20):
        assert group.run("propose", f"load-{i}", "--timeout", "10").returncode == 0
    wait_until(lambda: evaluated_after_scrapes(server, 3), 30, "three scrapes and the rules")
    rules = [r for g in server.api("rules")["groups"] for r in g["rules"]]
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad, bad
    empty = {(title, ref) for title, ref, expr in dashboard_targets()
             if not server.api("query", query=grafana_to_promql(expr))["result"]}
    assert empty == AGENTS_EMPTY, empty
    # Every name the files use is exported by an agent, or by the supervisor alone.
    scraped = {s["__name__"] for s in server.api("series", **{"match[]": '{job="paxosctl-agents"}'})}
    used = set().union(*map(metric_names, [*alert_exprs(), *(e for _, _, e in dashboard_targets())]),
                       *map(template_metric_names, template_queries()))
    assert used - scraped - SUPERVISOR_ONLY == set(), sorted(used - scraped - SUPERVISOR_ONLY)
    # The numbers mean what the supervisor's do: a leader, 3 acceptors up of quorum 2.
    assert server.query("max by (cluster) (paxos_proposer_leading)") == 1.0
    assert server.query("sum by (cluster) (paxos_acceptor_up)") == 3.0
    assert server.query("max by (cluster) (paxos_acceptor_quorum)") == 2.0
    # The learners' counts reach Prometheus with their next heartbeat and scrape.
    wait_until(lambda: (server.query("max by (cluster) (paxos_learner_applied_commands_total)")
                        or 0) >= 21, 15, "the 21 commands counted in Prometheus")


def test_killing_an_acceptor_fires_agent_down_and_majority_at_risk(agents):
    """Runs last in this module: acceptor-2 stays down."""
    group, server = agents
    wait_until(lambda: evaluated_after_scrapes(server, 3), 30, "three scrapes and the rules")
    assert firing(server) == set(), "a healthy cluster fires nothing"
    group.running["acceptor-2"].stop(signal.SIGKILL)
    want = {("PaxosctlAgentDown", "acceptor-2"), ("PaxosAcceptorMajorityAtRisk", "")}
    wait_until(lambda: want <= firing(server), 30, f"{want} to fire")
    assert firing(server) == want, firing(server)
    assert group.run("propose", "still decided", "--timeout", "10").returncode == 0
