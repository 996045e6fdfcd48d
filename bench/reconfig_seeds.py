"""The 10,000-seed simulator run with reconfiguration on (not a test: a figure).

    python bench/reconfig_seeds.py [--seeds 10000] [--jobs 2]

Runs `python -m paxos_agents.sim --reconfig` over seeds 0..N-1 on both
topologies (proposers=2,acceptors=3,learners=2 and replicas=3): acceptors
are added, removed and replaced by fresh names under drops, delays,
duplicates, partitions and crashes, and every step checks agreement,
validity, integrity, the common prefix and that every decided slot was
chosen by a majority of its configuration. Then it runs the planted
`naive-swap` over the same seeds and prints the first seed that catches
it. Prints one line per run and exits 1 if a clean run failed or the
plant was never caught.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOPOLOGIES = ("proposers=2,acceptors=3,learners=2", "replicas=3")


def sim(*args: str) -> tuple[str, float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "paxos_agents.sim", *args], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    return done.stdout, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    ok = True
    for topology in TOPOLOGIES:
        out, took = sim("--seeds", str(args.seeds), "--topology", topology, "--jobs",
                        str(args.jobs), "--reconfig")
        *failures, summary = out.strip().splitlines()
        print(f"clean --reconfig {topology}: {summary} ({took:.0f} s)", flush=True)
        for line in failures[:10]:
            print(f"  {line}", flush=True)
        ok &= summary.endswith("0 safety violations, 0 liveness failures")
        out, took = sim("--seeds", str(min(args.seeds, 2000)), "--topology", topology, "--jobs",
                        str(args.jobs), "--plant", "naive-swap")
        lines = out.strip().splitlines()
        first = next((line.split(":")[0] for line in lines if line.startswith("seed ")), None)
        print(f"--plant naive-swap {topology}: {lines[-1]}; first caught: {first} ({took:.0f} s)",
              flush=True)
        ok &= first is not None
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
