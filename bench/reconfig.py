"""Membership changes: how long one takes, and what it costs the throughput.

Issue 14's targets: a change completes within 2 s on an idle cluster, and
throughput during a change stays above half of the steady figure.

    python bench/reconfig.py [-f examples/cluster.toml] [--rounds 10]
                             [--steady 5] [--concurrency 32]

It starts its own copy of the manifest's cluster in a temporary folder
(metrics off), then

1. idle: `rounds` changes, alternately `scale GROUP=n+2` and back to n
   (GROUP: the group of the acceptors), each timed from the request to the
   reply that says the new configuration is in force (the CLI's wait);
   then `rounds // 2` replaces of a running acceptor (`--force`);
2. under load: clients keep `concurrency` proposals in flight; first
   `steady` seconds without changes, then the same alternation of changes
   back to back. Throughput (acknowledged commands per second) during
   the changes, over the steady figure of the same run, is the ratio.

Prints medians and maxima and the ratio, and exits 1 if a target is
missed. Nothing is lost: the decided log is checked against every
acknowledgement at the end (paxosctl.tools.history.check).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from paxosctl import Client
from paxosctl.errors import PaxosctlError
from paxosctl.tools.history import Operation, check


def change(client: Client, op: str, **fields: object) -> float:
    """Seconds from the request to the reply that the change is in force."""
    started = time.perf_counter()
    client.request(op, wait=60, timeout=70, **fields)
    return time.perf_counter() - started


def acceptor_group(client: Client) -> tuple[str, int]:
    names = [a.name for a in client.status().agents if a.role in ("acceptor", "replica")]
    group = names[0].rsplit("-", 1)[0]
    return group, sum(1 for n in names if n.rsplit("-", 1)[0] == group)


class Load:
    """Threads keeping `concurrency` proposals in flight; acknowledgement times."""

    def __init__(self, client: Client, concurrency: int) -> None:
        self.client = client
        self.slots = threading.BoundedSemaphore(concurrency)
        self.history: list[Operation] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.n = 0

    def _run(self) -> None:
        while not self.stop.is_set():
            if not self.slots.acquire(timeout=0.2):
                continue
            self.n += 1
            op = Operation(f"bench-reconfig-{self.n}", f"v{self.n}", time.monotonic())
            with self.lock:
                self.history.append(op)
            future = self.client.propose_async(op.value, request_id=op.request_id, timeout=30)

            def done(f, op=op) -> None:
                try:
                    decision = f.result()
                    op.acked, op.slot, op.index = time.monotonic(), decision.slot, decision.index
                except PaxosctlError:
                    pass
                self.slots.release()
            future.add_done_callback(done)

    def acked_between(self, start: float, end: float) -> int:
        with self.lock:
            return sum(1 for op in self.history if op.acked is not None and start <= op.acked < end)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-f", "--file", default=str(Path(__file__).parent.parent / "examples" / "cluster.toml"))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steady", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    paxosctl = str(Path(sys.executable).parent / "paxosctl")
    folder = Path(tempfile.mkdtemp(prefix="pxbench"))
    manifest = folder / "cluster.toml"
    text = Path(args.file).read_text()
    manifest.write_text(text.replace("[metrics]", "[metrics]\nenabled = false", 1)
                        if "[metrics]" in text else text + "\n[metrics]\nenabled = false\n")
    subprocess.run([paxosctl, "up", "-d", "-f", str(manifest)], check=True, stdout=subprocess.DEVNULL)
    try:
        with Client.for_manifest(manifest) as client:
            group, n = acceptor_group(client)
            # 1. idle
            idle = [change(client, "scale", group=group, replicas=n + 2 if i % 2 == 0 else n)
                    for i in range(args.rounds + args.rounds % 2)]
            replaces = []
            for _ in range(max(1, args.rounds // 2)):
                names = [a.name for a in client.status().agents if a.name.rsplit("-", 1)[0] == group]
                replaces.append(change(client, "replace", agent=names[0], force=True))
            # 2. under load
            load = Load(client, args.concurrency)
            load.thread.start()
            time.sleep(1.0)  # warm up
            steady_start = time.monotonic()
            time.sleep(args.steady)
            steady_end = time.monotonic()
            busy = []
            for i in range(args.rounds + args.rounds % 2):
                start = time.monotonic()
                change(client, "scale", group=group, replicas=n + 2 if i % 2 == 0 else n)
                busy.append((start, time.monotonic()))
            load.stop.set()
            load.thread.join()
            for _ in range(args.concurrency):
                load.slots.acquire(timeout=40)
            steady = load.acked_between(steady_start, steady_end) / (steady_end - steady_start)
            during_n = sum(load.acked_between(a, b) for a, b in busy)
            during_s = sum(b - a for a, b in busy)
            during = during_n / during_s
            log = [e.to_dict() for e in client.decided(0)]
            report = check(load.history, log)
    finally:
        subprocess.run([paxosctl, "down", "-f", str(manifest)], stdout=subprocess.DEVNULL)
        shutil.rmtree(folder, ignore_errors=True)

    under = [b - a for a, b in busy]
    for kind, pairs in (("grow", busy[0::2]), ("shrink", busy[1::2])):
        rate = sum(load.acked_between(a, b) for a, b in pairs) / sum(b - a for a, b in pairs)
        print(f"  during {kind} changes: {rate:.0f}/s, ratio {rate / steady:.2f}, "
              f"median {statistics.median(b - a for a, b in pairs):.3f}s")
    print(f"idle change ({group} {n} <-> {n + 2}), {len(idle)} runs: median {statistics.median(idle):.3f}s, "
          f"max {max(idle):.3f}s (target: within 2 s)")
    print(f"idle replace, {len(replaces)} runs: median {statistics.median(replaces):.3f}s, "
          f"max {max(replaces):.3f}s")
    print(f"change under load ({args.concurrency} in flight), {len(under)} runs: median "
          f"{statistics.median(under):.3f}s, max {max(under):.3f}s")
    print(f"throughput: steady {steady:.0f}/s, during changes {during:.0f}/s "
          f"({during_n} commands in {during_s:.2f}s): ratio {during / steady:.2f} (target: above 0.5)")
    print(f"history: {report.summary()}")
    ok = max(idle) < 2.0 and during / steady > 0.5 and report.ok
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
