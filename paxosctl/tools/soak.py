"""`paxosctl soak`: load and faults against a running cluster, then a verdict.

Clients keep `concurrency` proposals in flight for `duration` seconds
while a killer sends SIGKILL to an agent every `kill_every` seconds (in
turn across the agents, the current leader every third time), the agents
inject the chaos asked for, and, every `reconfig_every` seconds, the
acceptors change: their group grows by two, shrinks back, and every third
change one acceptor is replaced (`paxosctl scale`, `replace --force`; a
change refused because kills left too few acceptors running is counted
as skipped). Then the faults stop, the cluster is given
time to heal and catch up, and the history of every proposal goes
through `paxosctl.tools.history.check` against the decided log.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from ..client.sync import Client
from ..errors import PaxosctlError
from ..output import chaos_line
from .history import Operation, Report, check


@dataclass(slots=True)
class SoakResult:
    kills: int
    report: Report
    seconds: float
    problems: list[str]
    changes: int = 0
    skipped_changes: int = 0

    def summary(self) -> str:
        changes = (f"membership changes: {self.changes} ({self.skipped_changes} skipped), "
                   if self.changes or self.skipped_changes else "")
        return f"kills: {self.kills}, {changes}{self.report.summary()}"

    @property
    def ok(self) -> bool:
        return self.report.ok and not self.problems


def soak(client: Client, *, duration: float, kill_every: float | None,
         chaos: dict[str, Any], concurrency: int = 8, timeout: float = 10.0,
         settle: float = 60.0, seed: int = 0, reconfig_every: float | None = None,
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
        active = client.request("chaos", **chaos).get("chaos", {})
        if progress:
            progress(chaos_line(active))  # what the agents were told, as they hold it

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

    changes = skipped = 0

    def reconfigurer() -> None:
        nonlocal changes, skipped
        acceptors = [a.name for a in client.status().agents if a.role in ("acceptor", "replica")]
        group = acceptors[0].rsplit("-", 1)[0]
        base = sum(1 for n in acceptors if n.rsplit("-", 1)[0] == group)
        turn = 0
        while not stop.wait(reconfig_every):
            turn += 1
            try:
                if turn % 3 == 0:
                    members = [a.name for a in client.status().agents
                               if a.name.rsplit("-", 1)[0] == group]
                    client.request("replace", agent=rng.choice(members), force=True, wait=30,
                                   timeout=40)
                else:
                    client.request("scale", group=group, replicas=base + 2 if turn % 3 == 1 else base,
                                   wait=30, timeout=40)
                changes += 1
            except PaxosctlError:
                skipped += 1  # refused (too few acceptors running now) or slow: the next turn
        if turn % 3 == 1:  # leave the group as it was
            # Once the change in progress, if any, is done: a turn's change that
            # was refused as slow goes on in the background, and a second one
            # is refused while it runs ("in progress"), whatever its wait.
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.request("scale", group=group, replicas=base, wait=60, timeout=70)
                    break
                except PaxosctlError as e:
                    if "in progress" not in str(e) or time.monotonic() >= deadline:
                        problems.append(f"could not scale {group} back to {base}: {e}")
                        break
                    time.sleep(0.2)

    def killer() -> None:
        nonlocal kills
        turn = 0
        while not stop.wait(kill_every):
            turn += 1
            names = [a.name for a in client.status().agents]  # changes with the membership
            target = None
            if turn % 3 == 0:
                target = client.status().leader
            target = target or names[(turn + rng.randrange(len(names))) % len(names)]
            try:
                client.kill(target)
                kills += 1
            except PaxosctlError:
                pass  # not running right now (restarting): no kill this turn

    threads = []
    if kill_every:
        threads.append(threading.Thread(target=killer, name="soak-killer", daemon=True))
    if reconfig_every:
        threads.append(threading.Thread(target=reconfigurer, name="soak-reconfig", daemon=True))
    for thread in threads:
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
                         f"acknowledged, {kills} kills, {changes} membership changes")
    finally:
        stop.set()
        for thread in threads:
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
    return SoakResult(kills, report, clock() - started, problems + report.problems(),
                      changes, skipped)
