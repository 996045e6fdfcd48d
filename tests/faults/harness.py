"""The machinery of the fault tests: clusters in short temp folders driven
through the real CLI, a load generator that records a history of
`Operation`s, and the final verdict (heal, catch up, `check`).

Nothing here sleeps and hopes: every wait is `wait_until(predicate,
timeout, what)`, a poll against a deadline. Every cluster is torn down
whatever happened: `paxosctl down`, then SIGKILL to every process that
still belongs to it (the supervisor, its descendants, and any process
whose command line names the cluster's own temp folder: the forkserver
and the agents forked from it carry it in their `sys_path` argument).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil

from paxosctl import Client
from paxosctl.client import json_value
from paxosctl.client import RequestFailed
from paxosctl.errors import NotRunning, OutcomeUnknown, PaxosctlError, ProposalTimeout
from paxosctl.history import Operation, Report, check
from paxosctl.manifest import toml_value
from paxosctl.pidfile import running_supervisor

from conftest import alive, wait_until  # noqa: E402 - tests/ is on sys.path (pytest rootdir)

#: The console script of the venv running the tests.
PAXOSCTL = str(Path(sys.executable).parent / "paxosctl")

TOPOLOGIES = ("roles", "replicas")

#: [agents.<group>] role and replicas, per topology.
GROUPS: dict[str, dict[str, tuple[str, int]]] = {
    "roles": {"proposer": ("proposer", 2), "acceptor": ("acceptor", 3), "learner": ("learner", 2)},
    "replicas": {"replica": ("replica", 3)},
}

#: Restarts fast enough to keep up with a kill every ~100 ms.
FAST_RESTART = {"backoff_initial": "10ms", "backoff_max": "200ms", "max_restarts": 1000,
                "stable_after": "1s"}

T = TypeVar("T")


# ------------------------------------------------------------------ waiting


# ---------------------------------------------------------------- manifests


def manifest_text(topology: str, name: str = "f", *, state_dir: str | None = None,
                  groups: dict[str, tuple[str, int]] | None = None,
                  **sections: dict[str, Any]) -> str:
    """A manifest for `topology`, or for `groups` (group -> (role, replicas)).

    Metrics are off unless `metrics=` says otherwise (a fixed port would
    collide between tests and with other people's clusters).
    """
    lines = ["[cluster]", f"name = {toml_value(name)}"]
    if state_dir is not None:
        lines.append(f"state_dir = {toml_value(state_dir)}")
    lines.append("")
    for group, (role, replicas) in (groups or GROUPS[topology]).items():
        lines += [f"[agents.{group}]", f"role = {toml_value(role)}", f"replicas = {replicas}", ""]
    sections.setdefault("metrics", {"enabled": False})
    for section, table in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in table.items()]
        lines.append("")
    return "\n".join(lines)


def fault_tmpdir() -> Path:
    """A fresh folder with a short path (a Unix socket path must be < 108 bytes)."""
    return Path(tempfile.mkdtemp(prefix="pxf", dir="/tmp"))


def describe(result: subprocess.CompletedProcess) -> str:
    return (f"{' '.join(map(str, result.args))} -> exit {result.returncode}\n"
            f"stdout: {result.stdout!r}\nstderr: {result.stderr!r}")


def paxosctl(*args: str, cwd: Path, env: dict[str, str] | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real `paxosctl ARGS` in `cwd`, no standard input."""
    full_env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"}
    full_env.pop("PAXOSCTL_FAULTS", None)
    full_env.update(env or {})
    return subprocess.run([PAXOSCTL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env, stdin=subprocess.DEVNULL, check=False)


# ------------------------------------------------------------------ clusters


@dataclass
class FaultCluster:
    """A cluster in its own temp folder, driven through the real CLI."""

    dir: Path
    topology: str
    name: str
    manifest: Path
    state_dir: Path
    agent_names: tuple[str, ...]
    learners: tuple[str, ...]
    proposers: tuple[str, ...]
    acceptors: tuple[str, ...]
    _clients: list[Client] = field(default_factory=list)
    _seen: dict[int, psutil.Process] = field(default_factory=dict)

    # -- the CLI --

    def run(self, *args: str, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """`paxosctl ARGS -f MANIFEST`, in the cluster's folder."""
        return paxosctl(*args, "-f", str(self.manifest), cwd=self.dir, env=env, timeout=timeout)

    def run_ok(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        result = self.run(*args, **kwargs)
        assert result.returncode == 0, describe(result)
        return result

    def up(self, env: dict[str, str] | None = None, wait: float = 60) -> subprocess.CompletedProcess[str]:
        """`paxosctl up -d` (with `env` added to its environment, which the
        supervisor and its agents inherit); asserts it served."""
        result = self.run("up", "-d", "--wait", str(wait), env=env, timeout=wait + 30)
        self.remember_processes()
        assert result.returncode == 0, describe(result)
        return result

    def down(self) -> None:
        self.run_ok("down", timeout=60)

    # -- the Python client --

    def client(self) -> Client:
        """A new connection, closed at teardown."""
        client = Client.for_manifest(self.manifest)
        self._clients.append(client)
        return client

    def request(self, op: str, timeout: float = 10, **fields: Any) -> dict[str, Any]:
        with Client.for_manifest(self.manifest) as client:
            return client.request(op, timeout=timeout, **fields)

    def status(self) -> dict[str, Any]:
        return self.request("status")

    def decided(self) -> list[dict[str, Any]]:
        """The decided log as `paxosctl decided -o json` shows it."""
        with Client.for_manifest(self.manifest) as client:
            return [{**e, "position": f"{e['slot']}.{e['index']}", "value": json_value(e["value"])}
                    for e in client.decided()]

    def agent(self, name: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
        status = status or self.status()
        return next(a for a in status["agents"] if a["name"] == name)

    def leader(self, timeout: float = 20) -> str:
        return wait_until(lambda: self.status()["leader"], timeout, "a leader")

    def healthy(self) -> dict[str, Any] | None:
        st = self.status()
        if st["leader"] and all(a["state"] == "running" for a in st["agents"]):
            return st
        return None

    def wait_healthy(self, timeout: float = 30) -> dict[str, Any]:
        try:
            return wait_until(self.healthy, timeout, f"cluster {self.name} to be healthy")
        except AssertionError as e:
            try:
                st = self.status()
                detail = (f"leader {st['leader']}; not running: "
                          + str([(a["name"], a["state"], a.get("error")) for a in st["agents"]
                                 if a["state"] != "running"]))
            except Exception as why:  # noqa: BLE001 - only for the message
                detail = f"status failed: {why!r}"
            raise AssertionError(f"{e}; {detail}") from None

    # -- on disk --

    def state_file(self, agent: str) -> Path:
        return self.state_dir / "state" / f"{agent}.db"

    def agent_log(self, agent: str) -> Path:
        return self.state_dir / "logs" / f"{agent}.log"

    def durable_decided_up_to(self, agent: str) -> int:
        """The highest slot up to which `agent`'s state file holds every
        decision (-1: none), read from its SQLite file without writing."""
        path = self.state_file(agent)
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            slots = [s for (s,) in conn.execute("SELECT slot FROM decisions ORDER BY slot")]
        finally:
            conn.close()
        upto = -1
        for slot in slots:
            if slot != upto + 1:
                break
            upto = slot
        return upto

    def learners_caught_up(self, slot: int) -> dict[str, int] | None:
        """Every learner's decided prefix (status if it shows one, and its
        state file) if all reach `slot`, else None."""
        st = self.status()
        rows = {a["name"]: a for a in st["agents"]}
        reached: dict[str, int] = {}
        for name in self.learners:
            row = rows[name]
            if row["state"] != "running":
                return None
            if "decided_up_to" in row and (row["decided_up_to"] is None
                                           or row["decided_up_to"] < slot):
                return None
            durable = self.durable_decided_up_to(name)
            if durable < slot:
                return None
            reached[name] = durable
        if st["decided_up_to"] is None or st["decided_up_to"] < slot:
            return None
        return reached

    # -- processes --

    def supervisor(self) -> psutil.Process | None:
        return running_supervisor(self.state_dir)

    def remember_processes(self) -> list[psutil.Process]:
        """The supervisor and its descendants now, remembered for the cleanup."""
        found: list[psutil.Process] = []
        sup = self.supervisor()
        if sup is not None:
            found.append(sup)
            try:
                found += sup.children(recursive=True)
            except psutil.Error:
                pass
        for p in found:
            self._seen.setdefault(p.pid, p)
        return found

    def marked_processes(self) -> list[psutil.Process]:
        """Live processes whose command line names this cluster's folder."""
        pattern = re.compile(re.escape(str(self.dir)) + r"(?![A-Za-z0-9_])")
        me = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
        out = []
        for p in psutil.process_iter(["cmdline"]):
            try:
                if (p.pid not in me and pattern.search(" ".join(p.info["cmdline"] or ()))
                        and alive(p)):
                    out.append(p)
            except psutil.Error:
                pass
        return out

    def owned_processes(self) -> list[psutil.Process]:
        me = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
        found: dict[int, psutil.Process] = {}
        for p in [*self.remember_processes(), *self._seen.values(), *self.marked_processes()]:
            if p.pid not in me and alive(p):
                found.setdefault(p.pid, p)
        return list(found.values())

    def teardown(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()
        if self.supervisor() is not None:
            try:
                self.run("down", timeout=45)
            except subprocess.TimeoutExpired:
                pass
        leftovers = self.owned_processes()
        for p in leftovers:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass
        psutil.wait_procs(leftovers, timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def unmount(path: Path) -> None:
    """Unmount `path` (lazily if it is still busy), then remove the folder."""
    if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
    shutil.rmtree(path, ignore_errors=True)


class ClusterFactory:
    """Writes, starts and (at `close`) tears down clusters."""

    def __init__(self) -> None:
        self.clusters: list[FaultCluster] = []

    def __call__(self, topology: str = "roles", *, name: str = "f", start: bool = True,
                 env: dict[str, str] | None = None, state_dir: Path | None = None,
                 groups: dict[str, tuple[str, int]] | None = None,
                 **sections: dict[str, Any]) -> FaultCluster:
        folder = fault_tmpdir()
        manifest = folder / "cluster.toml"
        manifest.write_text(manifest_text(topology, name, groups=groups,
                                          state_dir=str(state_dir) if state_dir else None,
                                          **sections))
        groups = groups or GROUPS[topology]
        names = tuple(f"{g}-{i}" for g, (_, n) in groups.items() for i in range(n))
        roles = {f"{g}-{i}": role for g, (role, n) in groups.items() for i in range(n)}

        def playing(role: str) -> tuple[str, ...]:
            return tuple(n for n in names if roles[n] in (role, "replica"))

        cluster = FaultCluster(dir=folder, topology=topology, name=name, manifest=manifest,
                               state_dir=state_dir or folder / ".paxosctl" / name,
                               agent_names=names, learners=playing("learner"),
                               proposers=playing("proposer"), acceptors=playing("acceptor"))
        self.clusters.append(cluster)
        if start:
            cluster.up(env=env)
        return cluster

    def close(self) -> None:
        errors = []
        for cluster in reversed(self.clusters):
            try:
                cluster.teardown()
            except Exception as e:  # noqa: BLE001 - tear the others down too
                errors.append(e)
        self.clusters.clear()
        if errors:
            raise errors[0]


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

    def __init__(self, cluster: FaultCluster, prefix: str, *, threads: int = 6,
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


def verify(cluster: FaultCluster, history: list[Operation], *, timeout: float = 60,
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


def kill9(pid: int, marker: FaultCluster) -> bool:
    """SIGKILL `pid` if it still is one of `marker`'s processes; True if sent."""
    try:
        process = psutil.Process(pid)
        if str(marker.dir) not in " ".join(process.cmdline()):
            return False
        process.send_signal(signal.SIGKILL)
        return True
    except psutil.Error:
        return False
