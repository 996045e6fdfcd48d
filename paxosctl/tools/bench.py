"""`paxosctl bench`: throughput, latency and CPU per command of the running cluster.

Load goes through the same `Client` API users have: `concurrency`
proposals in flight, one `propose_async` call, one future and one fresh
request id per command (no batching above the API). A warm-up of
`warmup` commands runs first and is not measured. These are the headline
figures.

With `batch` (`--batch N`), the same number of commands (or for the same
`duration`) is then proposed again through `propose_many`, N values per call, as many calls in flight
as keep about `concurrency` commands in flight (one at least), and
measured the same way (CPU included) on the same cluster; its figures go
under the "batch" key, beside the headline ones, never instead. A
command's latency there is its call's: from the call to its last answer.

CPU per decided command: psutil user+system CPU of every agent process
(pids from `status()`), of the supervisor (its pid file) and of this
process, read right before the measured phase and right after its last
answer, divided by the commands decided in it (`cpu_us_per_command`; user
and system apart in `cpu_user_us_per_command` and
`cpu_system_us_per_command`). "cluster" is the agents' and the
supervisor's sum; `cpu_total_us_per_command` adds the client's: on one
machine, the sum that caps throughput. A process that ended or
was replaced meanwhile cannot be measured: its figure is None and its
name is listed in `cpu_replaced` (and the sums are None too).

The raw throughput of a `multiprocessing.Queue` between two processes is
measured in the same run, so the figure can be read as a ratio to what
this machine can move at all (absolute figures drift on shared machines).
"""

from __future__ import annotations

import collections
import inspect
import itertools
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import psutil

from ..client.sync import Client
from ..errors import PaxosctlError
from ..supervisor.pidfile import running_supervisor

#: Items the Queue measurement moves (about a third of a second here).
QUEUE_ITEMS = 100_000
#: Warm-up commands when none is asked for: this many, or a fifth of the requests if fewer.
WARMUP_DEFAULT = 2000
#: The key of the supervisor, of this process and of the sum in `cpu_us_per_command`.
SUPERVISOR, CLIENT, CLUSTER = "supervisor", "client", "cluster"


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


