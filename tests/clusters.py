"""The one cluster harness: real clusters (one OS process per agent), each
in its own short temp folder, driven through the real CLI and the Python
`Client`. The fixtures of tests/conftest.py (`make_cluster`, `cluster`,
`tmp_short`) and the fault tests (tests/faults/) both build on it.

    factory = ClusterFactory()
    cluster = factory("roles", restart={...})   # written, `paxosctl up -d`, serving
    result = cluster.run("status", "-o", "json")
    factory.close()                             # every cluster torn down

Every cluster is torn down whatever happened: `paxosctl down` first, then,
as a last resort, SIGKILL to every process that still belongs to it (the
supervisor, its descendants, and any process whose command line names the
cluster's own temp folder: the forkserver and the agents forked from it
carry it in their `sys_path` argument). Nothing leaks between tests.

Waiting is always `wait_until(predicate, timeout, what)`: poll a condition
against a deadline, never sleep and hope.

Test modules import this as `clusters` (tests/ is on sys.path: pytest puts
the rootdir conftest's folder there).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil

from paxosctl import Client
from paxosctl.client.results import json_value
from paxosctl.manifest import toml_value
from paxosctl.supervisor.pidfile import running_supervisor

#: The console script of the venv running the tests.
PAXOSCTL = str(Path(sys.executable).parent / "paxosctl")

#: The two ways to lay out a cluster.
TOPOLOGIES = ("roles", "replicas")

#: [agents.<group>] role and replicas, per topology.
GROUPS: dict[str, dict[str, tuple[str, int]]] = {
    "roles": {"proposer": ("proposer", 2), "acceptor": ("acceptor", 3), "learner": ("learner", 2)},
    "replicas": {"replica": ("replica", 3)},
}

#: The states `status` may show an agent in.
STATES = {"running", "starting", "backoff", "fatal", "stopped", "unresponsive"}

T = TypeVar("T")


# ------------------------------------------------------------------ waiting


def wait_until(predicate: Callable[[], T], timeout: float, what: str,
               interval: float = 0.05) -> T:
    """Poll `predicate` until it returns something truthy; return that.

    Exceptions from the predicate count as "not yet" (a cluster between
    states may refuse a query), but the last one is reported on timeout.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    last_value: Any = None
    while True:
        try:
            last_value = predicate()
            if last_value:
                return last_value
        except Exception as e:  # noqa: BLE001 - reported below
            last_error = e
        if time.monotonic() >= deadline:
            detail = f"; last error: {last_error!r}" if last_error else f"; last value: {last_value!r}"
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)


def alive(process: psutil.Process) -> bool:
    """True if `process` (the very one: pid and create time) still runs."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# ---------------------------------------------------------------- manifests


def manifest_text(topology: str, name: str = "test", *, state_dir: str | None = None,
                  groups: dict[str, tuple[str, int]] | None = None,
                  **sections: dict[str, Any]) -> str:
    """A manifest for `topology` ("roles" or "replicas"), or for `groups`
    (group -> (role, replicas)) where given.

    Metrics are off unless `metrics=` says otherwise: a fixed port would
    collide between tests and with other people's clusters. Extra sections
    (health=, restart=, paxos=, ...) are written as given.
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


def short_tmpdir() -> Path:
    """A fresh folder with a short path (a Unix socket path must be < 108 bytes)."""
    return Path(tempfile.mkdtemp(prefix="px", dir="/tmp"))


# ---------------------------------------------------------------------- CLI


