"""What `paxosctl agent` leaves in a state dir is the cluster's by name
(paxosctl.layout), so `down --purge` removes it and nothing else."""

from __future__ import annotations

import signal

import pytest

from clusters import manifest_text
from harness import Agents

from paxosctl.layout import SUPERVISOR_FILES, agent_files, is_cluster_file

BASES = frozenset(SUPERVISOR_FILES) | frozenset(f for n in ("replica-0",) for f in agent_files(n))


def test_every_file_a_standalone_agent_leaves_is_the_clusters(tmp_short):
    agents = Agents(tmp_short, manifest_text("replicas", "names", state_dir="st"))
    try:
        assert agents.start("replica-0").stop(signal.SIGTERM) == 0
    finally:
        agents.close()
    state_dir = tmp_short / "st"
    left = {p.relative_to(state_dir).as_posix() for p in state_dir.rglob("*") if p.is_file()}
    assert "run/replica-0.lock" in left and "run/endpoints.json" in left
    assert {f for f in left if not is_cluster_file(f, BASES)} == set()


@pytest.mark.parametrize("name, ours", [
    ("run/endpoints.json.4242.tmp", True),   # a write cut short, by process 4242
    ("run/endpoints.json.tmp", True),
    ("run/endpoints.json.x.tmp", False),
    ("run/replica-0.lock", True),
    ("run/replica-0.lockfile", False),
])
def test_names_beside_the_clusters_files(name, ours):
    assert is_cluster_file(name, BASES) is ours