def default_warmup(requests: int | None) -> int:
    """The warm-up when none is given: WARMUP_DEFAULT, or a fifth of `requests` if less."""
    return WARMUP_DEFAULT if requests is None else min(WARMUP_DEFAULT, requests // 5)


# ------------------------------------------------------------------ CPU


def cpu_seconds(process: psutil.Process) -> tuple[float, float] | None:
    """(user, system) CPU seconds of `process` (the very one), None if it is gone."""
    try:
        if not process.is_running():  # also False if the pid was reused
            return None
        times = process.cpu_times()
        return times.user, times.system
    except psutil.Error:
        return None


@dataclass
class CpuFigures:
    """µs of CPU per decided command, per process name (and "cluster"): user +
    system, user, system; None where a process could not be measured."""

    total: dict[str, float | None]
    user: dict[str, float | None]
    system: dict[str, float | None]
    #: The names that could not be measured (ended, replaced, or not running at the start).
    replaced: list[str]


def _process(pid: Any) -> psutil.Process | None:
    if not isinstance(pid, int):
        return None
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


@dataclass
class CpuMeter:
    """CPU seconds of the cluster's processes and of this one, from `start` to `stop`."""

    client: Client
    state_dir: Path | None
    processes: dict[str, psutil.Process | None] = field(default_factory=dict)
    before: dict[str, tuple[float, float] | None] = field(default_factory=dict)

    def _find(self) -> dict[str, psutil.Process | None]:
        """name -> process of every agent (as `status()` names them), then the
        supervisor's; none of them for a client of agents on other hosts (a
        `DataClient`, which has no status)."""
        status = getattr(self.client, "status", None)
        found = {a.name: _process(a.pid) for a in status().agents} if callable(status) else {}
        found[SUPERVISOR] = (running_supervisor(self.state_dir)
                             if self.state_dir is not None else None)
        return found

    def start(self) -> None:
        # status() first: the request itself is not part of the measured phase.
        self.processes = self._find()
        self.processes[CLIENT] = psutil.Process()
        self.before = {name: cpu_seconds(p) if p is not None else None
                       for name, p in self.processes.items()}

    def stop(self, decided: int) -> CpuFigures:
        """µs of CPU per decided command for each process, and the names that
        could not be measured (ended, replaced, or not running at the start)."""
        after = {name: cpu_seconds(p) if p is not None else None
                 for name, p in self.processes.items()}
        # Read the CPU first, then ask which processes are the cluster's now:
        # an agent whose pid changed was replaced during the phase.
        try:
            now = self._find()
        except PaxosctlError:
            now = {}
        now[CLIENT] = self.processes[CLIENT]
        user: dict[str, float | None] = {}
        system: dict[str, float | None] = {}
        replaced: list[str] = []
        for name, process in self.processes.items():
            current = now.get(name)
            start, end = self.before.get(name), after.get(name)
            same = (process is not None and current is not None and current.pid == process.pid)
            if not same or start is None or end is None or not decided:
                user[name] = system[name] = None
                if decided:
                    replaced.append(name)
                continue
            user[name] = (end[0] - start[0]) * 1e6 / decided
            system[name] = (end[1] - start[1]) * 1e6 / decided
        total = {name: None if user[name] is None else user[name] + system[name]  # type: ignore[operator]
                 for name in user}
        # The supervisor first, then the agents in status order, then the client and the sum.
        order = [SUPERVISOR, *(k for k in user if k not in (SUPERVISOR, CLIENT)), CLIENT, CLUSTER]
        return CpuFigures(_with_cluster(total, order), _with_cluster(user, order),
                          _with_cluster(system, order), replaced)


def _with_cluster(per_process: dict[str, float | None], order: list[str]) -> dict[str, float | None]:
    """`per_process` rounded, in `order`, with CLUSTER: the sum of every
    process but the client (None if one of them is)."""
    cluster = [v for k, v in per_process.items() if k != CLIENT]
    summed = sum(cluster) if cluster and None not in cluster else None  # type: ignore[arg-type]
    figures = {**per_process, CLUSTER: summed}
    return {k: None if figures[k] is None else round(figures[k], 2)  # type: ignore[arg-type]
            for k in order}


# ----------------------------------------------------------------- bench


def value_for(client: Client, value: str | bytes) -> str | bytes:
    """`value` as the type `client.propose_async` takes: bytes if its signature
    names bytes (the data-path client), else str. A str is UTF-8."""
    annotation = inspect.signature(client.propose_async).parameters["value"].annotation
    wants_bytes = "bytes" in (annotation if isinstance(annotation, str) else repr(annotation))
    if wants_bytes:
        return value.encode("utf-8") if isinstance(value, str) else value
    return value.decode("utf-8") if isinstance(value, bytes) else value


@dataclass(slots=True)
class BenchResult:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    queue_limit_per_s: float
    concurrency: int
    value_size: int
    warmup: int = 0
    warmup_errors: int = 0
    cpu_us_per_command: dict[str, float | None] = field(default_factory=dict)
    cpu_replaced: list[str] = field(default_factory=list)
    cpu_user_us_per_command: dict[str, float | None] = field(default_factory=dict)
    cpu_system_us_per_command: dict[str, float | None] = field(default_factory=dict)
    #: The `propose_many` phase (`--batch`): its size and its own result.
    batch_size: int | None = None
    batch: BenchResult | None = None

    @property
    def decided(self) -> int:
        return self.requests - self.errors

    @property
    def throughput_per_s(self) -> float:
        return self.decided / self.seconds if self.seconds else 0.0

    @property
    def cpu_total_us_per_command(self) -> float | None:
        """The cluster's CPU per command plus the client's (None if either is unknown)."""
        cluster = self.cpu_us_per_command.get(CLUSTER)
        client = self.cpu_us_per_command.get(CLIENT)
        return None if cluster is None or client is None else round(cluster + client, 2)

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
            "warmup": self.warmup,
            "warmup_errors": self.warmup_errors,
            "cpu_us_per_command": dict(self.cpu_us_per_command),
            "cpu_user_us_per_command": dict(self.cpu_user_us_per_command),
            "cpu_system_us_per_command": dict(self.cpu_system_us_per_command),
            "cpu_total_us_per_command": self.cpu_total_us_per_command,
            "cpu_replaced": list(self.cpu_replaced),
            "batch": self.batch_dict(),
        }

    def batch_dict(self) -> dict[str, Any] | None:
        """The `propose_many` phase's figures (None without `--batch`)."""
        if self.batch is None:
            return None
        phase = self.batch.as_dict()
        keys = ("requests", "errors", "seconds", "throughput_per_s", "latency_ms",
                "cpu_us_per_command", "cpu_user_us_per_command", "cpu_system_us_per_command",
                "cpu_total_us_per_command", "cpu_replaced")
        return {"size": self.batch_size, "calls_in_flight": calls_in_flight(
                    self.concurrency, self.batch_size or 1), **{k: phase[k] for k in keys}}


def _run(client: Client, value: str | bytes, *, requests: int | None,
         deadline: float, concurrency: int, timeout: float,
         progress: Callable[[int], None] | None) -> tuple[int, int, list[float]]:
    """Keep `concurrency` proposals in flight until `requests` were sent (or
    `deadline` passed) and every one answered: (sent, errors, latencies)."""
    inflight: collections.deque = collections.deque()
    latencies: list[float] = []
    errors = 0
    sent = 0
    clock = time.perf_counter
    propose = client.propose_async

    def more() -> bool:
        return (requests is None or sent < requests) and clock() < deadline

    while inflight or more():
        while len(inflight) < concurrency and more():
            # No request id given: the client makes a fresh one per command,
            # so it is proposed at once (an id it did not make is looked up first).
            inflight.append((clock(), propose(value, timeout=timeout)))
            sent += 1
        began, future = inflight.popleft()
        try:
            future.result(timeout + 30)
            latencies.append(clock() - began)
        except PaxosctlError:
            errors += 1
        if progress is not None:
            progress(1)
    return sent, errors, latencies


