"""Seeds that once failed, kept as regression tests (replay: see each comment)."""

import pytest

from paxos_agents.sim import COLLAPSED, SEPARATE, run_seed

# Each: (topology, seed, what broke before the fix).
REGRESSIONS = [
    # A replica leading under an old ballot learned from its own learner that
    # another leader's value won a slot it had in flight, and dropped its
    # command without proposing it again: liveness failure.
    (COLLAPSED, 849, "in-flight command lost when another leader's value won its slot"),
    (COLLAPSED, 7009, "in-flight command lost when another leader's value won its slot"),
    (COLLAPSED, 7593, "in-flight command lost when another leader's value won its slot"),
    # A leader requeued its in-flight commands on stepping down, but they were
    # still marked outstanding and so were filtered out: liveness failure.
    (SEPARATE, 15, "commands in flight dropped when the leader stepped down"),
    (SEPARATE, 5, "commands in flight dropped when the leader stepped down"),
]


@pytest.mark.parametrize(("topology", "seed", "why"), REGRESSIONS,
                         ids=[f"{t}-seed{s}" for t, s, _ in REGRESSIONS])
def test_regression_seed_passes(topology, seed, why):
    outcome = run_seed(seed, topology)
    assert outcome.kind is None, f"{why}: {outcome.detail}"
