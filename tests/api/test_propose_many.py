"""`propose_many` (Client and AsyncClient) and the request ids behind it.

On real clusters: a batch larger than the leader's slot batch is decided in
several slots and comes back in order with its ids; a batch interrupted by
a leader kill ends with every value decided exactly once (the unknown ones
retried by id). Without sockets: a batch over the agents' frame limit goes
out in several PROPOSE frames, each within it. With a real fork: a child
never repeats its parent's request ids; threads never share one.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import threading
import time
from collections import Counter
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from paxos_agents.runtime import clientwire as wire
from paxos_agents.runtime import frames
from paxosctl import AsyncClient, ProposalTimeout, UsageError
from paxosctl.client import ids as ids_module
from paxosctl.client.ids import RequestIds, new_request_id
from paxosctl.client.results import Decision, Proposed
from paxosctl.client.tracker import (MAX_BATCH, LearnerLink, Request, RequestState, Tracker,
                                     resolve)

from clusters import Cluster, ClusterFactory

#: The leader's commands per slot at most (`[paxos] batch`, examples/cluster.toml's and the default).
SLOT_BATCH = 64
ID = re.compile(r"[0-9a-f]{32}")


def check_in_order(values: list[bytes], results: list[Proposed]) -> list[Decision]:
    """Every result decided, in the order of `values`, under its own request id."""
    assert [p.value for p in results] == values
    decisions = [p.result() for p in results]
    assert [d.value for d in decisions] == values
    assert [d.request_id for d in decisions] == [p.request_id for p in results]
    assert len({p.request_id for p in results}) == len(values)
    assert all(ID.fullmatch(p.request_id) for p in results)
    return decisions


def check_log(client: Any, start: int, decisions: list[Decision]) -> None:
    """Each decision is in the decided log at its position, once."""
    log = client.decided(start)
    by_id = Counter(e.request_id for e in log)
    at = {e.request_id: e for e in log}
    for d in decisions:
        assert by_id[d.request_id] == 1, d.request_id
        assert (at[d.request_id].slot, at[d.request_id].index, at[d.request_id].value) == \
            (d.slot, d.index, d.value)


# ------------------------------------------------------------ live clusters


def test_a_batch_larger_than_a_slot_is_decided_over_several_slots_in_order(
        api_cluster: Cluster) -> None:
    api_cluster.wait_healthy()
    values = [f"many-{i}".encode() for i in range(5 * SLOT_BATCH + 7)]
    with api_cluster.client() as client:
        start = client.propose(b"before the batch").slot
        results = client.propose_many(values, timeout=30)
        decisions = check_in_order(values, results)
        assert len({d.slot for d in decisions}) >= 6  # 327 commands, 64 a slot at most
        assert len({d.position for d in decisions}) == len(values)
        check_log(client, start, decisions)
        # Nothing to propose: nothing sent, an empty answer.
        assert client.propose_many([]) == []


def test_the_async_client_proposes_many_in_order(api_cluster: Cluster) -> None:
    api_cluster.wait_healthy()
    values = [f"async-many-{i}".encode() for i in range(3 * SLOT_BATCH + 1)]

    async def main() -> list[Proposed]:
        async with AsyncClient.for_manifest(api_cluster.manifest) as client:
            return await client.propose_many(values, timeout=30)

    decisions = check_in_order(values, asyncio.run(asyncio.wait_for(main(), 60)))
    assert len({d.slot for d in decisions}) >= 4
    with api_cluster.client() as client:
        check_log(client, min(d.slot for d in decisions), decisions)


def test_a_bad_value_sends_none_of_the_batch(api_cluster: Cluster) -> None:
    api_cluster.wait_healthy()
    with api_cluster.client() as client:
        start = client.propose(b"before a bad batch").slot
        with pytest.raises(UsageError, match="value: expected bytes or str, got int"):
            client.propose_many([b"bad batch 0", 7])
        end = client.propose(b"after a bad batch").slot
        values = [e.value for e in client.decided(start) if e.slot <= end]
        assert b"bad batch 0" not in values


def test_a_batch_interrupted_by_a_leader_kill_decides_each_value_once(
        make_cluster: ClusterFactory) -> None:
    """The leader is killed (SIGKILL) while a batch is being decided, and the
    other proposer is held stopped until the batch's deadline: the values
    decided before the kill come back decided, every other one fails with
    `ProposalTimeout` only; retried by id once the proposer runs again,
    each is decided, and the log holds every value exactly once, each
    reported decision at its position."""
    cluster = make_cluster("roles", name="batchkill", restart={"policy": "never"},
                           health={"heartbeat_timeout": "60s"})
    values = [f"kill-{i}".encode() for i in range(20000)]
    with cluster.client() as client:
        warm = client.propose(b"warm", timeout=30)
        status = client.status()
        leader = status.leader
        assert leader is not None
        standby = next(p for p in cluster.proposers if p != leader)
        leader_pid = status.agent(leader).pid
        assert leader_pid
        client.kill(standby, "STOP")  # no leader can follow until it runs again
        try:
            # The first slot of the batch is streamed: kill the leader then, on
            # the client's I/O thread, before it reads anything more (the
            # leader cannot have decided the whole batch by then).
            first = client.data().streamed(warm.slot + 1)
            first.add_done_callback(lambda _: os.kill(leader_pid, signal.SIGKILL))
            batch = client.propose_many_async(values, timeout=3)
            first.result(30)
            results = batch.result(30)
        finally:
            client.kill(standby, "CONT")
        assert [p.value for p in results] == values
        decided = [p for p in results if p.ok]
        unknown = [p for p in results if not p.ok]
        assert decided and unknown, (len(decided), len(unknown))
        assert all(isinstance(p.error, ProposalTimeout) and p.unknown
                   and p.error.request_id == p.request_id for p in unknown)
        # Retried by id: decided once, wherever the first decision was.
        retried = [f.result(60) for f in [client.propose_async(p.value, request_id=p.request_id,
                                                               timeout=30) for p in unknown]]
        assert [d.request_id for d in retried] == [p.request_id for p in unknown]
        reported = [p.result() for p in decided] + retried
        log = [e for e in client.decided(warm.slot + 1) if e.value is not None]
        counts = Counter(e.value for e in log)
        assert {v: n for v, n in counts.items() if n != 1} == {}
        assert set(counts) == set(values)
        at = {e.request_id: (e.slot, e.index, e.value) for e in log}
        assert all(at[d.request_id] == (d.slot, d.index, d.value) for d in reported)


# ------------------------------------------------------------ frame limit


def test_a_batch_over_the_frame_limit_is_split_into_frames_within_it() -> None:
    """1100 values of 64 KiB (the manifest's default max_value_bytes) are
    about 70 MiB: over an agent's frame limit (64 MiB), which would close
    the connection on every resend. They go out in several PROPOSE
    frames, each within the limit, every command once, in order."""
    tracker = Tracker(retry_seconds=1.0, retain_slots=16, started=0.0)
    tracker.on_subscribed(5)
    payload = b"x" * 65536
    maker = RequestIds()
    rids = maker.batch(1100)
    calls = []
    for rid in rids:
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()
        calls.append((Request(rid, payload, None, 10.0, 40.0, RequestState.QUEUED), future))
    resolve(tracker.add(calls))
    out = tracker.take(10.0, learner=LearnerLink.SUBSCRIBED, proposer=True)
    assert out.settled == []
    sizes = [len(f) for f in out.to_proposer]
    assert len(sizes) >= 2 and max(sizes) <= frames.MAX_FRAME_BYTES, sizes
    sent = [c for f in out.to_proposer for c in wire.decode_batch(f[1:]).commands]
    assert [c.request_id for c in sent] == rids
    assert all(len(wire.decode_batch(f[1:])) <= MAX_BATCH for f in out.to_proposer)


# ------------------------------------------------------------ request ids


def test_ids_keep_their_layout_and_sort_by_time() -> None:
    maker = RequestIds()
    batch = maker.batch(300)
    single = [new_request_id() for _ in range(300)]
    for rid in batch + single:
        assert ID.fullmatch(rid)
    assert batch == sorted(batch)  # one millisecond, counter order
    assert len(set(batch + single)) == 600
    # Milliseconds first: the 12 leading digits are the wall clock.
    now_ms = time.time_ns() // 1_000_000
    assert abs(int(single[-1][:12], 16) - now_ms) < 60_000
    # Two makers of one process: different prefixes, never the same id.
    assert maker.prefix != RequestIds().prefix


def test_a_forked_child_never_repeats_its_parents_ids(tmp_path: Path) -> None:
    """After a real fork, parent and child go on from the same counter: the
    child's new prefixes (`os.register_at_fork`) keep their ids apart."""
    maker = RequestIds()
    made_before = [new_request_id(), *maker.batch(2)]
    out = tmp_path / "child-ids"
    pid = os.fork()
    if pid == 0:  # the child: write its ids, and leave without running pytest's teardown
        code = 1
        try:
            ids = [new_request_id() for _ in range(500)] + maker.batch(500)
            out.write_text("\n".join(ids))
            code = 0
        finally:
            os._exit(code)
    parent = [new_request_id() for _ in range(500)] + maker.batch(500)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    child = out.read_text().split("\n")
    assert len(child) == 1000 and all(ID.fullmatch(rid) for rid in child)
    assert set(child).isdisjoint(parent) and set(child).isdisjoint(made_before)
    assert len(set(child)) == 1000
    # Made in the same millisecond they would still differ: the parts after
    # the time (prefix, counter) never repeat (the clock moving on is no proof).
    assert {rid[12:] for rid in child}.isdisjoint(rid[12:] for rid in parent)


def test_threads_never_get_the_same_id() -> None:
    """8 threads at once, switching as often as the interpreter allows."""
    maker = RequestIds()
    made: list[list[str]] = [[] for _ in range(8)]
    go = threading.Barrier(8)

    def work(i: int) -> None:
        go.wait()
        for _ in range(200):
            made[i] += maker.batch(5)
            made[i].append(new_request_id())
            made[i].append(maker.one())

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        sys.setswitchinterval(interval)
    every = [rid for ids in made for rid in ids]
    assert len(every) == 8 * 200 * 7
    assert len(set(every)) == len(every)


def test_the_counter_is_one_per_process() -> None:
    """Ids of two makers differ by more than their prefixes: the counter is shared."""
    a, b = RequestIds(), RequestIds()
    b.prefix = a.prefix  # even with equal prefixes (a one-in-2**48 draw)
    assert {rid[12:] for rid in a.batch(100)}.isdisjoint(rid[12:] for rid in b.batch(100))
    assert ids_module._next() < ids_module._next()


def test_a_batch_of_ids_past_2_to_the_32_wraps_the_counter_field(monkeypatch) -> None:
    """The counter is 8 hex digits: a batch whose values cross 2**32 wraps
    them there (as `one` does), so every id keeps its 32 digits."""
    start = 2**32 - 2
    monkeypatch.setattr(ids_module, "_take", lambda n: list(range(start, start + n)))
    made = RequestIds().batch(4)
    assert all(ID.fullmatch(rid) for rid in made)
    assert [rid[24:] for rid in made] == ["fffffffe", "ffffffff", "00000000", "00000001"]


# ------------------------------------------------------------ paxosctl bench --batch


def test_bench_batch_reports_both_paths(api_cluster: Cluster) -> None:
    """`--batch N`: the one-future figures keep their keys; the propose_many
    phase's stand beside them under "batch", CPU per command included."""
    api_cluster.wait_healthy()
    result = api_cluster.run_ok("bench", "--requests", "600", "--concurrency", "64",
                                "--warmup", "0", "--batch", "100", "-o", "json", timeout=120)
    data = json.loads(result.stdout)
    assert data["requests"] == 600 and data["errors"] == 0
    assert {"throughput_per_s", "latency_ms", "cpu_us_per_command"} <= set(data)
    phase = data["batch"]
    assert (phase["size"], phase["calls_in_flight"], phase["requests"], phase["errors"]) == \
        (100, 1, 600, 0)
    assert phase["throughput_per_s"] > 0 and phase["latency_ms"]["p50"] > 0
    # Measured (psutil counts CPU in 10 ms ticks: a short phase may read 0).
    assert phase["cpu_us_per_command"]["client"] is not None
    assert phase["cpu_us_per_command"]["cluster"] is not None
    assert phase["cpu_replaced"] == []
    plain = json.loads(api_cluster.run_ok("bench", "--requests", "200", "--warmup", "0",
                                          "-o", "json", timeout=120).stdout)
    assert plain["batch"] is None
    refused = api_cluster.run("bench", "--batch", "0")
    assert refused.returncode == 2 and "--batch" in refused.stderr

