"""How fast `paxosctl decided` reads a long log: entries per second.

Issue 20's target: `decided` streams at 50,000 entries/s or more on the
example cluster (examples/cluster.toml: 2 proposers, 3 acceptors, 2
learners) with 16-byte values, on a log of 200,000 entries or more.

    python bench/decided_read.py --dir /tmp/decided-bench [--entries 200000]
        [--runs 3] [--paxosctl PATH] [--keep]

It starts the example cluster in DIR (metrics off), unless one runs there
already; proposes 16-byte values until the log holds `--entries`
(through `paxosctl.Client`, many in flight); then times `paxosctl decided`
(text) and `paxosctl decided -o json` over the whole log, output into a
pipe that counts lines, `--runs` times each, and prints each run's
entries/s and the median. `--paxosctl` measures another build's CLI (e.g.
/work/main's) against the same cluster and log. `--keep` leaves the cluster
running for the next run; otherwise it is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "cluster.toml"


def manifest(folder: Path) -> Path:
    """The example cluster's manifest in `folder` (metrics off: no port to collide)."""
    path = folder / "cluster.toml"
    if not path.exists():
        text = EXAMPLE.read_text().replace('listen = "127.0.0.1:9464"', "enabled = false")
        path.write_text(text)
    return path


def fill(path: Path, entries: int, value_bytes: int) -> int:
    """Propose until the decided log holds `entries` commands; the count."""
    from paxosctl import Client

    with Client.for_manifest(path) as client:
        have = sum(1 for e in client.iter_decided() if not e.noop)
        started = time.monotonic()
        todo = entries - have
        window = 4000
        for at in range(0, max(0, todo), window):
            futures = [client.propose_async(os.urandom(value_bytes // 2).hex().encode()[:value_bytes],
                                            fresh=True, timeout=120)
                       for _ in range(min(window, todo - at))]
            for future in futures:
                future.result(180)
            print(f"  proposed {have + at + len(futures)} of {entries}", file=sys.stderr)
        if todo > 0:
            print(f"filled {todo} entries in {time.monotonic() - started:.1f}s", file=sys.stderr)
        return max(have, entries)


def timed_read(paxosctl: str, path: Path, output: str) -> tuple[int, float]:
    """(entries printed, seconds) of one `paxosctl decided -o OUTPUT` into a
    pipe: text has one line per entry, JSON one "position" key per entry
    (an array or JSON Lines alike)."""
    start = time.perf_counter()
    proc = subprocess.Popen([paxosctl, "decided", "-o", output, "-f", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    mark = b"\n" if output == "text" else b'"position"'
    lines = 0
    assert proc.stdout is not None
    carry = b""  # the end of the last chunk: a mark may span two
    for chunk in iter(lambda: proc.stdout.read(1 << 20), b""):
        data = carry + chunk
        lines += data.count(mark)
        carry = data[-(len(mark) - 1):] if len(mark) > 1 else b""
    code = proc.wait()
    seconds = time.perf_counter() - start
    if code != 0:
        sys.exit(f"paxosctl decided -o {output} failed (exit {code}): "
                 f"{proc.stderr.read().decode().strip()[:300]}")
    return lines, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="the cluster's folder (created if absent)")
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--value-bytes", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--paxosctl", default=str(Path(sys.executable).parent / "paxosctl"))
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    args = parser.parse_args()
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = manifest(folder)
    status = subprocess.run([args.paxosctl, "status", "-f", str(path)], capture_output=True)
    if status.returncode != 0:
        up = subprocess.run([args.paxosctl, "up", "-d", "--wait", "60", "-f", str(path)],
                            capture_output=True, text=True)
        if up.returncode != 0:
            sys.exit(f"paxosctl up failed: {up.stderr.strip()}")
    try:
        entries = fill(path, args.entries, args.value_bytes)
        print(f"log: {entries} entries of {args.value_bytes}-byte values; CLI {args.paxosctl}")
        for output in ("text", "json"):
            rates = []
            for run in range(args.runs):
                lines, seconds = timed_read(args.paxosctl, path, output)
                rates.append(lines / seconds)
                print(f"  decided -o {output}: {lines} lines in {seconds:.2f}s = "
                      f"{lines / seconds:,.0f} lines/s")
            print(f"decided -o {output}: median {statistics.median(rates):,.0f} entries/s")
    finally:
        if not args.keep:
            subprocess.run([args.paxosctl, "down", "-f", str(path)], capture_output=True)


if __name__ == "__main__":
    main()
