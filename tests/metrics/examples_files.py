"""examples/alerts.yml, grafana-dashboard.json and prometheus.yml, as the metrics
tests read them (tests/metrics/test_alerts.py: the supervisor's scrape;
tests/metrics/test_alerts_agents.py: per-agent scrapes)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ALERTS = EXAMPLES / "alerts.yml"
DASHBOARD = EXAMPLES / "grafana-dashboard.json"
PROMETHEUS = EXAMPLES / "prometheus.yml"

#: The Grafana variables the dashboard uses, and what stands for them in a test query.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$cluster": ".*"}


def alert_exprs() -> list[str]:
    """Every rule's `expr:` in alerts.yml (one line each: the file keeps them so)."""
    exprs = re.findall(r"^\s+expr: (.+)$", ALERTS.read_text(), re.MULTILINE)
    assert exprs, "no expr: lines in alerts.yml"
    return exprs


def alert_names() -> list[str]:
    return re.findall(r"^\s+- alert: (\S+)$", ALERTS.read_text(), re.MULTILINE)


def dashboard_targets() -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) of every panel target, rows' panels included."""
    board = json.loads(DASHBOARD.read_text())
    panels = list(board["panels"])
    targets = []
    while panels:
        panel = panels.pop()
        panels.extend(panel.get("panels", []))
        targets.extend((panel["title"], t["refId"], t["expr"]) for t in panel.get("targets", []))
    return targets


def dashboard_exprs() -> list[str]:
    return [expr for _, _, expr in dashboard_targets()]


def template_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [v["query"]["query"] for v in board["templating"]["list"] if v["type"] == "query"]


def grafana_to_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable the test does not know: {expr}"
    return expr


def rules_with_no_waiting() -> str:
    """alerts.yml with every `for:` at 0s: the same rules, without the waiting."""
    rules, n = re.subn(r"(?m)^(\s+)for: \S+$", r"\1for: 0s", ALERTS.read_text())
    assert n == len(alert_names())
    return rules


def prometheus_config(job: str, static_configs: list[tuple[str, dict[str, str]]]) -> str:
    """examples/prometheus.yml with only scrape job `job`, its static targets
    replaced by `static_configs` ((host:port, target labels) each), scraping and
    evaluating every second. Everything else of the job (honor_labels) is kept."""
    text = PROMETHEUS.read_text()
    head, found, jobs = text.partition("\nscrape_configs:\n")
    assert found, "examples/prometheus.yml: no scrape_configs"
    head, n = re.subn(r"(scrape|evaluation)_interval: \S+", r"\1_interval: 1s", head)
    assert n == 2, "examples/prometheus.yml: expected scrape and evaluation intervals"
    block = re.search(rf"(?ms)^  - job_name: {re.escape(job)}\n.*?(?=^\s*$|\Z)", jobs)
    assert block, f"examples/prometheus.yml: no job {job}"
    settings, found, _ = block.group(0).partition("    static_configs:\n")
    assert found, f"examples/prometheus.yml: job {job} has no static_configs"
    lines = [settings + "    static_configs:"]
    for target, labels in static_configs:
        lines.append(f'      - targets: ["{target}"]')
        lines.append("        labels: {" + ", ".join(f"{k}: {v}" for k, v in labels.items()) + "}")
    return head + "\nscrape_configs:\n" + "\n".join(lines) + "\n"


def kubernetes_job() -> str:
    """examples/prometheus.yml with its commented Kubernetes job un-commented."""
    out, inside = [], False
    for line in PROMETHEUS.read_text().splitlines():
        if line.startswith("  # - job_name: paxosctl-pods"):
            inside = True
        if inside and line.startswith("  # "):
            line = "  " + line[4:]
        out.append(line)
    assert inside, "examples/prometheus.yml: no commented job paxosctl-pods"
    return "\n".join(out) + "\n"
