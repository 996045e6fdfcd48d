"""A cluster spread over network-namespace hosts (issue 22): faults that
one machine cannot show, with the history check on every acknowledged command.

Three hosts run one `paxosctl agent` each (deployment.py), restarted as an
engine would; a fourth runs the CLI and the load. What a host can suffer:
every process killed (a power cut), its link down (a partition), the
leader's host cut off, its disk wiped. Through all of it nothing
acknowledged is lost or decided twice.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
import tomllib

import pytest
from deployment import NAMES, PORT, Deployment, dns_name, wait_until

from paxos_agents.runtime.frames import EXIT_NEEDS_OPERATOR

#: Run on the client host: dial AGENT at ADDRESS presenting a certificate and
#: send a peer's HELLO from SENDER; print "welcome" / "refuse" / "tls" and the
#: answer's line. The certificate: "agent:NAME" (that agent's genuine files)
#: or "other-cluster:NAME" (NAME's agent certificate for another cluster id,
#: signed by this cluster's CA, as a CA shared by two clusters would sign it).
FORGE = """
import socket, ssl, sys, tempfile, os
from datetime import datetime, timezone
from pathlib import Path
from paxos_agents.runtime import frames
from paxos_agents.runtime.handshake import hello
from paxos_agents.runtime.identity import Identity, client_context, describe_tls_error
from paxosctl.issuing import issue_leaf
certs, cluster, agent, address, kind, sender = Path(sys.argv[1]), *sys.argv[2:7]
what, name = kind.split(":")
if what == "agent":
    cert, key = certs / "agent" / f"{name}.crt", certs / "agent" / f"{name}.key"
else:
    pem, kpem = issue_leaf((certs / "ca.crt").read_bytes(), (certs / "ca.key").read_bytes(),
                           Identity("othercluster", "agent", name), now=datetime.now(timezone.utc))
    folder = Path(tempfile.mkdtemp())
    cert, key = folder / "x.crt", folder / "x.key"
    cert.write_bytes(pem); key.write_bytes(kpem); os.chmod(key, 0o600)
host, port = address.rsplit(":", 1)
context = client_context(cert, key, certs / "ca.crt")
with socket.create_connection((host, int(port)), timeout=5) as raw, context.wrap_socket(raw) as sock:
    try:
        sock.sendall(frames.pack([hello(cluster, sender, 1, agent)]))
        reader = frames.FrameReader()
        while True:
            data = sock.recv(1 << 16)
            if not data:
                print("closed"); break
            got = reader.feed(data)
            if got:
                print("welcome" if got[0][:1] == frames.WELCOME else "refuse", got[0][1:].decode()[:200])
                break
    except ssl.SSLError as e:
        print("tls", describe_tls_error(e)[1])
"""


@pytest.fixture
def deployment(make_hosts) -> Deployment:
    d = Deployment(make_hosts)
    wait_until(lambda: len(d.answering()) == len(NAMES) and d.leader(), 30,
               "every agent answering and a leader")
    return d


def test_a_host_killed_and_back_catches_up(deployment: Deployment) -> None:
    d = deployment
    d.start_load()
    wait_until(lambda: d.acked_since(0) >= 50, 20, "50 decisions")
    victim = next(n for n in NAMES if n != d.leader())
    before = d.answering()[victim]["incarnation"]
    d.hosts[victim].kill_all()
    mark = time.monotonic()
    wait_until(lambda: d.acked_since(mark) >= 50, 20, "decisions with one host down")
    # Its runner brings it back, as a new incarnation, from its own disk.
    wait_until(lambda: d.answering().get(victim, {}).get("incarnation", 0) > before, 30,
               f"{victim} back with a newer incarnation")
    history = d.finish_load()
    report = d.check(history)  # every agent caught up first, the victim included
    assert victim in d.answering()
    assert report.acknowledged == sum(1 for op in history if op.acked is not None)


def test_a_partitioned_host_heals_and_catches_up(deployment: Deployment) -> None:
    d = deployment
    d.start_load()
    wait_until(lambda: d.acked_since(0) >= 30, 20, "30 decisions")
    victim = next(n for n in NAMES if n != d.leader())
    d.hosts[victim].partition()
    wait_until(lambda: victim not in d.answering(), 10, f"{victim} unreachable")
    mark = time.monotonic()
    wait_until(lambda: d.acked_since(mark) >= 50, 20, "decisions with one host cut off")
    d.hosts[victim].heal()
    history = d.finish_load()
    wait_until(lambda: victim in d.answering(), 15, f"{victim} reachable again")
    d.check(history)  # every agent caught up first, the victim included


def test_the_leaders_host_cut_off_under_load(deployment: Deployment) -> None:
    """A new leader, and decisions again for a client on another host; the
    old leader's host back later. Bounds here are loose (a shared machine):
    bench/hosts.py measures the times against the issue's targets."""
    d = deployment
    d.start_load()
    wait_until(lambda: d.acked_since(0) >= 30, 20, "30 decisions")
    old = d.leader()
    d.hosts[old].partition()
    cut = time.monotonic()
    new = wait_until(lambda: (leader := d.leader()) not in (None, old) and leader, 15,
                     "a new leader on another host")
    assert new != old
    wait_until(lambda: d.acked_since(cut) >= 20, 15, "decisions again after the cut")
    d.hosts[old].heal()
    history = d.finish_load()
    d.check(history)


