"""Metrics that a real Prometheus scrapes (Debian's prometheus and promtool).

A real cluster serves /metrics on a free port; `promtool check metrics`
must find nothing to report on a scrape of a busy cluster, and a real
Prometheus server scraping it must answer PromQL queries with what the
test caused: decisions after proposals, a restart after a kill, a leader
change after the leader is killed.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from paxosctl import Client

PAXOSCTL = str(Path(sys.executable).parent / "paxosctl")
ROOT = Path(__file__).resolve().parents[2]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """A running 2/3/2 cluster whose metrics listen on a free port."""
    folder = Path(tempfile.mkdtemp(prefix="pxm", dir="/tmp"))
    manifest = folder / "cluster.toml"
    manifest.write_text(textwrap.dedent("""
        [cluster]
        name = "metrics"
        [agents.proposer]
        role = "proposer"
        replicas = 2
        [agents.acceptor]
        role = "acceptor"
        replicas = 3
        [agents.learner]
        role = "learner"
        replicas = 2
        [health]
        heartbeat_interval = "100ms"
        [metrics]
        listen = "127.0.0.1:0"
    """))
    up = subprocess.run([PAXOSCTL, "up", "-d", str(manifest)], capture_output=True, text=True,
                        timeout=60)
    assert up.returncode == 0, up.stderr
    client = Client.for_manifest(manifest)
    try:
        yield manifest, client, client.request("status")["metrics_url"]
    finally:
        client.close()
        subprocess.run([PAXOSCTL, "down", "-f", str(manifest)], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in a scrape, or None if absent."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, rest = series.partition("{")
        if metric == name and ",".join(sorted(rest.rstrip("}").split(","))) == want:
            return float(value)
    return None


def leader(client: Client) -> str:
    return wait_until(lambda: client.request("status")["leader"], 15, "a leader")


def test_promtool_finds_nothing_on_a_busy_cluster(cluster):
    manifest, client, url = cluster
    futures = [client.propose_async(f"busy-{i}") for i in range(100)]
    highest = max(f.result(30).slot for f in futures)
    # Learners report progress with their heartbeats: wait for the next one.
    wait_until(lambda: (sample(scrape(url), "paxos_decided_slot") or -1) >= highest, 10,
               f"paxos_decided_slot to reach {highest}")
    text = scrape(url)
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip() == "" and check.stderr.strip() == "", check.stdout + check.stderr
    # And the numbers reflect the load.
    assert sample(text, "paxos_proposals_total", result="decided") >= 100
    assert sample(text, "paxos_decisions_total") >= highest + 1
    assert sample(text, "paxos_has_leader") == 1.0
    assert sample(text, "paxos_acceptor_persist_duration_seconds_count") > 0


def test_counters_survive_an_agent_restart(cluster):
    """A restarted agent's own counters restart at 0; the exported totals must not go back."""
    manifest, client, url = cluster
    for i in range(10):
        client.propose(f"before-{i}")
    wait_until(lambda: (sample(scrape(url), "paxos_messages_total", type="Accept") or 0) > 0,
               10, "Accept messages counted")
    before = sample(scrape(url), "paxos_messages_total", type="Accept")
    client.kill("acceptor-2")
    wait_until(lambda: client.request("status")["agents"][4]["state"] == "running"
               and client.request("status")["agents"][4]["restarts"] >= 1, 20, "acceptor-2 back")
    after = sample(scrape(url), "paxos_messages_total", type="Accept")
    assert after >= before


