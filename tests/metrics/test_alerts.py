"""examples/alerts.yml and examples/grafana-dashboard.json against the real thing.

- `promtool check rules` and `promtool test rules` (tests/metrics/alerts_test.yml on
  the supervisor's series, alerts_agents_test.yml on per-agent targets' series:
  each alert fires on the series that should fire it, and not on those just short);
- the commented Kubernetes job of examples/prometheus.yml passes `promtool check config`;
- every dashboard query returns data on the supervisor's scrape (per-agent
  scrapes: tests/metrics/test_alerts_agents.py);
- a real Prometheus, configured by examples/prometheus.yml pointed at a live
  cluster, loads the rules and evaluates every one without error;
- every dashboard and alert expression runs in that Prometheus without error,
  and every metric name in them is in a live scrape of the cluster;
- killing an acceptor (restart policy "never") makes the agent-down and
  majority-at-risk alerts fire, and only those.

The alert-firing test uses a copy of alerts.yml with every `for:` at 0s: the
rules are the same, only the waiting is not.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
from clusters import ClusterFactory, short_tmpdir, wait_until
from prom import Prometheus, require
from examples_files import (
    ALERTS, DASHBOARD, alert_exprs, alert_names, dashboard_exprs, dashboard_targets,
    grafana_to_promql, kubernetes_job, prometheus_config, rules_with_no_waiting,
    template_queries,
)
from promql import metric_names, template_metric_names

#: What Prometheus makes itself for every target (not in any /metrics).
SYNTHETIC = {"up"}
#: What only agents run on their own export (paxosctl/standalone/cluster_view.py):
#: the supervisor exports the cluster-wide series these add up to.
PER_AGENT_ONLY = {"paxos_proposer_leading", "paxos_proposer_leading_since_timestamp_seconds",
                  "paxos_proposer_elections_won_total", "paxos_learner_applied_commands_total",
                  "paxos_learner_proposals_expired_total", "paxos_acceptor_up"}


# ------------------------------------------------------------------ promtool


def test_promtool_checks_the_rules():
    check = subprocess.run([require("promtool"), "check", "rules", str(ALERTS)],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in check.stdout, check.stdout


def promtool_cases(tests: Path) -> tuple[set[str], set[str]]:
    """(alerts some case expects firing, alerts some case expects silent) in `tests`."""
    cases = re.findall(r"alertname: (\S+)\n\s+exp_alerts:( \[\])?", tests.read_text())
    return {name for name, empty in cases if not empty}, {name for name, empty in cases if empty}


@pytest.mark.parametrize(("tests", "cannot_fire"), [
    ("alerts_test.yml", set()),
    # No supervisor runs when every agent is its own target.
    ("alerts_agents_test.yml", {"PaxosctlSupervisorDown"}),
], ids=["supervisor", "per-agent"])
def test_every_alert_fires_and_stays_silent_in_promtools_unit_tests(tests, cannot_fire):
    path = Path(__file__).with_name(tests)
    run = subprocess.run([require("promtool"), "test", "rules", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    fires, silent = promtool_cases(path)
    assert fires == set(alert_names()) - cannot_fire, set(alert_names()) ^ fires
    assert silent == set(alert_names()), set(alert_names()) ^ silent


def test_the_commented_kubernetes_job_is_a_valid_prometheus_config(tmp_path):
    (tmp_path / "alerts.yml").write_text(ALERTS.read_text())
    # Debian's Prometheus is built without Kubernetes discovery: a static target
    # carrying the meta labels a pod would have stands for it (the relabelling
    # runs on those as on discovered ones).
    pod = ('static_configs:\n      - targets: ["10.0.0.7:7100"]\n        labels:\n'
           '          __meta_kubernetes_pod_ip: "10.0.0.7"\n')
    config, n = re.subn(r"kubernetes_sd_configs:\n\s+- role: pod\n", pod, kubernetes_job())
    assert n == 1, "the commented job discovers pods (kubernetes_sd_configs, role: pod)"
    (tmp_path / "prometheus.yml").write_text(config)
    check = subprocess.run([require("promtool"), "check", "config",
                            str(tmp_path / "prometheus.yml")],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    # It keeps the pods' annotation convention and names the cluster and the agent.
    for wanted in ("__meta_kubernetes_pod_annotation_prometheus_io_scrape",
                   "__meta_kubernetes_pod_annotation_prometheus_io_port",
                   "__meta_kubernetes_pod_annotation_prometheus_io_path",
                   "target_label: cluster", "target_label: agent", "honor_labels: true"):
        assert wanted in kubernetes_job().split("paxosctl-pods", 1)[1], wanted


def test_every_rule_has_for_severity_and_annotations():
    text = ALERTS.read_text()
    rules = re.split(r"^\s+- alert: ", text, flags=re.MULTILINE)[1:]
    assert len(rules) == len(alert_names()) >= 9
    for rule in rules:
        name = rule.split("\n", 1)[0]
        assert re.search(r"^\s+for: \d+[smh]$", rule, re.MULTILINE), name
        assert re.search(r"^\s+severity: (critical|warning)$", rule, re.MULTILINE), name
        assert re.search(r"^\s+summary: ", rule, re.MULTILINE), name
        assert re.search(r"^\s+description: ", rule, re.MULTILINE), name


def test_the_dashboard_is_a_grafana_dashboard():
    board = json.loads(DASHBOARD.read_text())
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36
    assert board["title"] and board["uid"]
    ids = []
    for panel in board["panels"]:
        ids.append(panel["id"])
        assert {"type", "title", "gridPos"} <= panel.keys(), panel
        if panel["type"] != "row":
            assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"])
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    names = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "cluster"} <= names


# ------------------------------------------------- a live cluster, a real Prometheus


@pytest.fixture(scope="module")
def live():
    """A 2/3/2 cluster that never restarts an agent, scraped by a real Prometheus
    configured by examples/prometheus.yml, with alerts.yml's rules (every `for:` 0s)."""
    require("prometheus")
    factory = ClusterFactory()
    folder = short_tmpdir()
    server = None
    try:
        cluster = factory("roles", name="alerts", restart={"policy": "never"},
                          health={"heartbeat_interval": "100ms"},
                          metrics={"listen": "127.0.0.1:0"})
        url = cluster.status()["metrics_url"]
        target = urllib.parse.urlsplit(url).netloc
        config = prometheus_config("paxosctl", [(target, {"cluster": "alerts"})])
        (folder / "alerts.yml").write_text(rules_with_no_waiting())
        server = Prometheus(config, folder)
        wait_until(lambda: server.query('up{job="paxosctl"}') == 1.0, 30, "the first scrape")
        yield cluster, url, server
    finally:
        if server is not None:
            server.stop()
        factory.close()
        shutil.rmtree(folder, ignore_errors=True)


