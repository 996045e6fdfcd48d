"""`paxosctl bench`: throughput and latency of the running cluster, with context.

Load goes through the same `Client` API users have: `concurrency`
proposals in flight on one connection, each a fresh request id. The raw
throughput of a `multiprocessing.Queue` between two processes is measured
in the same run, so the figure can be read as a ratio to what this
machine can move at all (absolute figures drift on shared machines).
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from .client import Client
from .errors import PaxosctlError

#: Items the Queue measurement moves (about a third of a second here).
QUEUE_ITEMS = 100_000


def _drain(queue: Any, items: int, done: Any) -> None:
    get = queue.get
    for _ in range(items):
        get()
    done.send(b"")


def queue_limit(items: int = QUEUE_ITEMS, size: int = 16) -> float:
    """Messages per second one multiprocessing.Queue carries one way between two processes."""
    ctx = multiprocessing.get_context("forkserver")
    queue = ctx.Queue()
    done_r, done_w = ctx.Pipe(duplex=False)
    reader = ctx.Process(target=_drain, args=(queue, items, done_w), daemon=True)
    reader.start()
    payload = b"x" * size
    put = queue.put
    start = time.perf_counter()
    for _ in range(items):
        put(payload)
    done_r.recv_bytes()
    seconds = time.perf_counter() - start
    reader.join(5)
    queue.close()
    return items / seconds


@dataclass(slots=True)
class BenchResult:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    queue_limit_per_s: float
    concurrency: int
    value_size: int

    @property
    def throughput_per_s(self) -> float:
        return (self.requests - self.errors) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "concurrency": self.concurrency,
            "value_size": self.value_size,
            "seconds": round(self.seconds, 3),
            "throughput_per_s": round(self.throughput_per_s, 1),
            "latency_ms": {"p50": round(self.percentile(0.50) * 1000, 3),
                           "p99": round(self.percentile(0.99) * 1000, 3),
                           "max": round(max(self.latencies, default=0.0) * 1000, 3)},
            "queue_limit_per_s": round(self.queue_limit_per_s, 1),
            "ratio_to_limit": round(self.throughput_per_s / self.queue_limit_per_s, 4)
            if self.queue_limit_per_s else None,
        }


def bench(client: Client, *, requests: int | None, duration: float | None, concurrency: int,
          value_size: int, timeout: float = 30.0,
          progress: Callable[[int], None] | None = None) -> BenchResult:
    """Propose until `requests` are done or `duration` seconds passed, `concurrency` at a time."""
    if requests is None and duration is None:
        raise PaxosctlError("bench needs --requests or --duration")
    limit = queue_limit()
    prefix = f"bench-{uuid.uuid4().hex[:8]}-"
    value = (os.urandom(value_size).hex()[:value_size]) if value_size else ""
    inflight: collections.deque = collections.deque()
    latencies: list[float] = []
    errors = 0
    sent = 0
    clock = time.perf_counter
    start = clock()
    deadline = start + duration if duration is not None else float("inf")

    def more() -> bool:
        return (requests is None or sent < requests) and clock() < deadline

    while inflight or more():
        while len(inflight) < concurrency and more():
            inflight.append((clock(), client.propose_async(
                value, request_id=f"{prefix}{sent}", timeout=timeout)))
            sent += 1
        began, future = inflight.popleft()
        try:
            future.result(timeout + 30)
            latencies.append(clock() - began)
        except PaxosctlError:
            errors += 1
        if progress is not None:
            progress(1)
    return BenchResult(sent, errors, clock() - start, latencies, limit, concurrency, value_size)