def test_a_wiped_disk_is_refused_and_the_cluster_goes_on(deployment: Deployment) -> None:
    """Its certificate kept, its state lost: the agent must not vote again
    (it could undo what it promised); it exits with the permanent code and
    one line, and the engine stops restarting it."""
    d = deployment
    d.start_load()
    wait_until(lambda: d.acked_since(0) >= 30, 20, "30 decisions")
    victim = next(n for n in NAMES if n != d.leader())
    host = d.hosts[victim]
    host.lose_disk()
    assert d.runners[victim].wait_exited(60) == EXIT_NEEDS_OPERATOR
    log = host.log_path(victim).read_text()
    assert "replace" in log.splitlines()[-1] or any("paxosctl replace" in line for line in log.splitlines()[-5:]), \
        log[-1500:]
    mark = time.monotonic()
    wait_until(lambda: d.acked_since(mark) >= 30, 20, "decisions with two agents")
    d.check(d.finish_load())


def test_chaos_over_tcp_loses_nothing(deployment: Deployment) -> None:
    """Drops, duplicates and delays at every sender, put in force over the
    operator channel (the operator certificate; a client's is refused)."""
    d = deployment
    chaos = {"op": "chaos", "settings": {"drop": 0.05, "duplicate": 0.05, "delay": 0.005, "seed": 7}}
    refused = d.admin(chaos, kind="client")
    assert [json.loads(line)["refused"] for line in refused.stdout.splitlines()] == ["forbidden"] * 3
    taken = d.admin(chaos)
    assert [json.loads(line).get("ok") for line in taken.stdout.splitlines()] == [True] * 3, taken
    d.start_load()
    wait_until(lambda: d.acked_since(0) >= 300, 60, "300 decisions under chaos")
    history = d.finish_load()
    d.admin({"op": "chaos", "settings": {}})
    d.check(history)
    dropped = sum(d.metric(n, "paxos_messages_dropped_total", reason="chaos_drop") for n in NAMES)
    duplicated = sum(d.metric(n, "paxosctl_chaos_duplicated_total") for n in NAMES)
    assert dropped > 0 and duplicated > 0, (dropped, duplicated)


def test_a_stale_incarnation_reconnecting_after_a_partition_is_refused(make_hosts) -> None:
    """replica-2's host is cut off, its agent frozen; the agent is started
    again on a spare host from a copy of its disk (a rescheduled pod and its
    volume), as a newer incarnation, and its Service name moves with it.
    Then the old host heals and the old process resumes: its peers refuse
    its older incarnation, count it, and nothing acknowledged is lost."""
    d = Deployment(make_hosts, spare=True)
    wait_until(lambda: len(d.answering()) == len(NAMES) and d.leader(), 30,
               "every agent answering and a leader")
    victim = next(n for n in NAMES if n != d.leader())
    old_host, new_host = d.hosts[victim], d.net["h3"]
    old = d.answering()[victim]["incarnation"]
    d.start_load()
    wait_until(lambda: d.acked_since(0) >= 30, 20, "30 decisions")
    old_host.partition()
    pid = d.runners[victim].wait_started(1).pid
    os.kill(pid, signal.SIGSTOP)  # frozen mid-flight: nothing it holds is written meanwhile
    shutil.copytree(old_host.volume, new_host.volume, dirs_exist_ok=True)
    new_host.move_alias(dns_name(victim))
    d.hosts[victim] = new_host
    d.runners[victim] = new_host.keep_running(victim, d.argv(victim), permanent_exit=78)
    wait_until(lambda: (d.answering().get(victim) or {}).get("incarnation", 0) > old, 30,
               f"{victim} running on h3 as a newer incarnation")
    def stale(agent: str) -> float:
        return d.metric(agent, "paxos_connections_refused_total", reason="stale_incarnation")

    refused_before = {n: stale(n) for n in NAMES if n != victim}
    old_host.heal()
    os.kill(pid, signal.SIGCONT)
    # The old process redials its peers with its old number: refused, counted.
    wait_until(lambda: sum(stale(n) - refused_before[n] for n in refused_before) > 0, 30,
               "the peers refusing the old incarnation")
    mark = time.monotonic()
    wait_until(lambda: d.acked_since(mark) >= 30, 20, "decisions after the old one came back")
    d.check(d.finish_load())


def test_forged_peers_are_refused_across_hosts(deployment: Deployment) -> None:
    """From another host: another agent's genuine certificate sending a HELLO
    as replica-2, and replica-2's name in a certificate of another cluster
    signed by this CA. Each refused with one line, and counted at replica-0
    under its reason; replica-2's own certificate is welcomed (the control)."""
    d = deployment
    cluster = tomllib.loads(d.manifest.read_text())["cluster"]["id"]

    def dial(kind: str) -> str:
        out = d.client.run([sys.executable, "-c", FORGE, str(d.config / "certs"), cluster, "replica-0",
                            f"{dns_name('replica-0')}:{PORT}", kind, "replica-2"], cwd=d.config)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def refused(reason: str) -> float:
        return d.metric("replica-0", "paxos_connections_refused_total", reason=reason)

    before = {r: refused(r) for r in ("tls_wrong_identity", "tls_wrong_cluster")}
    assert dial("agent:replica-2").startswith("welcome")
    impostor = dial("agent:replica-1")
    assert impostor.startswith(("refuse", "tls")) and "replica-1" in impostor, impostor
    other = dial("other-cluster:replica-2")
    assert other.startswith(("refuse", "tls")) and "othercluster" in other, other
    wait_until(lambda: refused("tls_wrong_identity") > before["tls_wrong_identity"]
               and refused("tls_wrong_cluster") > before["tls_wrong_cluster"], 10,
               "both refusals counted at replica-0")
