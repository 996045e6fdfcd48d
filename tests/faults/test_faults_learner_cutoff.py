"""A client whose learner is cut off from the other agents follows another.

Chaos partitions act between agents only: a client still reaches the
learner cut off, which is alive and answers, but learns nothing new. A
client that kept following it would wait for answers that never come
(each proposal ending in `ProposalTimeout`, exit 124) while the rest of
the cluster decides. The test cuts off exactly the learner the client
follows, so it never depends on which learner the client picked.
"""

from __future__ import annotations

import time

from paxosctl.tools.history import Operation

from .harness import FaultCluster, describe, verify

#: Proposals made while the learner is cut off.
PROPOSALS = 20
#: Seconds they may take in all: a few stall periods (2 x retry_seconds,
#: 2.4 s with the default 300 ms election timeout), well under `TIMEOUT`.
DEADLINE = 10.0
#: Each proposal's own timeout: past it, it would fail with ProposalTimeout.
TIMEOUT = 12.0


def test_a_client_leaves_a_learner_cut_off_from_the_other_agents(fault_clusters) -> None:
    cluster = fault_clusters("replicas")  # every replica is a learner, the leader too
    client = cluster.client()
    data = client.data()
    warm = client.propose("warm-up", request_id="cutoff-warm", fresh=True, timeout=10)
    followed = data.following
    assert followed in cluster.learners, followed

    result = cluster.run("chaos", "--partition", followed)
    assert result.returncode == 0, describe(result)
    start = time.monotonic()
    history = [Operation(f"cutoff-{n}", f"value {n}", time.monotonic()) for n in range(PROPOSALS)]
    futures = [client.propose_async(op.value, request_id=op.request_id, fresh=True,
                                    timeout=TIMEOUT) for op in history]
    for op, future in zip(history, futures):
        decision = future.result(TIMEOUT + 10)  # ProposalTimeout if it stayed on `followed`
        assert (decision.request_id, decision.value) == (op.request_id, op.value.encode())
        op.slot, op.index, op.acked = decision.slot, decision.index, time.monotonic()
    elapsed = time.monotonic() - start
    assert elapsed < DEADLINE, f"{PROPOSALS} proposals took {elapsed:.1f}s with {followed} cut off"
    assert data.following not in (None, followed), data.following

    result = cluster.run("chaos", "--heal")
    assert result.returncode == 0, describe(result)
    # Each acknowledged once, at the position the decided log holds, none lost.
    report, _ = verify(cluster, history, timeout=30, others=frozenset({warm.request_id}))
    assert report.acknowledged == PROPOSALS, report.summary()
