"""Standalone agents (`paxosctl agent NAME`) as real processes, for tests/standalone.

    agents = Agents(folder, manifest_text(...))
    a = agents.start("replica-0")        # probes on 127.0.0.1, a free port it reports
    a.get("/readyz")                      # (status, one line)
    agents.close()                        # SIGKILL whatever still runs

Every agent runs `paxosctl agent NAME -f cluster.toml --http 127.0.0.1:0`
in `folder`, its stdout and stderr in files there; the port its probes got
is read from the line it prints on stderr.
"""

from __future__ import annotations

import re
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from clusters import PAXOSCTL, wait_until

_PROBES = re.compile(r"probes on http://127\.0\.0\.1:(\d+) ")


class Agent:
    """One `paxosctl agent` process."""

    def __init__(self, folder: Path, name: str, extra: tuple[str, ...]) -> None:
        self.name = name
        self.out = folder / f"{name}.{len(list(folder.glob(f'{name}.*.out')))}.out"
        self.err = self.out.with_suffix(".err")
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.process = subprocess.Popen(
                # --bootstrap: these agents make a new cluster; kept on every
                # start, as a unit file or pod spec keeps it (README).
                [PAXOSCTL, "agent", name, "-f", "cluster.toml", "--http", "127.0.0.1:0",
                 "--bootstrap", *extra],
                cwd=folder, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        self.port = 0

    def wait_for_probes(self, timeout: float = 20) -> "Agent":
        def port() -> int:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.process.returncode}: {self.stderr()!r}")
            found = _PROBES.search(self.stderr())
            return int(found.group(1)) if found else 0
        self.port = wait_until(port, timeout, f"{self.name}'s probes")
        return self

    def get(self, path: str) -> tuple[int, str]:
        """(HTTP status, body) of GET `path` on its probes."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metric(self, line_start: str) -> float | None:
        """The value of the first /metrics line starting with `line_start`."""
        _, text = self.get("/metrics")
        for line in text.splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
        return None

    def stdout(self) -> str:
        return self.out.read_text()

    def stderr(self) -> str:
        return self.err.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        """Signal it and return its exit code."""
        self.process.send_signal(sig)
        return self.process.wait(timeout)


class Agents:
    """The standalone agents of one manifest in `folder` (cluster.toml there)."""

    def __init__(self, folder: Path, manifest: str) -> None:
        self.folder = folder
        (folder / "cluster.toml").write_text(manifest)
        self.running: dict[str, Agent] = {}

    def start(self, name: str, *extra: str) -> Agent:
        agent = Agent(self.folder, name, extra).wait_for_probes()
        self.running[name] = agent
        return agent

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """`paxosctl ARGS` in the folder (its manifest is cluster.toml there)."""
        return subprocess.run([PAXOSCTL, *args], cwd=self.folder, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, check=False)

    def leader(self) -> Agent | None:
        """The running agent whose last leadership line says it leads."""
        for agent in self.running.values():
            if agent.process.poll() is not None:
                continue
            lines = [l for l in agent.stdout().splitlines()
                     if "leading with ballot" in l or "no longer leading" in l]
            if lines and "leading with ballot" in lines[-1]:
                return agent
        return None

    def close(self) -> None:
        for agent in self.running.values():
            if agent.process.poll() is None:
                agent.process.kill()
                agent.process.wait(10)


#: The replicas `warm_replicas` starts.
REPLICAS = ("replica-0", "replica-1", "replica-2")


def warm_replicas(folder: Path, cluster: str):
    """A generator for a fixture: three replicas of cluster `cluster` started
    in `folder` with no supervisor, one value decided (so a leader serves),
    closed after the test."""
    from clusters import manifest_text

    group = Agents(folder, manifest_text("replicas", cluster, state_dir="st",
                                         paxos={"election_timeout": "300ms"}))
    try:
        for name in REPLICAS:
            group.start(name)
        done = group.run("propose", "warm", "--timeout", "10")
        assert done.returncode == 0, done
        yield group
    finally:
        group.close()
