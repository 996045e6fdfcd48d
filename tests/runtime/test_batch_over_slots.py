"""A client's batch larger than the leader's `batch` is decided whole, across
slots, each command once (core/intake.py: the batch is queued as the bytes
it arrived as and slots are slices of it).

A real cluster (one process per agent, fsync on) with `[paxos] batch = 4`;
one `propose_many` of 40 values goes out as one PROPOSE frame to the
leader. Every value comes back decided; the decided log holds each exactly
once, in the order sent, in 10 consecutive slots of 4.
"""

from __future__ import annotations

from itertools import groupby

BATCH = 4
COUNT = 40


def test_a_client_batch_larger_than_batch_is_decided_whole_across_slots(make_cluster) -> None:
    cluster = make_cluster("roles", name="overslots", paxos={"batch": BATCH})
    values = [f"over-{i}".encode() for i in range(COUNT)]
    with cluster.client() as client:
        warm = client.propose(b"warm", timeout=30)  # the client knows the leader now
        results = client.propose_many(values, timeout=30)
        assert [p.value for p in results] == values
        assert all(p.ok for p in results), [p.error for p in results if not p.ok]
        ours = [e for e in client.decided(warm.slot + 1) if e.value in set(values)]
    # Each once, in the order sent; the positions are those the client was told.
    assert [e.value for e in ours] == values
    assert [(e.slot, e.index) for e in ours] == [(p.decision.slot, p.decision.index)
                                                 for p in results]
    slots = [(slot, len(list(entries))) for slot, entries in groupby(ours, lambda e: e.slot)]
    first = slots[0][0]
    assert slots == [(first + i, BATCH) for i in range(COUNT // BATCH)], slots
