"""Property: any seed, on any of the three topologies, runs with no safety violation and no
liveness failure. Hypothesis draws the seeds (bounded: 30 examples); a
failure prints the seed and topology, replayable with
`python -m paxos_agents.sim --seeds 1 --start SEED --topology TOPOLOGY`."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paxos_agents.sim import COLLAPSED, RETAINING, SEPARATE, run_seed


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1),
       topology=st.sampled_from([SEPARATE, COLLAPSED, RETAINING]))
def test_any_seed_runs_clean(seed, topology):
    """Guards agreement, validity, integrity, the common prefix and liveness
    (every command applied everywhere within LIVENESS_TICKS after healing)."""
    outcome = run_seed(seed, topology)
    assert outcome.kind is None, (
        f"{outcome.kind}: {outcome.detail} (step {outcome.step}); replay: python -m "
        f"paxos_agents.sim --seeds 1 --start {seed} --topology {topology}"
    )
