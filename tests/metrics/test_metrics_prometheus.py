"""Metrics that a real Prometheus scrapes (Debian's prometheus and promtool).

A real cluster serves /metrics on a free port; `promtool check metrics`
must find nothing to report on a scrape of a busy cluster, and a real
Prometheus server scraping it must answer PromQL queries with what the
test caused: decisions after proposals, a restart after a kill, a leader
change after the leader is killed. The scrape itself must count commands
once and apart from slots, label every per-agent series with its agent and
role, show a cut-off learner's lag, and carry the supervisor's process_*.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from clusters import wait_until
from prom import Prometheus

from paxosctl import Client
from paxosctl.supervisor.pidfile import running_supervisor

PAXOSCTL = str(Path(sys.executable).parent / "paxosctl")


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


_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def series(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample in a scrape: (name, labels, value)."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        out.append((name, dict(_LABEL.findall(labels)), float(value)))
    return out


#: Series about the whole cluster, or the supervisor itself: no agent label.
#: Every other series is about one agent and must say which, and its role.
CLUSTER_WIDE = {
    "paxosctl_build_info", "paxos_has_leader", "paxos_leader_changes_total",
    "paxos_leader_changes_created", "paxos_leader_change_timestamp_seconds",
    "paxos_decided_commands_total", "paxos_decided_slots_total", "paxos_proposals_total",
    "paxos_decisions_total", "paxos_decided_slot", "paxos_proposals_expired_total",
    "paxos_acceptors_configured", "paxos_acceptor_quorum", "paxosctl_chaos_active",
    "paxos_config_epoch", "paxos_config_in_force_epoch", "paxosctl_membership_change_in_progress",
    "paxos_acceptors_up",
    "python_info",
}

ROLES = {"proposer-0": "proposer", "proposer-1": "proposer", "acceptor-0": "acceptor",
         "acceptor-1": "acceptor", "acceptor-2": "acceptor", "learner-0": "learner",
         "learner-1": "learner"}


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
    assert sample(text, "paxos_decided_commands_total") >= 100
    assert sample(text, "paxos_decided_slots_total") >= highest + 1
    # A leader, once any election the load set off is over (a loaded machine can
    # miss a heartbeat): waited for, not read from the one scrape above.
    wait_until(lambda: sample(scrape(url), "paxos_has_leader") == 1.0, 10, "a leader")
    # Each acceptor persisted votes; its count arrives with its next heartbeat
    # (the learners' may come first, on a loaded machine).
    wait_until(lambda: all((sample(scrape(url), "paxos_acceptor_persist_duration_seconds_count",
                                   agent=f"acceptor-{i}", role="acceptor") or 0) > 0
                           for i in range(3)), 10, "every acceptor's persist count to be reported")


def test_counters_survive_an_agent_restart(cluster):
    """A restarted agent's own counters restart at 0; the exported totals must not go back."""
    manifest, client, url = cluster
    for i in range(10):
        client.propose(f"before-{i}")
    accepts = dict(agent="acceptor-2", role="acceptor", type="Accept")
    wait_until(lambda: (sample(scrape(url), "paxos_messages_total", **accepts) or 0) > 0,
               10, "Accept messages counted")
    before = sample(scrape(url), "paxos_messages_total", **accepts)
    client.kill("acceptor-2")
    wait_until(lambda: client.request("status")["agents"][4]["state"] == "running"
               and client.request("status")["agents"][4]["restarts"] >= 1, 20, "acceptor-2 back")
    after = sample(scrape(url), "paxos_messages_total", **accepts)
    assert after >= before


@pytest.fixture(scope="module")
def prometheus(cluster):
    _, _, url = cluster
    target = urllib.parse.urlsplit(url).netloc
    folder = Path(tempfile.mkdtemp(prefix="pxp", dir="/tmp"))
    server = Prometheus(textwrap.dedent(f"""
        global:
          scrape_interval: 1s
        scrape_configs:
          - job_name: paxosctl
            static_configs:
              - targets: ["{target}"]
    """), folder)
    try:
        wait_until(lambda: server.query('up{job="paxosctl"}') == 1.0, 30, "the first scrape")
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_prometheus_sees_decisions(cluster, prometheus):
    _, client, _ = cluster
    start = prometheus.query("paxos_decided_commands_total") or 0
    futures = [client.propose_async(f"prom-{i}") for i in range(25)]
    highest = max(f.result(30).slot for f in futures)  # batched: maybe fewer slots than 25
    wait_until(lambda: (prometheus.query("paxos_decided_commands_total") or 0)
               >= start + 25, 30, "25 more decided commands in Prometheus")
    wait_until(lambda: (prometheus.query("paxos_decided_slots_total") or 0) >= highest + 1, 30,
               f"paxos_decided_slots_total to reach {highest + 1}")
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


def test_history_metrics_move(cluster):
    """Guards the bounded-history metrics (compaction point, learner applied slot,
    state bytes). (examples/alerts.yml: tests/metrics/test_alerts.py.)"""
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


