"""paxos_commit_duration_seconds, scraped from real clusters.

The leader times each slot it decides, from the arrival of the slot's
oldest command to its decision (core committime.py), and its heartbeat
carries the histogram to the supervisor's scrape and to a standalone
agent's own /metrics (one family builder, `agent_families`, serves both).
Once the leader's report covers every slot the test's commands were
decided in, the proposers' counts add up to exactly those slots (no-ops
are not timed, and nothing here changes the leader), and the sum is
above zero. Only proposers have the family.
"""

from __future__ import annotations

import re
import urllib.request

from clusters import manifest_text, wait_until
from standalone.harness import Agents

from paxos_agents.core.committime import COMMIT_BUCKETS

FAMILY = "paxos_commit_duration_seconds"


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def commit_series(text: str) -> dict[str, dict[str, float]]:
    """agent -> {"count", "sum", "buckets" (their number), "role"...} of the family in a scrape."""
    found: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        m = re.match(rf'{FAMILY}_(count|sum|bucket)\{{(.*)\}} (\S+)$', line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        entry = found.setdefault(labels["agent"], {"buckets": 0})
        entry["role"] = labels["role"]  # type: ignore[assignment]
        if m.group(1) == "bucket":
            entry["buckets"] += 1
            if labels["le"] == "+Inf":
                entry["inf"] = float(m.group(3))
        else:
            entry[m.group(1)] = float(m.group(3))
    return found


def counted(found: dict[str, dict[str, float]]) -> float:
    return sum(entry.get("count", 0) for entry in found.values())


def test_the_supervisor_scrape_times_every_slot_the_leader_decided(make_cluster):
    cluster = make_cluster("roles", health={"heartbeat_interval": "100ms"},
                           metrics={"listen": "127.0.0.1:0"})
    cluster.leader()
    client = cluster.client()
    url = cluster.status()["metrics_url"]
    futures = [client.propose_async(f"timed-{i}") for i in range(150)]
    slots = {f.result(30).slot for f in futures}
    # The leader's next heartbeat carries the slots it decided.
    found = wait_until(lambda: (lambda f: f if counted(f) >= len(slots) else None)(
        commit_series(scrape(url))), 10, f"{len(slots)} slots timed")
    assert counted(found) == len(slots), found
    leader = cluster.leader()
    assert found[leader]["count"] == len(slots) and found[leader]["sum"] > 0
    assert found[leader]["inf"] == found[leader]["count"]
    # Every proposer has the family, with one bucket per bound and +Inf; no other role has it.
    assert set(found) == set(cluster.proposers)
    assert {e["role"] for e in found.values()} == {"proposer"}
    assert all(e["buckets"] == len(COMMIT_BUCKETS) + 1 for e in found.values())


def test_a_standalone_agents_own_metrics_time_the_slots_it_decided(tmp_short):
    group = Agents(tmp_short, manifest_text("replicas", "solo", state_dir="st",
                                            health={"heartbeat_interval": "100ms"}))
    try:
        agents = [group.start(name) for name in ("replica-0", "replica-1", "replica-2")]
        slots = set()
        for i in range(5):
            done = group.run("propose", f"timed-{i}", "--timeout", "10")
            assert done.returncode == 0, done
            slots.add(re.search(r"decided at (\d+)\.", done.stdout).group(1))

        def timed() -> dict[str, dict[str, float]] | None:
            found: dict[str, dict[str, float]] = {}
            for agent in agents:
                found.update(commit_series(agent.get("/metrics")[1]))
            return found if counted(found) >= len(slots) else None

        found = wait_until(timed, 10, f"{len(slots)} slots timed")
        assert counted(found) == len(slots), found
        assert set(found) == {a.name for a in agents}
        assert {e["role"] for e in found.values()} == {"replica"}
        leader = max(found, key=lambda name: found[name]["count"])
        assert found[leader]["sum"] > 0
    finally:
        group.close()