def calls_in_flight(concurrency: int, batch: int) -> int:
    """`propose_many` calls of `batch` values kept in flight for `concurrency`: one at least."""
    return max(1, concurrency // batch)


def _run_batches(client: Client, value: str | bytes, *, requests: int | None,
                 deadline: float, concurrency: int, batch: int, timeout: float,
                 progress: Callable[[int], None] | None) -> tuple[int, int, list[float]]:
    """As `_run`, through `propose_many_async`, `batch` values a call."""
    inflight: collections.deque = collections.deque()
    latencies: list[float] = []
    errors = 0
    sent = 0
    clock = time.perf_counter
    propose_many = client.propose_many_async
    calls = calls_in_flight(concurrency, batch)

    def more() -> bool:
        return (requests is None or sent < requests) and clock() < deadline

    while inflight or more():
        while len(inflight) < calls and more():
            n = batch if requests is None else min(batch, requests - sent)
            inflight.append((clock(), n, propose_many([value] * n, timeout=timeout)))
            sent += n
        began, n, future = inflight.popleft()
        try:
            results = future.result(timeout + 30)
        except PaxosctlError:
            errors += n
        else:
            # Few Python steps per value: this loop's CPU counts in the
            # batch's client figure, as a caller's own would.
            decided = [p.error for p in results].count(None)
            errors += len(results) - decided
            latencies.extend(itertools.repeat(clock() - began, decided))
        if progress is not None:
            progress(n)
    return sent, errors, latencies


def bench(client: Client, *, requests: int | None, duration: float | None, concurrency: int,
          value_size: int, timeout: float = 30.0, warmup: int | None = None,
          state_dir: str | Path | None = None, batch: int | None = None,
          progress: Callable[[int], None] | None = None) -> BenchResult:
    """Propose until `requests` are done or `duration` seconds passed, `concurrency` at a time,
    after `warmup` unmeasured commands; then, with `batch`, as many again through
    `propose_many`, `batch` values a call. `state_dir` (the manifest's) finds the
    supervisor for its CPU figure; without it that figure is None."""
    if requests is None and duration is None:
        raise PaxosctlError("bench needs --requests or --duration")
    if warmup is None:
        warmup = default_warmup(requests)
    limit = queue_limit()
    value = value_for(client, os.urandom(value_size).hex()[:value_size])
    warm_errors = 0
    if warmup:
        _, warm_errors, _ = _run(client, value, requests=warmup,
                                 deadline=float("inf"), concurrency=concurrency,
                                 timeout=timeout, progress=None)
    meter = CpuMeter(client, Path(state_dir) if state_dir is not None else None)
    meter.start()
    start = time.perf_counter()
    deadline = start + duration if duration is not None else float("inf")
    sent, errors, latencies = _run(client, value, requests=requests, deadline=deadline,
                                   concurrency=concurrency, timeout=timeout, progress=progress)
    seconds = time.perf_counter() - start
    cpu = meter.stop(sent - errors)
    result = BenchResult(sent, errors, seconds, latencies, limit, concurrency, value_size,
                         warmup, warm_errors, cpu.total, cpu.replaced, cpu.user, cpu.system)
    if batch is not None:
        result.batch_size = batch
        meter.start()
        start = time.perf_counter()
        deadline = start + duration if duration is not None else float("inf")
        b_sent, b_errors, b_latencies = _run_batches(
            client, value, requests=requests, deadline=deadline, concurrency=concurrency,
            batch=batch, timeout=timeout, progress=progress)
        b_seconds = time.perf_counter() - start
        b_cpu = meter.stop(b_sent - b_errors)
        result.batch = BenchResult(b_sent, b_errors, b_seconds, b_latencies, limit,
                                   concurrency, value_size, 0, 0, b_cpu.total, b_cpu.replaced,
                                   b_cpu.user, b_cpu.system)
    return result


def cpu_table(data: dict[str, Any]) -> list[str]:
    """The text table of `as_dict()`'s CPU figures: one row per process (user
    + system, user, system), then the cluster's and the client's sum."""
    cpu = data.get("cpu_us_per_command") or {}
    user = data.get("cpu_user_us_per_command") or {}
    system = data.get("cpu_system_us_per_command") or {}
    replaced = set(data.get("cpu_replaced") or ())
    total_name = f"{CLUSTER}+{CLIENT}"
    width = max((len(k) for k in (*cpu, total_name)), default=7)
    lines = [f"{'process':<{width}}  CPU us/command    user  system"]
    for name, us in cpu.items():
        if us is not None:
            shown = f"{us:>14.2f}  {user.get(name) or 0:>6.2f}  {system.get(name) or 0:>6.2f}"
        elif name in replaced:
            shown = "- (replaced or ended during the run)"
        elif name == CLUSTER and replaced:
            shown = "- (incomplete: " + ", ".join(sorted(replaced)) + ")"
        else:
            shown = "-"
        lines.append(f"{name:<{width}}  {shown}")
    if cpu:
        total = data.get("cpu_total_us_per_command")
        lines.append(f"{total_name:<{width}}  " + (f"{total:>14.2f}" if total is not None else "-"))
    return lines
