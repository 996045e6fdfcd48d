"""`paxosctl agent NAME` over TCP + mutual TLS, certificates from `paxosctl certs
init`: the CLI's commands decided, and admin frames taken only from the
operator's certificate."""

from __future__ import annotations

import shutil
from typing import Iterator

import pytest

from clusters import manifest_text, short_tmpdir, wait_until
from harness import Agents

from paxos_agents.runtime.frames import EXIT_NEEDS_OPERATOR
from paxosctl.client.admin import AdminRefused, AdminTarget, send_admin
from paxosctl.endpoints import read_endpoints

REPLICAS = ("replica-0", "replica-1", "replica-2")


@pytest.fixture(scope="module")
def agents() -> Iterator[Agents]:
    folder = short_tmpdir()
    group = Agents(folder, manifest_text("replicas", "tls", state_dir="st",
                                         transport={"kind": "tls"}))
    try:
        done = group.run("certs", "init", "-f", "cluster.toml")
        assert done.returncode == 0, done
        for name in REPLICAS:
            group.start(name)
        yield group
    finally:
        group.close()
        shutil.rmtree(folder, ignore_errors=True)


def _target(agents: Agents, name: str, kind: str) -> AdminTarget:
    return AdminTarget.of(read_endpoints(agents.folder / "st" / "run", "cluster.toml"), name, kind)


def test_three_agents_over_tls_decide_what_the_cli_proposes(agents):
    run = agents.folder / "st" / "run"
    wait_until(lambda: sorted(p.name for p in run.glob("*.addr")) == [f"{n}.addr" for n in REPLICAS],
               10, "every agent's published address")
    assert not list(run.glob("*.sock")), "no plaintext endpoint once TLS is configured"
    result = agents.run("propose", "over-tls", "--timeout", "10")
    assert result.returncode == 0, result
    assert "over-tls" in result.stdout


def test_an_admin_frame_from_a_client_certificate_is_refused_and_counted(agents):
    one = agents.running["replica-2"]
    counter = 'paxos_admin_frames_refused_total{agent="replica-2",role="replica"}'
    before = wait_until(lambda: one.metric(counter) is not None and one.metric(counter) + 1, 5,
                        "the counter") - 1
    with pytest.raises(AdminRefused, match="admin frames need the operator certificate; this "
                                           r"connection has spiffe://\w+/client/client") as refused:
        send_admin(_target(agents, "replica-2", "client"), {"op": "chaos", "settings": {"drop": 1.0}})
    assert refused.value.code == "forbidden"
    wait_until(lambda: one.metric(counter) == before + 1, 5, "the refusal counted")
    assert one.metric('paxos_messages_dropped_total{agent="replica-2",reason="chaos_drop",'
                      'role="replica"}') == 0.0, "the refused frame changed nothing"


def test_an_admin_frame_from_the_operator_certificate_is_taken(agents):
    target = _target(agents, "replica-0", "operator")
    counter = 'paxos_messages_dropped_total{agent="replica-0",reason="chaos_drop",role="replica"}'
    assert agents.running["replica-0"].metric(counter) == 0.0
    assert send_admin(target, {"op": "chaos", "settings": {"drop": 0.5, "seed": 3}})["ok"]
    try:
        wait_until(lambda: agents.running["replica-0"].metric(counter), 10, "chaos drops counted")
    finally:
        send_admin(target, {"op": "chaos", "settings": {}})
    members = {"op": "members", "version": 5, "proposers": list(REPLICAS),
               "acceptors": list(REPLICAS), "learners": list(REPLICAS)}
    assert send_admin(target, members)["ok"]
    with pytest.raises(AdminRefused, match="membership version 4 is not newer than this agent's 5") as old:
        send_admin(target, {**members, "version": 4})
    assert old.value.code == "refused"


def test_the_operator_refuses_an_agent_that_is_not_the_one_dialled(agents):
    # replica-1's address, but asked for replica-0: its certificate names another agent.
    real = _target(agents, "replica-1", "operator")
    forged = AdminTarget("replica-0", real.cluster_id, address=real.address, cert=real.cert,
                         key=real.key, ca=real.ca)
    with pytest.raises(Exception, match="expected spiffe://.*/agent/replica-0"):
        send_admin(forged, {"op": "chaos", "settings": {}})


def test_a_certificate_problem_exits_78_with_one_line_naming_the_file(agents):
    key = agents.folder / "certs" / "agent" / "replica-1.key"
    key.chmod(0o644)
    try:
        # Another state dir: this one's replica-1 runs (and holds the name).
        result = agents.run("agent", "replica-1", "--state-dir", "other", "--http", "127.0.0.1:0")
    finally:
        key.chmod(0o600)
    assert result.returncode == EXIT_NEEDS_OPERATOR, result
    lines = [l for l in result.stderr.splitlines() if not l.startswith("replica-1: probes on")]
    assert len(lines) == 1 and lines[0].startswith("cannot listen over TLS: ") \
        and str(key) in lines[0], result.stderr
