"""The machinery of the fault tests on top of the one cluster harness
(tests/clusters.py): a load generator that records a history of
`Operation`s, the final verdict (heal, catch up, `check`), and a few
fault tools (`kill9`, `FAST_RESTART`).

Nothing here sleeps and hopes: every wait is `wait_until(predicate,
timeout, what)`, a poll against a deadline.
"""

from __future__ import annotations

import itertools
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

from paxosctl import Client
from paxosctl.errors import RequestFailed
from paxosctl.errors import NotRunning, OutcomeUnknown, PaxosctlError, ProposalTimeout
from paxosctl.tools.history import Operation, Report, check

from clusters import (  # tests/ is on sys.path (pytest's rootdir conftest)
    TOPOLOGIES,
    Cluster,
    ClusterFactory,
    alive,
    describe,
    paxosctl,
    short_tmpdir,
    wait_until,
)

#: The fault tests' names for `Cluster` and `short_tmpdir`.
FaultCluster = Cluster
fault_tmpdir = short_tmpdir

# The fault tests import the cluster harness's names from here too.
__all__ = ["FAST_RESTART", "TOPOLOGIES", "ClusterFactory", "FaultCluster", "Load", "alive",
           "describe", "fault_tmpdir", "kill9", "paxosctl", "verify", "wait_until"]

#: Restarts fast enough to keep up with a kill every ~100 ms.
FAST_RESTART = {"backoff_initial": "10ms", "backoff_max": "200ms", "max_restarts": 1000,
                "stable_after": "1s"}


# ---------------------------------------------------------------------- load


class Load:
    """Client threads proposing unique request ids back to back with
    `Client.propose_async`, recording an `Operation` per proposal: invoked
    before it is sent, acked (when the reply arrived) and slot when it is
    decided; a timeout, a stop or a lost connection leaves the outcome
    unknown (acked None).

    Each thread has its own connection; one that loses it (the supervisor
    died) reconnects, pacing its attempts, until the load is stopped.
    """

    def __init__(self, cluster: Cluster, prefix: str, *, threads: int = 6,
                 timeout: float = 8.0, value: Callable[[int], str] | None = None) -> None:
        self.cluster = cluster
        self.prefix = prefix
        self.threads = threads
        self.timeout = timeout
        self.value = value or (lambda n: f"{prefix} value {n}")
        self.history: list[Operation] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._counter = itertools.count()
        self._workers: list[threading.Thread] = []


    @property
    def acked(self) -> int:
        with self._lock:
            return sum(1 for op in self.history if op.acked is not None)

    @property
    def max_acked_slot(self) -> int:
        with self._lock:
            return max((op.slot for op in self.history if op.slot is not None), default=-1)

    def start(self) -> Load:
        for t in range(self.threads):
            worker = threading.Thread(target=self._work, name=f"load-{t}", daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> list[Operation]:
        """Stop proposing; wait (bounded) for the proposals in flight; the history."""
        self._stop.set()
        for worker in self._workers:
            worker.join(self.timeout + 40)
        stuck = [w.name for w in self._workers if w.is_alive()]
        assert not stuck, f"load threads did not finish: {stuck}"
        assert not self.errors, f"load thread crashed: {self.errors[0]!r}"
        return self.history

    def wait_acked(self, count: int, timeout: float, what: str = "") -> int:
        """Wait until `count` more proposals than now are acknowledged."""
        target = self.acked + count
        return wait_until(lambda: self.acked >= target and self.acked, timeout,
                          f"{count} more acknowledged proposals{' ' + what if what else ''}")

    def _work(self) -> None:
        client: Client | None = None
        try:
            while not self._stop.is_set():
                if client is None:
                    try:
                        client = Client.for_manifest(self.cluster.manifest)
                    except PaxosctlError:
                        self._stop.wait(0.05)  # pacing the reconnects while it is down
                        continue
                n = next(self._counter)
                op = Operation(f"{self.prefix}-{n}", self.value(n), time.monotonic())
                with self._lock:
                    self.history.append(op)
                try:
                    # Each id is made here and proposed once: fresh.
                    future = client.propose_async(op.value, request_id=op.request_id, fresh=True,
                                                  timeout=self.timeout)
                except NotRunning:
                    client.close()  # the connection went before it was sent: outcome unknown
                    client = None
                    continue
                # The acknowledgement's time is when the reply arrived (on the
                # client's reader thread), not when this thread gets to it.
                arrived: list[float] = []
                future.add_done_callback(lambda f, arrived=arrived: arrived.append(time.monotonic()))
                try:
                    decision = future.result(self.timeout + 30)
                except NotRunning:
                    client.close()  # the cluster went before it was sent: surely not done
                    client = None
                    continue
                except (ProposalTimeout, TimeoutError):
                    continue  # outcome unknown: it may still be decided
                except OutcomeUnknown:
                    client.close()  # the connection went, or the cluster stopped: unknown too
                    client = None
                    continue
                except RequestFailed as e:
                    raise AssertionError(f"{op.request_id}: unexpected refusal {e.reply}")
                assert decision.request_id == op.request_id, decision
                assert decision.value == op.value.encode(), (decision, op)
                # (The callback may run just after result() returns: then now.)
                acked = arrived[0] if arrived else time.monotonic()
                with self._lock:
                    op.slot, op.index, op.acked = decision.slot, decision.index, acked
        except BaseException as e:  # noqa: BLE001 - reported by stop()
            self.errors.append(e)
        finally:
            if client is not None:
                client.close()


# ------------------------------------------------------------------- verdict


def verify(cluster: Cluster, history: list[Operation], *, timeout: float = 60,
           need_all_running: bool = True,
           others: frozenset[str] = frozenset()) -> tuple[Report, list[dict[str, Any]]]:
    """Wait until the cluster healed (every agent running, a leader) and
    every learner caught up to the highest acknowledged slot; then check
    `history` against the decided log. Returns the report and the log;
    asserts it is ok, with nothing lost or duplicated, and nothing decided
    that neither `history` nor `others` (request ids the test proposed
    outside the history, e.g. a warm-up) accounts for."""
    highest = max((op.slot for op in history if op.slot is not None), default=-1)
    if need_all_running:
        cluster.wait_healthy(timeout)
    wait_until(lambda: cluster.learners_caught_up(max(highest, 0)) if highest >= 0 else True,
               timeout, f"every learner to catch up to slot {highest}")
    log = cluster.decided()
    report = check(history, log, others=others)
    assert report.ok, "\n".join(report.problems()[:30])
    assert not report.lost and not report.duplicated, report.summary()
    # In slot order. (Slots may be missing: a slot that only re-decided
    # commands applied before adds nothing to the log.)
    slots = [e["slot"] for e in log]
    assert slots == sorted(slots), "decided log out of slot order"
    return report, log


def kill9(pid: int, marker: Cluster) -> bool:
    """SIGKILL `pid` if it still is one of `marker`'s processes; True if sent."""
    try:
        process = psutil.Process(pid)
        if not marker.marks(process):
            return False
        process.send_signal(signal.SIGKILL)
        return True
    except psutil.Error:
        return False