def scraped_names(url: str) -> set[str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {re.split(r"[{ ]", line, maxsplit=1)[0] for line in text.splitlines()
            if line and not line.startswith("#")}


def rules_state(server: Prometheus) -> list[dict]:
    return [rule for group in server.api("rules")["groups"] for rule in group["rules"]]


def unix_time(rfc3339: str) -> float:
    """Prometheus' RFC 3339 timestamps (nanoseconds, Z) as Unix seconds."""
    match = re.fullmatch(r"(.{19})(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", rfc3339)
    assert match, rfc3339
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    whole = datetime.fromisoformat(match.group(1) + zone).timestamp()
    return whole + float("0." + (match.group(2) or "0"))


def evaluated_since(server: Prometheus, since: float) -> list[dict] | None:
    """Every rule, once each has been evaluated after `since` (Prometheus' clock)."""
    rules = rules_state(server)
    if len(rules) == len(alert_names()) and all(unix_time(r["lastEvaluation"]) > since
                                                for r in rules):
        return rules
    return None


def test_prometheus_loads_and_evaluates_every_rule(live):
    _, _, server = live
    # Evaluations before the first scrape see no series and cannot fail: wait for
    # evaluations over data (a scrape, then one more second).
    scraped = server.query('timestamp(up{job="paxosctl"})')
    rules = wait_until(lambda: evaluated_since(server, scraped + 1.0), 30,
                       "every rule to be evaluated over scraped series")
    bad = [(r["name"], r["health"], r.get("lastError")) for r in rules
           if r["health"] != "ok" or r.get("lastError")]
    assert not bad, bad
    assert sorted(r["name"] for r in rules) == sorted(alert_names())
    groups = {g["name"] for g in server.api("rules")["groups"]}
    assert groups == set(re.findall(r"^\s+- name: (\S+)$", ALERTS.read_text(), re.MULTILINE))


def test_every_expression_runs_and_names_only_live_metrics(live):
    _, url, server = live
    exprs = [*alert_exprs(), *dashboard_exprs()]
    for expr in exprs:
        server.api("query", query=grafana_to_promql(expr))  # asserts: no error
    used = set().union(*map(metric_names, exprs), *map(template_metric_names, template_queries()))
    missing = used - scraped_names(url) - SYNTHETIC - PER_AGENT_ONLY
    assert not missing, f"not in a live scrape: {sorted(missing)}"
    # The panels the issue asks for are there.
    for name in ("paxos_decided_commands_total", "paxos_decided_slots_total", "paxos_has_leader",
                 "paxosctl_agent_up", "paxosctl_agent_restarts_total",
                 "paxos_acceptor_persist_duration_seconds_bucket", "paxos_learner_applied_slot",
                 "paxos_messages_total",
                 "paxosctl_agent_resident_memory_bytes", "paxosctl_agent_cpu_seconds_total",
                 # Lags are computed from these (an agent alone knows no other's slot).
                 "paxos_acceptor_compaction_slot", "process_cpu_seconds_total"):
        assert any(name in metric_names(e) for e in dashboard_exprs()), name


#: Dashboard targets that show nothing on the supervisor's scrape: none.
SUPERVISOR_EMPTY: set[tuple[str, str]] = set()


def test_every_dashboard_query_returns_data(live):
    """On the supervisor's scrape, with the per-agent alternatives in the same queries."""
    _, _, server = live
    # rate() needs two samples in its window.
    wait_until(lambda: server.query('count_over_time(up{job="paxosctl"}[1m])') >= 3, 30,
               "three scrapes")
    empty = {(title, ref) for title, ref, expr in dashboard_targets()
             if not server.api("query", query=grafana_to_promql(expr))["result"]}
    assert empty == SUPERVISOR_EMPTY, empty


def firing(server: Prometheus) -> set[tuple[str, str]]:
    """(alertname, agent or "") of every firing alert."""
    return {(a["labels"]["alertname"], a["labels"].get("agent", ""))
            for a in server.api("alerts")["alerts"] if a["state"] == "firing"}


def test_killing_an_acceptor_fires_agent_down_and_majority_at_risk(live):
    """Runs last in this module: acceptor-2 stays down (restart policy never)."""
    cluster, _, server = live
    cluster.wait_healthy()
    scraped = server.query('timestamp(up{job="paxosctl"})')
    wait_until(lambda: evaluated_since(server, scraped + 1.0), 30,
               "the rules to be evaluated over scraped series")
    assert firing(server) == set(), "a healthy cluster fires nothing"
    cluster.run_ok("kill", "acceptor-2")
    want = {("PaxosctlAgentDown", "acceptor-2"), ("PaxosAcceptorMajorityAtRisk", "")}
    wait_until(lambda: want <= firing(server), 30, f"{want} to fire")
    # Two acceptors of three still decide: no quorum lost, a leader still leads.
    assert firing(server) == want, firing(server)
    with cluster.client() as client:
        client.propose(b"still decided")
