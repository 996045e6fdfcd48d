"""`paxosctl agent NAME` over Unix sockets: three agents of one manifest in one
state dir, no supervisor, driven by the real CLI (`propose`, `decided`)."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path
from typing import Iterator

import pytest

from clusters import manifest_text, wait_until
from harness import Agents

from paxos_agents.runtime.frames import EXIT_NEEDS_OPERATOR
from paxosctl.client.admin import AdminRefused, AdminTarget, send_admin
from paxosctl.endpoints import read_endpoints

#: Short: the election test measures a new leader against it.
ELECTION_TIMEOUT = 0.3
REPLICAS = ("replica-0", "replica-1", "replica-2")


@pytest.fixture
def agents(tmp_short: Path) -> Iterator[Agents]:
    group = Agents(tmp_short, manifest_text(
        "replicas", "solo", state_dir="st",
        paxos={"election_timeout": f"{int(ELECTION_TIMEOUT * 1000)}ms"}))
    try:
        yield group
    finally:
        group.close()


def _propose(agents: Agents, value: str) -> str:
    result = agents.run("propose", value, "--timeout", "10")
    assert result.returncode == 0, result
    return result.stdout


def _position(proposed: str) -> tuple[int, int]:
    """The slot and index of a `propose` line: `decided at 2.0: value (3.4 ms)`."""
    found = re.match(r"decided at (\d+)\.(\d+): ", proposed)
    assert found, proposed
    return int(found[1]), int(found[2])


def test_three_agents_decide_what_the_cli_proposes_and_keep_it_across_a_restart(agents):
    for name in REPLICAS:
        agents.start(name)
    # Positions are not asserted: a leader change at the start may decide a no-op first.
    assert ": one (" in _propose(agents, "one")
    assert ": two (" in _propose(agents, "two")
    # SIGTERM (an engine's stop) or SIGINT (Ctrl-C): a graceful end, exit 0.
    for name, sig in zip(REPLICAS, (signal.SIGTERM, signal.SIGINT, signal.SIGTERM)):
        assert agents.running[name].stop(sig) == 0, agents.running[name].stderr()
        assert "stopped" in agents.running[name].stdout()
    for name in REPLICAS:
        agents.start(name)
    assert ": three (" in _propose(agents, "three")
    log = agents.run("decided", "-o", "json")
    assert log.returncode == 0, log
    assert [entry["value"] for entry in json.loads(log.stdout)] == ["one", "two", "three"]


def test_probes_answer_and_readyz_waits_for_a_majority(agents):
    first = agents.start("replica-0")
    wait_until(lambda: first.get("/healthz") == (200, "ok\n"), 5, "a heartbeat")
    status, body = first.get("/readyz")
    assert status == 503 and body.startswith("not ready: connected to 1 of 3 acceptors"), body
    agents.start("replica-1")
    wait_until(lambda: first.get("/readyz") == (200, "ready\n"), 10, "ready with 2 of 3")
    _propose(agents, "x")
    text = first.get("/metrics")[1]
    assert 'paxos_messages_total{agent="replica-0",role="replica",type="Accepted"}' in text
    assert 'paxos_admin_frames_refused_total{agent="replica-0",role="replica"} 0.0' in text
    assert first.get("/nothing")[0] == 404


def test_admin_frames_over_the_unix_socket_are_the_owners(agents):
    for name in REPLICAS:
        agents.start(name)
    _propose(agents, "warm")
    target = AdminTarget.of(read_endpoints(agents.folder / "st" / "run", "cluster.toml"), "replica-1")
    settings = {"drop": 0.5, "seed": 7}
    assert send_admin(target, {"op": "chaos", "settings": settings}) == {"id": None, "ok": True, "op": "chaos"}
    one = agents.running["replica-1"]
    wait_until(lambda: one.metric('paxos_messages_dropped_total{agent="replica-1",'
                                  'reason="chaos_drop",role="replica"}'), 10, "chaos drops counted")
    members = {"op": "members", "version": 3, "proposers": list(REPLICAS),
               "acceptors": list(REPLICAS), "learners": list(REPLICAS)}
    assert send_admin(target, members)["ok"] is True
    with pytest.raises(AdminRefused, match="membership version 3 is not newer than this agent's 3"):
        send_admin(target, {**members, "version": 3})
    with pytest.raises(AdminRefused, match="needs a version"):
        send_admin(target, {k: v for k, v in members.items() if k != "version"})
    # A reconfiguration's refusal comes back on the connection that asked.
    with pytest.raises(AdminRefused, match="acceptors: expected a list") as refused:
        send_admin(target, {"op": "reconfig", "acceptors": "replica-0"})
    assert refused.value.code == "refused"


def test_killing_the_leader_elects_another_within_the_election_timeout(agents):
    for name in REPLICAS:
        agents.start(name)
    before = _position(_propose(agents, "before"))
    leader = wait_until(agents.leader, 5, "a leader")
    leader.stop(signal.SIGKILL)
    killed = time.monotonic()
    # No supervisor sends SUSPECT: the survivors' own election timeout notices.
    new = wait_until(agents.leader, ELECTION_TIMEOUT + 5, "another leader", interval=0.01)
    took = time.monotonic() - killed
    assert new is not leader
    assert took <= ELECTION_TIMEOUT + 1, f"a new leader after {took:.2f} s"
    # A later position, not always the next: a leader change may fill a hole
    # with a no-op ("Paxos Made Simple" §3; CI once saw `after` at 2.0). The
    # log shows each value once, in order.
    assert _position(_propose(agents, "after")) > before
    log = agents.run("decided", "-o", "json")
    assert log.returncode == 0, log
    assert [entry["value"] for entry in json.loads(log.stdout)] == ["before", "after"]


def test_an_unknown_name_or_a_bad_manifest_is_one_line_and_exit_2(agents):
    result = agents.run("agent", "replica-7", "-f", "cluster.toml", "--http", "127.0.0.1:0")
    assert result.returncode == 2, result
    assert result.stderr.strip().splitlines() == [
        "error: cluster.toml has no agent 'replica-7'; agents: replica-0, replica-1, replica-2"]
    (agents.folder / "bad.toml").write_text("[cluster]\nname = 'b'\n[agents.x]\nrole = 'boss'\n")
    result = agents.run("agent", "x-0", "-f", "bad.toml", "--http", "127.0.0.1:0")
    assert result.returncode == 2, result
    assert len(result.stderr.strip().splitlines()) == 1 and "agents.x.role" in result.stderr, result
    result = agents.run("agent", "replica-0", "--http", "nowhere")
    assert result.returncode == 2 and "--http" in result.stderr, result


def test_state_that_cannot_be_opened_exits_78_with_one_line(agents):
    store = agents.folder / "st" / "state" / "replica-0.db"
    store.parent.mkdir(parents=True)
    store.write_bytes(b"not a database, not empty either" * 100)
    result = agents.run("agent", "replica-0", "--http", "127.0.0.1:0")
    assert result.returncode == EXIT_NEEDS_OPERATOR, result
    lines = [l for l in result.stderr.splitlines() if not l.startswith("replica-0: probes on")]
    assert len(lines) == 1 and lines[0].startswith("cannot open state: "), result.stderr


def test_a_second_agent_of_the_same_name_in_one_state_dir_is_refused(agents):
    first = agents.start("replica-0")
    wait_until(lambda: (agents.folder / "st" / "run" / "replica-0.sock").exists(), 10, "its socket")
    result = agents.run("agent", "replica-0", "--http", "127.0.0.1:0")
    assert result.returncode == EXIT_NEEDS_OPERATOR, result
    assert result.stderr.strip().splitlines() == [
        f"error: replica-0 already runs in {agents.folder / 'st'} "
        f"({agents.folder / 'st' / 'run' / 'replica-0.lock'} is locked by another process): stop it first"]
    assert (agents.folder / "st" / "run" / "replica-0.sock").exists(), "the first keeps its endpoint"
    assert first.process.poll() is None


def test_every_agent_of_a_cluster_of_roles_gets_ready_from_its_real_reports(tmp_short):
    """2 proposers (one leads, one follows), 3 acceptors, 2 learners: each
    role's readiness rule, read from the reports real agents publish."""
    group = Agents(tmp_short, manifest_text("roles", "roles", state_dir="st"))
    try:
        names = ("acceptor-0", "acceptor-1", "acceptor-2", "proposer-0", "proposer-1",
                 "learner-0", "learner-1")
        for name in names:
            group.start(name)
        assert ": roles (" in _propose(group, "roles")  # at 0.0 unless a no-op came first
        for name in names:
            agent = group.running[name]
            wait_until(lambda: agent.get("/readyz") == (200, "ready\n"), 10, f"{name} ready")
    finally:
        group.close()


