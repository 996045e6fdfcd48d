"""Seeds that once failed, kept as regression tests (replay: see each comment)."""

import pytest

from paxos_agents.sim import COLLAPSED, RETAINING, SEPARATE, run_seed

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
    # A slot holding one request id twice, copied by state transfer, was
    # logged (and counted as applied) twice by the learner that copied it:
    # the common prefix broke (its log had the entry twice).
    (RETAINING, 1513, "a request id twice in one copied slot logged twice"),
]

# With --reconfig: (topology, seed, what broke before the fix).
RECONFIG_REGRESSIONS = [
    # A restarted proposer reused a config command's request id for another
    # change: validity (and the learners' deduplication) broke.
    (SEPARATE, 2930, "one request id for two different changes"),
    (SEPARATE, 5703, "one request id for two different changes"),
    # The same change proposed twice under one request id with two stamps:
    # a restarted learner trusted the later stamp and applied it twice.
    (SEPARATE, 218, "one request id with two issued stamps"),
    (SEPARATE, 9728, "one request id with two issued stamps"),
    # A leader learned a new member's compaction point from its promise and
    # kept resending Accepts below it forever: liveness failure.
    (SEPARATE, 6435, "Accepts resent below a new member's compaction point"),
]


@pytest.mark.parametrize(("topology", "seed", "why"), REGRESSIONS,
                         ids=[f"{t}-seed{s}" for t, s, _ in REGRESSIONS])
def test_regression_seed_passes(topology, seed, why):
    outcome = run_seed(seed, topology)
    assert outcome.kind is None, f"{why}: {outcome.detail}"


@pytest.mark.parametrize(("topology", "seed", "why"), RECONFIG_REGRESSIONS,
                         ids=[f"{t}-seed{s}-reconfig" for t, s, _ in RECONFIG_REGRESSIONS])
def test_reconfig_regression_seed_passes(topology, seed, why):
    outcome = run_seed(seed, topology, reconfig=True)
    assert outcome.kind is None, f"{why}: {outcome.detail}"
