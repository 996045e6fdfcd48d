"""Failover benchmarks against a running cluster (not a test: figures, not verdicts).

    python bench/failover.py -f examples/cluster.toml [--tries 20]

1. Leader failover: with a client keeping 8 proposals in flight, SIGKILL
   the leader; measure from the kill to the first decision of a proposal
   sent after the kill. Repeated `--tries` times (waiting for the cluster
   to be whole again in between); prints p50 and max.
2. Acceptor restart: SIGKILL an acceptor; measure until `status` shows it
   running again (first heartbeat of the new incarnation).
3. `paxosctl status` from a cold start (a new process), median of 10.
4. Resident memory of each agent (psutil).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from paxosctl import Client
from paxosctl.errors import PaxosctlError


def wait_whole(client: Client, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.request("status")
        if status["leader"] and all(a["state"] == "running" for a in status["agents"]):
            return
        time.sleep(0.02)
    raise SystemExit("the cluster did not become whole again")


def leader_failover(client: Client, tries: int) -> list[float]:
    """Seconds from killing the leader to the first decision of a proposal sent after it."""
    stop = threading.Event()
    decided_at: list[tuple[float, float]] = []  # (sent, decided)
    lock = threading.Lock()
    counter = itertools.count()

    def load() -> None:
        slots = threading.BoundedSemaphore(8)
        while not stop.is_set():
            slots.acquire()
            sent = time.monotonic()
            try:
                future = client.propose_async(f"failover-{next(counter)}", timeout=10)
            except PaxosctlError:
                return  # the client was closed: the measurement is over

            def done(f, sent=sent) -> None:
                try:
                    f.result()
                    with lock:
                        decided_at.append((sent, time.monotonic()))
                except PaxosctlError:
                    pass
                slots.release()

            future.add_done_callback(done)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    gaps = []
    try:
        for _ in range(tries):
            wait_whole(client)
            time.sleep(0.3)  # steady load before the kill
            leader = client.request("status")["leader"]
            killed = time.monotonic()
            client.kill(leader)
            deadline = killed + 30
            while time.monotonic() < deadline:
                with lock:
                    after = [d for s, d in decided_at if s > killed]
                if after:
                    gaps.append(min(after) - killed)
                    break
                time.sleep(0.005)
    finally:
        stop.set()
    return gaps


def acceptor_restart(client: Client, tries: int) -> list[float]:
    """Seconds from SIGKILL of an acceptor to its new incarnation running."""
    acceptors = [a["name"] for a in client.request("status")["agents"] if a["role"] == "acceptor"]
    times = []
    for i in range(tries):
        wait_whole(client)
        name = acceptors[i % len(acceptors)]
        before = next(a for a in client.request("status")["agents"] if a["name"] == name)
        killed = time.monotonic()
        client.kill(name)
        while True:
            row = next(a for a in client.request("status")["agents"] if a["name"] == name)
            if row["state"] == "running" and row["pid"] != before["pid"]:
                times.append(time.monotonic() - killed)
                break
            if time.monotonic() - killed > 30:
                raise SystemExit(f"{name} did not come back")
            time.sleep(0.002)
    return times


def status_cold(manifest: str, runs: int = 10) -> list[float]:
    paxosctl = str(Path(sys.executable).parent / "paxosctl")
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([paxosctl, "status", "-f", manifest], capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-f", "--file", default="cluster.toml")
    parser.add_argument("--tries", type=int, default=20)
    args = parser.parse_args()
    with Client.for_manifest(args.file) as client:
        gaps = leader_failover(client, args.tries)
        print(f"leader failover: p50 {statistics.median(gaps) * 1000:.0f} ms, "
              f"max {max(gaps) * 1000:.0f} ms over {len(gaps)} kills")
        restarts = acceptor_restart(client, min(args.tries, 10))
        print(f"acceptor back running: p50 {statistics.median(restarts) * 1000:.0f} ms, "
              f"max {max(restarts) * 1000:.0f} ms over {len(restarts)} kills")
        cold = status_cold(args.file)
        print(f"paxosctl status, cold process: p50 {statistics.median(cold) * 1000:.0f} ms")
        rss = {a["name"]: psutil.Process(a["pid"]).memory_info().rss / 2**20
               for a in client.request("status")["agents"] if a["pid"]}
        print("agent resident memory (MiB): "
              + ", ".join(f"{n} {v:.1f}" for n, v in rss.items()))


if __name__ == "__main__":
    main()