def paxosctl(*args: str, cwd: Path, input: str | None = None, env: dict[str, str] | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real `paxosctl ARGS` in `cwd`; stdin is `input` (or nothing).

    `env` is added to the test run's environment, less PAXOSCTL_FAULTS:
    fault injection reaches a command only when a test passes it here.
    """
    full_env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"}
    full_env.pop("PAXOSCTL_FAULTS", None)
    full_env.update(env or {})
    return subprocess.run([PAXOSCTL, *args], cwd=cwd, input=input, capture_output=True,
                          text=True, timeout=timeout, env=full_env, check=False,
                          stdin=subprocess.DEVNULL if input is None else None)


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """A failed command, for assertion messages."""
    return (f"{' '.join(map(str, result.args))} -> exit {result.returncode}\n"
            f"stdout: {result.stdout!r}\nstderr: {result.stderr!r}")


# ------------------------------------------------------------------ clusters


def _test_run_and_parents() -> set[int]:
    """This process and its ancestors: never a cluster's to kill."""
    return {os.getpid(), *(p.pid for p in psutil.Process().parents())}


@dataclass
class Cluster:
    """A cluster written into its own temp folder, driven through the real CLI."""

    dir: Path
    topology: str
    name: str
    manifest: Path
    state_dir: Path
    #: group -> (role, replicas), as in the manifest.
    groups: dict[str, tuple[str, int]]
    _clients: list[Client] = field(default_factory=list)
    #: Every supervisor/agent process seen, for the last-resort cleanup.
    _seen: dict[int, psutil.Process] = field(default_factory=dict)

    # -- agents, from the manifest --

    @property
    def agent_names(self) -> tuple[str, ...]:
        """Every agent, in manifest order."""
        return tuple(f"{group}-{i}" for group, (_, n) in self.groups.items() for i in range(n))

    @property
    def learners(self) -> tuple[str, ...]:
        return self._playing("learner")

    @property
    def proposers(self) -> tuple[str, ...]:
        return self._playing("proposer")

    @property
    def acceptors(self) -> tuple[str, ...]:
        return self._playing("acceptor")

    def _playing(self, role: str) -> tuple[str, ...]:
        """The agents that play `role`: its own group's, and every replica."""
        return tuple(f"{group}-{i}" for group, (group_role, n) in self.groups.items()
                     if group_role in (role, "replica") for i in range(n))

    # -- the CLI --

    def run(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 60, with_file: bool = True) -> subprocess.CompletedProcess[str]:
        """`paxosctl ARGS --file MANIFEST` in the cluster's folder (no -f with
        `with_file=False`); see `paxosctl` for `input` and `env`."""
        if with_file:
            args = (*args, "--file", str(self.manifest))
        return paxosctl(*args, cwd=self.dir, input=input, env=env, timeout=timeout)

    def run_ok(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        result = self.run(*args, **kwargs)
        assert result.returncode == 0, describe(result)
        return result

    def up(self, env: dict[str, str] | None = None, wait: float = 60) -> subprocess.CompletedProcess[str]:
        """`paxosctl up -d --wait WAIT` (with `env` added to its environment,
        which the supervisor and its agents inherit); asserts it served.
        Its processes are remembered for the cleanup even when it did not."""
        result = self.run("up", "-d", "--wait", str(wait), env=env, timeout=wait + 30)
        self.remember_processes()
        assert result.returncode == 0, describe(result)
        return result

    def down(self) -> subprocess.CompletedProcess[str]:
        return self.run_ok("down", timeout=60)

    # -- the Python client --

    def client(self) -> Client:
        """A new connection to the supervisor, closed at teardown."""
        client = Client.for_manifest(self.manifest)
        self._clients.append(client)
        return client

    def request(self, op: str, timeout: float = 10, **fields: Any) -> dict[str, Any]:
        """One request on a connection of its own; the reply."""
        with Client.for_manifest(self.manifest) as client:
            return client.request(op, timeout=timeout, **fields)

    def status(self) -> dict[str, Any]:
        return self.request("status")

    def decided(self) -> list[dict[str, Any]]:
        """The decided log as `paxosctl decided -o json` shows it."""
        with Client.for_manifest(self.manifest) as client:
            return [{**e.to_dict(), "value": json_value(e.value)} for e in client.decided()]

    def agent(self, name: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
        """`name`'s row of `status` (by default, of a status asked now)."""
        status = status or self.status()
        return next(a for a in status["agents"] if a["name"] == name)

    def leader(self, timeout: float = 20) -> str:
        return wait_until(lambda: self.status()["leader"], timeout, "a leader")

    def healthy(self) -> dict[str, Any] | None:
        """The status if every agent runs and there is a leader, else None."""
        st = self.status()
        if st["leader"] and all(a["state"] == "running" for a in st["agents"]):
            return st
        return None

    def wait_healthy(self, timeout: float = 30) -> dict[str, Any]:
        """The status once healthy; on timeout, says which agents are not running."""
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
        # The learners the cluster runs (after `scale` or `replace`, not the manifest's names).
        for name in [n for n, row in rows.items() if row["role"] in ("learner", "replica")]:
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
        """The supervisor and all its descendants now, remembered for the cleanup."""
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

    def agent_processes(self) -> dict[str, psutil.Process]:
        """name -> process of every agent that has a pid now (remembered too)."""
        out = {}
        for a in self.status()["agents"]:
            if a["pid"] is not None:
                try:
                    p = psutil.Process(a["pid"])
                except psutil.Error:
                    continue
                out[a["name"]] = p
                self._seen.setdefault(p.pid, p)
        return out

    def names_dir(self, cmdline: Iterable[str]) -> bool:
        """True if a part of `cmdline` names this cluster's folder (the
        folder itself or a path inside it, not a longer name that starts
        with it)."""
        marker = re.compile(re.escape(str(self.dir)) + r"(?![\w.-])")
        return any(marker.search(part) for part in cmdline)

    def marks(self, process: psutil.Process) -> bool:
        """True if `process` is marked as this cluster's: its command line
        names the folder (the supervisor: its manifest), or it runs in it
        (the agents: the CLI runs `up` in the cluster's folder, and the
        forkserver's children keep that working folder; their command line
        is the forkserver's, which names no folder). Raises psutil.Error
        if the process is gone."""
        if self.names_dir(process.cmdline()):
            return True
        cwd = process.cwd()
        return cwd == str(self.dir) or cwd.startswith(str(self.dir) + os.sep)

    def marked_processes(self) -> list[psutil.Process]:
        """Live processes marked as this cluster's (see `marks`)."""
        me = _test_run_and_parents()
        out = []
        for p in psutil.process_iter():
            try:
                if p.pid not in me and self.marks(p) and alive(p):
                    out.append(p)
            except psutil.Error:
                pass
        return out

    def owned_processes(self) -> list[psutil.Process]:
        """Every live process that belongs to this cluster, as far as we can
        tell: the supervisor's family now, any process seen before, and the
        marked ones."""
        me = _test_run_and_parents()
        found: dict[int, psutil.Process] = {}
        for p in [*self.remember_processes(), *self._seen.values(), *self.marked_processes()]:
            if p.pid not in me and alive(p):
                found.setdefault(p.pid, p)
        return list(found.values())

    def teardown(self) -> None:
        """Stop the cluster, SIGKILL whatever of it is left, remove its folder."""
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


class ClusterFactory:
    """Writes, starts and (at `close`) tears down clusters."""

    def __init__(self) -> None:
        self.clusters: list[Cluster] = []

    def __call__(self, topology: str = "roles", *, name: str = "test", start: bool = True,
                 env: dict[str, str] | None = None, state_dir: Path | None = None,
                 groups: dict[str, tuple[str, int]] | None = None,
                 transport: str = "unix", **sections: dict[str, Any]) -> Cluster:
        """A cluster of `topology` (or of `groups`) named `name`, its manifest
        written with `sections`; started unless `start=False`, with `env`
        added to the supervisor's environment. Its state lives in the
        cluster's folder (.paxosctl/NAME) unless `state_dir` says where.
        `transport="tls"`: TCP + mutual TLS, its certificates made by a real
        `paxosctl certs init` (in certs/ beside the manifest) first."""
        folder = short_tmpdir()
        manifest = folder / "cluster.toml"
        if transport != "unix":
            sections = {**sections, "transport": {"kind": transport, **sections.get("transport", {})}}
        manifest.write_text(manifest_text(topology, name, groups=groups,
                                          state_dir=str(state_dir) if state_dir else None,
                                          **sections))
        cluster = Cluster(dir=folder, topology=topology, name=name, manifest=manifest,
                          state_dir=state_dir or folder / ".paxosctl" / name,
                          groups=groups or GROUPS[topology])
        self.clusters.append(cluster)
        if transport == "tls":
            cluster.run_ok("certs", "init")
        if start:
            cluster.up(env=env)
        return cluster

    def close(self) -> None:
        """Tear down every cluster, the last made first; raise the first error."""
        errors = []
        for cluster in reversed(self.clusters):
            try:
                cluster.teardown()
            except Exception as e:  # noqa: BLE001 - tear the others down too
                errors.append(e)
        self.clusters.clear()
        if errors:
            raise errors[0]
