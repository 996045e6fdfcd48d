"""Cold start of the CLI: `paxosctl status` against a bare `python -c pass`.

Issue 13's target: `paxosctl status` on a running cluster takes at most 8
times a bare interpreter start, on the same machine, median of 7 each.
The two are run alternately (this machine is shared and noisy), wall
time and CPU time (user + system, from the child's rusage) both.

    python bench/coldstart.py -f examples/cluster.toml [--runs 7]

Prints each median and the ratios; with --importtime, also the 15
slowest imports of one `paxosctl status` (python -X importtime).

It first byte-compiles paxosctl and paxos_agents (compileall), as pip does
on install: where PYTHONDONTWRITEBYTECODE is set (this machine sets it),
every run would otherwise compile our ~15 modules from source again, about
50 ms that no installed copy pays.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of `argv` (its output discarded)."""
    before = os.times()
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-f", "--file", required=True, help="manifest of a running cluster")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--importtime", action="store_true")
    args = parser.parse_args()
    import compileall

    import paxos_agents
    import paxosctl as package

    for root in (package, paxos_agents):
        compileall.compile_dir(str(Path(root.__file__).parent), quiet=1)
    paxosctl = str(Path(sys.executable).parent / "paxosctl")
    bare = [sys.executable, "-c", "pass"]
    status = [paxosctl, "status", "-f", args.file]
    probe = subprocess.run(status, capture_output=True, text=True)
    if probe.returncode not in (0, 3):
        sys.exit(f"paxosctl status failed (exit {probe.returncode}): {probe.stderr.strip()}")
    runs: dict[str, list[tuple[float, float]]] = {"python -c pass": [], "paxosctl status": []}
    for _ in range(args.runs):
        runs["python -c pass"].append(timed(bare))
        runs["paxosctl status"].append(timed(status))
    medians = {name: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r))
               for name, r in runs.items()}
    for name, (wall, cpu) in medians.items():
        print(f"{name:16} median wall {wall * 1000:7.1f} ms   cpu {cpu * 1000:7.1f} ms")
    (bw, bc), (sw, sc) = medians["python -c pass"], medians["paxosctl status"]
    print(f"ratio            wall {sw / bw:5.1f}x   cpu {sc / bc if bc else float('inf'):5.1f}x   "
          f"(target: at most 8x)")
    if args.importtime:
        out = subprocess.run([sys.executable, "-X", "importtime", "-m", "paxosctl", "status",
                              "-f", args.file], capture_output=True, text=True).stderr
        rows = []
        for line in out.splitlines():
            if line.startswith("import time:") and "|" in line:
                _, cumulative, name = (p.strip() for p in line[12:].split("|"))
                if cumulative.isdigit():
                    rows.append((int(cumulative), name))
        print("slowest imports (cumulative µs):")
        for cumulative, name in sorted(rows, reverse=True)[:15]:
            print(f"  {cumulative:8d}  {name}")


if __name__ == "__main__":
    main()
