"""The CLI on a host where no supervisor runs the cluster (issue 22).

Agents run on their own hosts (`paxosctl agent NAME`, or here a cluster
whose supervisor is elsewhere: another state dir stands for another host),
and the manifest places them over TLS. From such a host `propose` and
`decided` reach the agents where the manifest places them, and `status`
asks each agent itself (its WELCOME: roles, incarnation, leader, applied),
exiting 3 when one does not answer.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from clusters import Cluster, ClusterFactory, paxosctl, short_tmpdir, wait_until


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def placed(module_clusters: ClusterFactory) -> tuple[Cluster, Path]:
    """A TLS cluster whose manifest places every agent, and a copy of that
    manifest whose state dir no supervisor runs ("another host")."""
    cluster = module_clusters("roles", name="away", transport="tls", start=False)
    ports = free_ports(len(cluster.agent_names))
    placement = "".join(f'{name} = "127.0.0.1:{port}"\n' for name, port in zip(cluster.agent_names, ports))
    cluster.manifest.write_text(cluster.manifest.read_text() + "\n[transport.addresses]\n" + placement)
    cluster.up()
    cluster.wait_healthy()
    elsewhere = short_tmpdir()
    text = cluster.manifest.read_text().replace('[transport]\n', f'[transport]\ncerts = "{cluster.dir / "certs"}"\n', 1)
    (elsewhere / "cluster.toml").write_text(text)
    return cluster, elsewhere / "cluster.toml"


def test_propose_and_decided_reach_placed_agents_without_a_supervisor(placed) -> None:
    cluster, away = placed
    assert not (away.parent / ".paxosctl").exists()
    out = paxosctl("propose", "from afar", "--file", str(away), cwd=away.parent)
    assert out.returncode == 0 and out.stdout.startswith("decided at "), out
    listed = paxosctl("decided", "-o", "json", "--file", str(away), cwd=away.parent)
    assert listed.returncode == 0, listed
    assert "from afar" in [e["value"] for e in json.loads(listed.stdout)]
    # The supervisor's own view holds it too: one cluster, reached two ways.
    assert "from afar" in [e["value"] for e in cluster.decided()]


def test_status_asks_each_agent_and_exits_3_when_one_is_silent(placed) -> None:
    cluster, away = placed
    leader = wait_until(lambda: cluster.status()["leader"], 15, "a leader")
    out = paxosctl("status", "-o", "json", "--file", str(away), cwd=away.parent)
    assert out.returncode == 0, out
    doc = json.loads(out.stdout)
    assert doc["source"] == "agents" and doc["leader"] == leader
    rows = {row["name"]: row for row in doc["agents"]}
    assert sorted(rows) == sorted(cluster.agent_names)
    assert all(row["answered"] and row["incarnation"] >= 1 for row in rows.values())
    assert rows["acceptor-0"]["roles"] == ["acceptor"]
    assert all(rows[p]["leader"] == leader for p in cluster.proposers)
    table = paxosctl("status", "--file", str(away), cwd=away.parent)
    assert table.returncode == 0, table
    assert f"asked {len(cluster.agent_names)} agents directly" in table.stdout, table.stdout

    cluster.run_ok("stop", "acceptor-2")
    try:
        wait_until(lambda: cluster.agent("acceptor-2")["pid"] is None, 15,
                   "acceptor-2 stopped")
        out = paxosctl("status", "-o", "json", "--file", str(away), cwd=away.parent)
        assert out.returncode == 3, out
        rows = {row["name"]: row for row in json.loads(out.stdout)["agents"]}
        assert not rows["acceptor-2"]["answered"] and rows["acceptor-2"]["error"]
        assert all(rows[n]["answered"] for n in cluster.agent_names if n != "acceptor-2")
    finally:
        cluster.run_ok("start", "acceptor-2")


def test_status_without_placement_still_says_what_to_start(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster("roles", name="unplaced", transport="tls", start=False)
    out = cluster.run("status")
    assert out.returncode == 1 and "paxosctl up" in out.stderr, out


def test_bench_from_another_host_measures_the_agents_it_reaches(placed) -> None:
    cluster, away = placed
    out = paxosctl("bench", "--requests", "300", "--concurrency", "16", "--warmup", "0", "-o", "json",
                   "--file", str(away), cwd=away.parent)
    assert out.returncode == 0, out
    data = json.loads(out.stdout)
    assert data["requests"] == 300 and data["errors"] == 0 and data["throughput_per_s"] > 0
    # Only this process's CPU: the agents' is on their own hosts.
    cpu = data["cpu_us_per_command"]
    assert cpu["client"] is not None and not any(name in cpu for name in cluster.agent_names), cpu