def test_commands_and_slots_are_counted_apart_and_once(cluster):
    """Two learners apply the same 120 commands, batched into fewer slots: the
    commands counter grows by 120 (not 240), the slots counter by the slots."""
    manifest, client, url = cluster
    text = scrape(url)
    commands, slots = (sample(text, "paxos_decided_commands_total"),
                       sample(text, "paxos_decided_slots_total"))
    futures = [client.propose_async(f"count-{i}") for i in range(120)]
    decided = [f.result(30) for f in futures]
    highest = max(d.slot for d in decided)
    # Both learners' reports must cover every command before the count is final.
    wait_until(lambda: all((sample(scrape(url), "paxos_learner_applied_slot", agent=f"learner-{i}",
                                   role="learner") or -1) >= highest for i in range(2)), 10,
               f"both learners to apply slot {highest}")
    text = scrape(url)
    assert sample(text, "paxos_decided_commands_total") == commands + 120
    new_slots = sample(text, "paxos_decided_slots_total") - slots
    assert new_slots == len({d.slot for d in decided}), "every slot here holds our commands"
    assert new_slots < 120, "the leader batches concurrent commands into shared slots"
    assert sample(text, "paxos_decided_slots_total") == sample(text, "paxos_decided_slot") + 1
    # The deprecated names say the same for one release.
    assert sample(text, "paxos_proposals_total", result="decided") == commands + 120
    assert sample(text, "paxos_decisions_total") == sample(text, "paxos_decided_slots_total")


def test_every_per_agent_series_says_which_agent_and_role(cluster):
    _, _, url = cluster
    found: dict[str, set[str]] = {}
    for name, labels, _ in series(scrape(url)):
        if name in CLUSTER_WIDE or name.startswith("process_"):
            assert "agent" not in labels, (name, labels)
            continue
        assert "agent" in labels and labels.get("role") == ROLES.get(labels["agent"]), (name, labels)
        found.setdefault(name, set()).add(labels["agent"])
    playing = {role: {a for a, r in ROLES.items() if r == role} for role in set(ROLES.values())}
    everyone = set(ROLES)
    # Each family, for every agent whose role has it.
    expected = {
        "paxos_acceptor_persist_duration_seconds_bucket": everyone,
        "paxos_messages_total": everyone,
        "paxos_messages_sent_total": everyone,
        "paxos_messages_dropped_total": everyone,
        "paxosctl_agent_cpu_seconds_total": everyone,
        "paxosctl_health_check_failures_total": everyone,
        "paxosctl_chaos_duplicated_total": everyone,
        "paxos_ballot_round": playing["proposer"],
        "paxos_retries_performed_total": playing["proposer"],
        "paxos_commit_duration_seconds_bucket": playing["proposer"],
        "paxos_proposer_accept_timeouts_total": playing["proposer"],
        "paxos_prepare_rejections_total": playing["acceptor"],
        "paxos_learner_applied_slot": playing["learner"],
        "paxos_learner_lag_slots": playing["learner"],
    }
    wrong = {name: found.get(name) for name, agents in expected.items()
             if found.get(name) != agents}
    assert not wrong, wrong


def test_the_supervisor_exports_its_own_process_metrics(cluster):
    manifest, _, url = cluster
    text = scrape(url)
    state_dir = manifest.parent / ".paxosctl" / "metrics"
    supervisor = running_supervisor(state_dir)
    assert supervisor is not None
    assert abs(sample(text, "process_start_time_seconds") - supervisor.create_time()) < 1.0
    rss = sample(text, "process_resident_memory_bytes")
    assert 0.5 < rss / supervisor.memory_info().rss < 2.0
    assert sample(text, "process_open_fds") > 0
    assert any(name == "python_info" for name, _, _ in series(text))


def test_learner_lag_shows_a_learner_cut_off(cluster):
    """learner-1 partitioned away falls behind learner-0: its applied slot stays,
    its lag grows; healed, it catches up and its lag returns to 0."""
    manifest, client, url = cluster
    run = lambda *args: subprocess.run([PAXOSCTL, *args, "-f", str(manifest)],  # noqa: E731
                                       capture_output=True, text=True, timeout=30)
    cut = run("chaos", "--partition", "learner-1")
    assert cut.returncode == 0, cut.stderr
    try:
        # The client may be reading from learner-1: do not wait on these yet.
        futures = [client.propose_async(f"lag-{i}") for i in range(40)]

        def lagging():
            text = scrape(url)
            lag = sample(text, "paxos_learner_lag_slots", agent="learner-1", role="learner")
            return (lag is not None and lag > 0
                    and sample(text, "paxos_learner_lag_slots", agent="learner-0",
                               role="learner") == 0
                    and (text, lag))
        text, lag = wait_until(lagging, 15, "learner-1 to lag behind learner-0")
        applied = {i: sample(text, "paxos_learner_applied_slot", agent=f"learner-{i}",
                             role="learner") for i in range(2)}
        assert applied[0] - applied[1] == lag
    finally:
        healed = run("chaos", "--heal")
        assert healed.returncode == 0, healed.stderr
    for f in futures:
        f.result(30)
    wait_until(lambda: sample(scrape(url), "paxos_learner_lag_slots", agent="learner-1",
                              role="learner") == 0, 20, "learner-1 to catch up")
