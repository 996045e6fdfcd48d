"""Shared fixtures: real clusters (one OS process per agent) in fresh temp folders.

    def test_something(make_cluster):
        cluster = make_cluster("roles")            # written, `paxosctl up -d`, healthy
        result = cluster.run("status", "-o", "json")
        with cluster.client() as client: ...

Every cluster a test starts is torn down afterwards, whatever happened:
`paxosctl down` first, then, as a last resort, SIGKILL to every process
that belongs to it (the supervisor, its descendants, and any process
whose command line names the cluster's unique temp folder: agents are
forked from a forkserver started there). Nothing leaks between tests.

Waiting is always `wait_until(predicate, timeout, what)`: poll a condition
against a deadline, never sleep and hope.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
from hypothesis import settings as hypothesis_settings

from paxosctl import Client
from paxosctl.client import json_value
from paxosctl.manifest import toml_value
from paxosctl.pidfile import running_supervisor

# A test run started in the background of a non-interactive shell inherits
# SIGINT ignored, and so would every process it starts: tests that press
# Ctrl-C (SIGINT) on a child would then wait forever. Handle it here, so
# children start with the default (handled signals reset at exec).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Property tests draw the same examples on every run (CI, and anyone's
# machine): a failure found once is found again. `HYPOTHESIS_PROFILE=explore`
# draws fresh ones, to look for new failures by hand.
hypothesis_settings.register_profile("ci", derandomize=True)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: The console script of the venv running the tests.
PAXOSCTL = str(Path(sys.executable).parent / "paxosctl")

#: The two ways to lay out a cluster.
TOPOLOGIES = ("roles", "replicas")

#: Agents per topology, in manifest order.
AGENTS = {
    "roles": ("proposer-0", "proposer-1", "acceptor-0", "acceptor-1", "acceptor-2",
              "learner-0", "learner-1"),
    "replicas": ("replica-0", "replica-1", "replica-2"),
}

#: The groups of each topology: [agents.<group>] role and replicas.
GROUPS = {
    "roles": {"proposer": ("proposer", 2), "acceptor": ("acceptor", 3), "learner": ("learner", 2)},
    "replicas": {"replica": ("replica", 3)},
}

STATES = {"running", "starting", "backoff", "fatal", "stopped"}

T = TypeVar("T")


# ----------------------------------------------------------------- waiting


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


# --------------------------------------------------------------- manifests


def manifest_text(topology: str, name: str = "test", **sections: dict[str, Any]) -> str:
    """A manifest for `topology` ("roles" or "replicas").

    Metrics are disabled unless `metrics=` says otherwise: a fixed port
    would collide between tests. Extra sections (health=, restart=,
    paxos=) are written as given.
    """
    lines = ["[cluster]", f"name = {toml_value(name)}", ""]
    for group, (role, replicas) in GROUPS[topology].items():
        lines += [f"[agents.{group}]", f"role = {toml_value(role)}", f"replicas = {replicas}", ""]
    sections.setdefault("metrics", {"enabled": False})
    for section, table in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in table.items()]
        lines.append("")
    return "\n".join(lines)


def short_tmpdir() -> Path:
    """A fresh folder with a short path (Unix socket paths must be < 108 bytes)."""
    return Path(tempfile.mkdtemp(prefix="px", dir="/tmp"))


# ------------------------------------------------------------------ clusters


@dataclass
class Cluster:
    """A cluster written into its own temp folder, driven through the real CLI."""

    dir: Path
    topology: str
    name: str
    manifest: Path
    state_dir: Path
    _clients: list[Client] = field(default_factory=list)
    #: Every agent/supervisor process seen, for the last-resort cleanup.
    _seen: dict[int, psutil.Process] = field(default_factory=dict)

    @property
    def agent_names(self) -> tuple[str, ...]:
        return AGENTS[self.topology]

    # -- the CLI --

    def run(self, *args: str, input: str | None = None, timeout: float = 60,
            with_file: bool = True) -> subprocess.CompletedProcess[str]:
        """`paxosctl ARGS -f MANIFEST` in the cluster's folder (no -f with
        `with_file=False`)."""
        if with_file:
            args = (*args, "-f", str(self.manifest))
        return paxosctl(*args, cwd=self.dir, input=input, timeout=timeout)

    def run_ok(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        result = self.run(*args, **kwargs)
        assert result.returncode == 0, describe(result)
        return result

    def up(self) -> subprocess.CompletedProcess[str]:
        """`paxosctl up -d`; asserts it served, and remembers its processes."""
        result = self.run("up", "-d", timeout=60)
        assert result.returncode == 0, describe(result)
        self.remember_processes()
        return result

    def down(self) -> subprocess.CompletedProcess[str]:
        result = self.run("down", timeout=60)
        assert result.returncode == 0, describe(result)
        return result

    # -- the Python client --

    def client(self) -> Client:
        """A new connection to the supervisor, closed at teardown."""
        client = Client.for_manifest(self.manifest)
        self._clients.append(client)
        return client

    def status(self) -> dict[str, Any]:
        with Client.for_manifest(self.manifest) as client:
            return client.status()

    def decided(self) -> list[dict[str, Any]]:
        """The decided log as `paxosctl decided -o json` shows it."""
        with Client.for_manifest(self.manifest) as client:
            return [{**e, "position": f"{e['slot']}.{e['index']}", "value": json_value(e["value"])}
                    for e in client.decided()]

    def agent(self, name: str) -> dict[str, Any]:
        return next(a for a in self.status()["agents"] if a["name"] == name)

    def healthy(self) -> dict[str, Any] | None:
        """The status if every agent runs and there is a leader, else None."""
        st = self.status()
        if st["leader"] and all(a["state"] == "running" for a in st["agents"]):
            return st
        return None

    def wait_healthy(self, timeout: float = 30) -> dict[str, Any]:
        return wait_until(self.healthy, timeout, f"cluster {self.name} to be healthy")

    # -- processes --

    def supervisor(self) -> psutil.Process | None:
        return running_supervisor(self.state_dir)

    def remember_processes(self) -> list[psutil.Process]:
        """The supervisor and all its descendants now, remembered for cleanup."""
        found = []
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
        """name -> process of every agent that has a pid now."""
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

    def owned_processes(self) -> list[psutil.Process]:
        """Every live process that belongs to this cluster, as far as we can tell."""
        me = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
        found: dict[int, psutil.Process] = {}
        for p in self.remember_processes():
            found[p.pid] = p
        for p in self._seen.values():
            if alive(p):
                found[p.pid] = p
        # Our folder's path, not a longer one that starts with it.
        marker = re.compile(re.escape(str(self.dir)) + r"(?![\w.-])")
        for p in psutil.process_iter(["cmdline"]):
            try:
                if any(marker.search(part) for part in (p.info["cmdline"] or ())):
                    found.setdefault(p.pid, p)
            except psutil.Error:
                pass
        return [p for pid, p in found.items() if pid not in me and alive(p)]

    def teardown(self) -> None:
        """Stop the cluster and make sure none of its processes is left."""
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


def paxosctl(*args: str, cwd: Path, input: str | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real `paxosctl ARGS` in `cwd`; stdin is `input` (or nothing)."""
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"}
    return subprocess.run([PAXOSCTL, *args], cwd=cwd, input=input, capture_output=True,
                          text=True, timeout=timeout, env=env, check=False,
                          stdin=subprocess.DEVNULL if input is None else None)


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """A failed command, for assertion messages."""
    return (f"{' '.join(map(str, result.args))} -> exit {result.returncode}\n"
            f"stdout: {result.stdout!r}\nstderr: {result.stderr!r}")


class ClusterFactory:
    """Writes, starts and (at `close`) tears down clusters."""

    def __init__(self) -> None:
        self.clusters: list[Cluster] = []

    def __call__(self, topology: str = "roles", *, start: bool = True, name: str = "test",
                 **sections: dict[str, Any]) -> Cluster:
        folder = short_tmpdir()
        manifest = folder / "cluster.toml"
        manifest.write_text(manifest_text(topology, name, **sections))
        cluster = Cluster(dir=folder, topology=topology, name=name, manifest=manifest,
                          state_dir=folder / ".paxosctl" / name)
        self.clusters.append(cluster)
        if start:
            cluster.up()
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


@pytest.fixture
def make_cluster() -> Iterator[ClusterFactory]:
    """A factory of clusters torn down after the test."""
    factory = ClusterFactory()
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def cluster(make_cluster: ClusterFactory) -> Cluster:
    """A running cluster with separate roles (2 proposers, 3 acceptors, 2 learners),
    for this test alone."""
    return make_cluster("roles")


@pytest.fixture
def tmp_short() -> Iterator[Path]:
    """A fresh short temp folder, removed afterwards."""
    folder = short_tmpdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
