"""`paxosctl soak`: load and faults against a running cluster, then a verdict.

Clients keep `concurrency` proposals in flight for `duration` seconds
while a killer sends SIGKILL to an agent every `kill_every` seconds (in
turn across the agents, the current leader every third time) and the agents
injects the chaos asked for. Then the faults stop, the cluster is given
time to heal and catch up, and the history of every proposal goes
through `paxosctl.history.check` against the decided log.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from .client import Client
from .errors import PaxosctlError
from .history import Operation, Report, check


@dataclass(slots=True)
class SoakResult:
    kills: int
    report: Report
    seconds: float
    problems: list[str]

    def summary(self) -> str:
        return f"kills: {self.kills}, {self.report.summary()}"

    @property
    def ok(self) -> bool:
        return self.report.ok and not self.problems


def soak(client: Client, *, duration: float, kill_every: float | None,
         chaos: dict[str, Any], concurrency: int = 8, timeout: float = 10.0,
         settle: float = 60.0, seed: int = 0,
         progress: Callable[[str], None] | None = None) -> SoakResult:
    """Run the soak; raise PaxosctlError if the cluster cannot be driven at all."""
    rng = random.Random(seed)
    prefix = f"soak-{uuid.uuid4().hex[:8]}-"
    history: list[Operation] = []
    lock = threading.Lock()
    stop = threading.Event()
    kills = 0
    problems: list[str] = []
    counter = itertools.count()
    slots = threading.BoundedSemaphore(concurrency)
    started = time.monotonic()
    clock = time.monotonic

    if chaos:
        client.request("chaos", **chaos)

    def launch() -> None:
        n = next(counter)
        op = Operation(f"{prefix}{n}", f"soak value {n}", clock())
        with lock:
            history.append(op)
        future = client.propose_async(op.value, request_id=op.request_id, timeout=timeout)

        def done(f: Any) -> None:
            try:
                decision = f.result()
            except PaxosctlError:
                pass  # timed out, or the connection went: outcome unknown
            else:
                op.acked, op.slot, op.index = clock(), decision.slot, decision.index
            slots.release()

        future.add_done_callback(done)

    def killer() -> None:
        nonlocal kills
        names = [a.name for a in client.status().agents]
        turn = 0
        while not stop.wait(kill_every):
            turn += 1
            target = None
            if turn % 3 == 0:
                target = client.status().leader
            target = target or names[(turn + rng.randrange(len(names))) % len(names)]
            try:
                client.kill(target)
                kills += 1
            except PaxosctlError:
                pass  # not running right now (restarting): no kill this turn

    thread = None
    if kill_every:
        thread = threading.Thread(target=killer, name="soak-killer", daemon=True)
        thread.start()
    next_report = started + 5
    try:
        while clock() - started < duration:
            if slots.acquire(timeout=0.5):
                launch()
            if progress and clock() >= next_report:
                next_report += 5
                with lock:
                    acked = sum(1 for op in history if op.acked is not None)
                progress(f"{clock() - started:.0f}s: {len(history)} proposed, {acked} "
                         f"acknowledged, {kills} kills")
    finally:
        stop.set()
        if thread is not None:
            thread.join()
        if chaos:
            client.request("chaos", heal=True)
    # Let every proposal in flight finish (decided or timed out).
    for _ in range(concurrency):
        slots.acquire(timeout=timeout + 30)

    # Heal: every agent running, a leader, and learners caught up.
    deadline = clock() + settle
    highest = max((op.slot for op in history if op.slot is not None), default=-1)
    while True:
        status = client.status()
        healthy = (status.healthy
                   and (-1 if status.decided_up_to is None else status.decided_up_to) >= highest)
        if healthy:
            break
        if clock() > deadline:
            problems.append(f"the cluster did not heal within {settle:.0f}s: "
                            f"leader {status.leader}, decided up to {status.decided_up_to}, "
                            f"not running: {[a.name for a in status.agents if not a.running]}")
            break
        time.sleep(0.2)
    log = [e.to_dict() for e in client.decided(0)]
    others = frozenset(e["request_id"] for e in log
                       if e.get("request_id") and not e["request_id"].startswith(prefix))
    report = check(history, log, others=others)
    return SoakResult(kills, report, clock() - started, problems + report.problems())
