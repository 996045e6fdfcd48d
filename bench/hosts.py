"""The example cluster on three network-namespace hosts over TCP + mutual TLS,
against the same cluster on one host over Unix sockets, same run (issue 22).

    sudo .venv/bin/python bench/hosts.py [--rounds 3] [--requests 20000]
                                         [--latency-requests 2000] [--failovers 3]

Needs root and iproute2 (the hosts are tests/hosts.py's namespaces on a
bridge, 192.0.2.0/24, removed at the end). Each round runs, in an order
that alternates between rounds:

- "one host, Unix": `paxosctl up -d` of examples/cluster.toml (fsync on)
  in a temporary folder, `paxosctl bench -o json` at c=256 (throughput)
  and c=1 (median latency), `down`;
- "3 hosts, TLS": examples/hosts.toml as it is, the same agents and
  settings placed on 192.0.2.1 (acceptor-0, proposer-0, learner-0), .2
  (acceptor-1, proposer-1, learner-1) and .3 (acceptor-2), each a
  `paxosctl agent NAME` process inside its host (README "On several
  hosts"), with certificates from `paxosctl certs init`; the same two
  `paxosctl bench` runs from a fourth host, "client".

Then, `--failovers` times on a fresh 3-host cluster under load from the
client host: the leader's host is cut off (its switch port down), and the
script reports how long until another agent logs "leading with ballot"
(the new leader) and until the client gets a decision again, beside the
issue's targets (election timeout + 1 s and + 2 s).

Prints medians and the ratios; figures, not verdicts: the machine is
shared, so only ratios from one run mean anything. Exit 0 when every
round produced figures, 1 when one failed (it says why).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "tests"))
sys.path.insert(0, str(HERE / "tests" / "hosts"))

from hosts import Network, why_unavailable  # noqa: E402

PY = str(HERE / ".venv" / "bin" / "python")
EXE = str(HERE / ".venv" / "bin" / "paxosctl")
DRIVER = str(HERE / "tests" / "hosts" / "driver.py")
#: examples/hosts.toml's hosts (192.0.2.1-3: the Network's h0-h2) and their agents.
PLACED = {"h0": ["acceptor-0", "proposer-0", "learner-0"],
          "h1": ["acceptor-1", "proposer-1", "learner-1"],
          "h2": ["acceptor-2"]}


def run(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"paxosctl {args[0]} exited {done.returncode}: {done.stderr.strip()[:300]}")
    return done


def example(folder: Path) -> Path:
    manifest = folder / "cluster.toml"
    manifest.write_text((HERE / "examples" / "cluster.toml").read_text()
                        .replace("127.0.0.1:9464", "127.0.0.1:0"))
    return manifest


def bench_figures(bench) -> dict[str, float]:
    """c=256 throughput and c=1 p50 of `bench(concurrency, requests)` (paxosctl bench -o json)."""
    out = bench(256, ARGS.requests)
    low = bench(1, ARGS.latency_requests)
    return {"c=256 commands/s": out["throughput_per_s"], "c=1 p50 ms": low["latency_ms"]["p50"]}


def one_host() -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="pxb"))
    manifest = example(folder)
    try:
        run("up", "-d", "--file", str(manifest), timeout=120)

        def bench(concurrency: int, requests: int) -> dict:
            return json.loads(run("bench", "--file", str(manifest), "--requests", str(requests),
                                  "--concurrency", str(concurrency), "-o", "json").stdout)
        return bench_figures(bench)
    finally:
        subprocess.run([EXE, "down", "--file", str(manifest)], capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


class Hosts:
    """The example cluster on three namespace hosts, and a client host."""

    def __init__(self) -> None:
        self.net = Network(["h0", "h1", "h2", "client"])
        self.config = Path(tempfile.mkdtemp(prefix="pxcfg", dir=self.net.folder))
        self.manifest = self.config / "hosts.toml"
        shutil.copy(HERE / "examples" / "hosts.toml", self.manifest)
        self.client = self.net["client"]
        made = self.client.run([EXE, "certs", "init", "--file", str(self.manifest)], cwd=self.config)
        assert [self.net[h].address for h in PLACED] == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
        if made.returncode != 0:
            raise RuntimeError(f"certs init: {made.stderr.strip()[:300]}")
        self.processes = {}
        for host, agents in PLACED.items():
            for name in agents:
                self.processes[name] = self.net[host].popen(
                    [EXE, "agent", name, "--file", str(self.manifest), "--state-dir",
                     str(self.net[host].volume), "--bootstrap"], cwd=self.config, log=name)
        self.wait_ready()

    def host_of(self, agent: str):
        return self.net[next(h for h, agents in PLACED.items() if agent in agents)]

    def cli(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return self.client.run([EXE, *args, "--file", str(self.manifest)], cwd=self.config,
                               timeout=timeout)

    def status(self) -> dict:
        return json.loads(self.cli("status", "-o", "json", timeout=30).stdout)

    def wait_ready(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                st = self.status()
                if st["leader"] and all(a["answered"] for a in st["agents"]):
                    return st["leader"]
            except (ValueError, KeyError, subprocess.SubprocessError):
                pass
            time.sleep(0.2)
        raise RuntimeError("the 3-host cluster did not get ready within "
                           f"{timeout:g} s; logs in {self.net.folder}")

    def bench(self, concurrency: int, requests: int) -> dict:
        done = self.cli("bench", "--requests", str(requests), "--concurrency", str(concurrency),
                        "-o", "json")
        if done.returncode != 0:
            raise RuntimeError(f"bench on the client host exited {done.returncode}: {done.stderr[:300]}")
        return json.loads(done.stdout)

    def close(self) -> None:
        self.net.close()


def three_hosts() -> dict[str, float]:
    hosts = Hosts()
    try:
        return bench_figures(hosts.bench)
    finally:
        hosts.close()


LEADING = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*leading with ballot", re.M)


def first_leading_after(logs: list[Path], moment: float) -> float | None:
    """The wall time of the first "leading with ballot" line after `moment` in `logs`."""
    found = []
    for log in logs:
        for stamp in LEADING.findall(log.read_text(errors="replace") if log.exists() else ""):
            when = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if when > moment:
                found.append(when)
    return min(found) if found else None


def failover() -> dict[str, float]:
    hosts = Hosts()
    try:
        leader = hosts.wait_ready()
        out, stop = hosts.config / "history.json", hosts.config / "stop"
        driver = hosts.client.popen([PY, DRIVER, str(hosts.manifest), str(out), "--concurrency", "32",
                                     "--stop-file", str(stop)], cwd=hosts.config, log="driver")
        acks = Path(str(out) + ".acks")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(acks.read_text().splitlines() if acks.exists() else []) < 200:
            time.sleep(0.05)
        victim = hosts.host_of(leader)
        cut_wall, cut_mono = time.time(), time.monotonic()
        victim.partition()
        down = time.monotonic()  # the link is surely down from here (`ip` took a few ms)
        # Decisions again: the first command proposed after the cut that is
        # decided (what was in flight at the cut may still be answered at
        # once: decided before it, answered just after).
        again = leading = None
        others = [hosts.net[h].log_path(a) for h, agents in PLACED.items() if hosts.net[h] is not victim
                  for a in agents if a.startswith("proposer")]
        deadline = time.monotonic() + 30
        while (again is None or leading is None) and time.monotonic() < deadline:
            for line in acks.read_text().splitlines():
                parts = line.split()
                if len(parts) == 3 and float(parts[2]) > down:
                    again = float(parts[0]) - cut_mono
                    break
            leading = first_leading_after(others, cut_wall)
            time.sleep(0.05)
        stop.touch()
        driver.wait(120)
        victim.heal()
        return {"new leader s": (leading - cut_wall) if leading else float("nan"),
                "decisions again s": again if again is not None else float("nan")}
    finally:
        hosts.close()


def median_table(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}


def main() -> int:
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--latency-requests", type=int, default=2000)
    parser.add_argument("--failovers", type=int, default=3)
    ARGS = parser.parse_args()
    if reason := why_unavailable():
        print(f"bench/hosts.py: namespace hosts unavailable: {reason}", file=sys.stderr)
        return 1
    results: dict[str, list[dict[str, float]]] = {"one host, Unix": [], "3 hosts, TLS": []}
    try:
        for i in range(ARGS.rounds):
            order = [("one host, Unix", one_host), ("3 hosts, TLS", three_hosts)]
            for name, fn in order if i % 2 == 0 else reversed(order):
                figures = fn()
                results[name].append(figures)
                print(f"round {i + 1} {name}: {figures}", flush=True)
        failovers = [failover() for _ in range(ARGS.failovers)]
        for i, f in enumerate(failovers):
            print(f"failover {i + 1}: {f}", flush=True)
    except (RuntimeError, subprocess.SubprocessError) as e:
        print(f"bench/hosts.py: {e}", file=sys.stderr)
        return 1
    if ARGS.rounds:
        unix, tls = median_table(results["one host, Unix"]), median_table(results["3 hosts, TLS"])
        print(f"\nmedians of {ARGS.rounds} rounds (example cluster, fsync on):")
        print(f"{'figure':<20} {'one host, Unix':>15} {'3 hosts, TLS':>13} {'ratio':>7}")
        for key in unix:
            print(f"{key:<20} {unix[key]:>15.2f} {tls[key]:>13.2f} {tls[key] / unix[key]:>7.2f}")
    if not failovers:
        return 0
    election = 0.3  # examples/hosts.toml's paxos.election_timeout (the default)
    fo = median_table(failovers)
    print(f"\nleader's host cut off, median of {len(failovers)}: new leader after "
          f"{fo['new leader s']:.2f} s (target <= {election + 1:.1f}), decisions again after "
          f"{fo['decisions again s']:.2f} s (target <= {election + 2:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