def test_a_state_dir_a_supervisor_runs_is_refused_with_exit_78(make_cluster):
    cluster = make_cluster("replicas")
    result = cluster.run("agent", "replica-0", "--http", "127.0.0.1:0")
    assert result.returncode == EXIT_NEEDS_OPERATOR, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: a supervisor (pid ") \
        and "paxosctl down" in lines[0], result.stderr
    cluster.run_ok("propose", "still-served")  # its agents were not disturbed


def test_up_and_purge_refuse_a_state_dir_where_an_agent_runs_on_its_own(agents):
    """`up` beside a running `paxosctl agent` would spawn a second process on
    the same store; `down --purge` would delete a running agent's files."""
    first = agents.start("replica-0")
    wait_until(lambda: (agents.folder / "st" / "run" / "replica-0.sock").exists(), 10, "its socket")
    lock = agents.folder / "st" / "run" / "replica-0.lock"
    for argv in (("up", "cluster.toml", "--detach"), ("down", "--purge")):
        result = agents.run(*argv)
        assert result.returncode == 1, (argv, result)
        assert result.stderr.strip().splitlines()[0] == (
            f"error: agent replica-0 runs on its own in {agents.folder / 'st'} (paxosctl agent; "
            f"{lock} is locked): stop it first, or give this cluster another state_dir"), result
        assert first.process.poll() is None
        assert (agents.folder / "st" / "state" / "replica-0.db").exists()
        assert not (agents.folder / "st" / "supervisor.pid").exists() or \
            "supervisor" not in agents.run("status").stdout