class Prometheus:
    """A real Prometheus server on a free loopback port, scraping one target."""

    def __init__(self, target: str, folder: Path) -> None:
        self.port = free_port()
        config = folder / "prometheus.yml"
        config.write_text(textwrap.dedent(f"""
            global:
              scrape_interval: 1s
            scrape_configs:
              - job_name: paxosctl
                static_configs:
                  - targets: ["{target}"]
        """))
        self.log = open(folder / "prometheus.log", "wb")
        self.process = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(self._ready, 60, "prometheus to be ready", interval=0.25)

    def _ready(self) -> bool:
        assert self.process.poll() is None, "prometheus exited; see prometheus.log"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, promql: str) -> float | None:
        """The value of an instant query that returns one series (None if empty)."""
        url = (f"http://127.0.0.1:{self.port}/api/v1/query?"
               + urllib.parse.urlencode({"query": promql}))
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        result = body["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(15)
        self.log.close()


@pytest.fixture(scope="module")
def prometheus(cluster):
    _, _, url = cluster
    target = urllib.parse.urlsplit(url).netloc
    folder = Path(tempfile.mkdtemp(prefix="pxp", dir="/tmp"))
    server = Prometheus(target, folder)
    try:
        wait_until(lambda: server.query('up{job="paxosctl"}') == 1.0, 30, "the first scrape")
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_prometheus_sees_decisions(cluster, prometheus):
    _, client, _ = cluster
    start = prometheus.query('paxos_proposals_total{result="decided"}') or 0
    futures = [client.propose_async(f"prom-{i}") for i in range(25)]
    highest = max(f.result(30).slot for f in futures)  # batched: maybe fewer slots than 25
    wait_until(lambda: (prometheus.query('paxos_proposals_total{result="decided"}') or 0)
               >= start + 25, 30, "25 more decided proposals in Prometheus")
    wait_until(lambda: (prometheus.query("paxos_decisions_total") or 0) >= highest + 1, 30,
               f"paxos_decisions_total to reach {highest + 1}")
    assert prometheus.query("paxos_decided_slot") >= highest


def test_prometheus_sees_a_restart_after_a_kill(cluster, prometheus):
    _, client, _ = cluster
    query = 'sum(paxosctl_agent_restarts_total{agent="learner-1",reason="killed"})'
    before = prometheus.query(query) or 0
    client.kill("learner-1")
    wait_until(lambda: (prometheus.query(query) or 0) >= before + 1, 30,
               "the learner-1 restart in Prometheus")


def test_prometheus_sees_a_leader_change_after_the_leader_dies(cluster, prometheus):
    _, client, _ = cluster
    before = prometheus.query("paxos_leader_changes_total") or 0
    old = leader(client)
    client.kill(old)
    wait_until(lambda: (prometheus.query("paxos_leader_changes_total") or 0) >= before + 1, 30,
               "a leader change in Prometheus")
    assert (prometheus.query("time() - paxos_leader_change_timestamp_seconds") or 1e9) < 60
    client.propose("after the leader change")


def test_history_metrics_move_and_alert_rules_name_real_series(cluster):
    """Guards the bounded-history metrics (compaction point, learner applied slot,
    state bytes) and that examples/alerts.yml passes promtool and names only
    metrics a live cluster exports."""
    manifest, client, url = cluster
    futures = [client.propose_async(f"hist-{i}") for i in range(200)]
    highest = max(f.result(30).slot for f in futures)
    # Learners report what they stored every few ticks; acceptors compact then.
    wait_until(lambda: all((sample(scrape(url), "paxos_acceptor_compaction_slot",
                                   agent=f"acceptor-{i}", role="acceptor") or 0) > 0
                           for i in range(3)), 15, "every acceptor to compact")
    # Learners report with their heartbeats: wait for the reports that cover `highest`.
    wait_until(lambda: all((sample(scrape(url), "paxos_learner_applied_slot", agent=f"learner-{i}",
                                   role="learner") or -1) >= highest for i in range(2)), 10,
               f"both learners' applied slot to reach {highest}")
    text = scrape(url)
    for i in range(2):
        assert sample(text, "paxos_learner_log_start_slot", agent=f"learner-{i}",
                      role="learner") == 0
    for name in ("acceptor-0", "learner-0", "proposer-0"):
        role = name.split("-")[0]
        assert sample(text, "paxosctl_agent_state_bytes", agent=name, role=role) > 0
    rules = ROOT / "examples" / "alerts.yml"
    check = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    exported = {line.split(" ")[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    exported |= {f"{n}_total" for n in exported}
    named = set(re.findall(r"\b(paxos(?:ctl)?_[a-z_]+)\b", rules.read_text()))
    assert named and named <= exported, named - exported
