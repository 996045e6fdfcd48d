"""Does a refactoring of the core decide the same log, seed for seed?

Runs the simulator (`run_seed`) over seeds on both topologies, with and
without reconfiguration, and prints per run a digest of what it decided
(every slot's value, as the checker saw it chosen), the outcome, and the
number of messages delivered. Given `--against DIR` (a checkout of another
commit, e.g. `git worktree add /tmp/old a9c0b11`) it runs the same in that
checkout and names every run whose digest differs.

    python bench/sim_same_logs.py --seeds 200 --against /tmp/old
    python bench/sim_same_logs.py --seeds 50 --plant naive-swap --against /tmp/old

Exit 0 when every run matches, 1 otherwise. A refactoring that changes no
protocol behaviour must match everywhere: the message count differs as soon
as one message is sent in another order, since the network's faults are
drawn from one seeded generator per run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
KINDS = [("separate", False), ("collapsed", False), ("separate", True), ("collapsed", True)]


def digests(seeds: int, start: int, plant: frozenset[str] = frozenset()) -> dict[str, str]:
    """run name -> digest of (outcome, delivered, decided log), in this checkout."""
    from paxos_agents.sim import COLLAPSED, SEPARATE, faults

    topologies = {"separate": SEPARATE, "collapsed": COLLAPSED}
    made: list = []
    real = faults.SimCluster

    def capture(*args, **kwargs):  # keep each run's cluster to read its checker
        sim = real(*args, **kwargs)
        made.append(sim)
        return sim

    faults.SimCluster = capture
    out = {}
    for name, reconfig in KINDS:
        for seed in range(start, start + seeds):
            made.clear()
            outcome = faults.run_seed(seed, topologies[name], plant=plant, reconfig=reconfig)
            chosen = made[0].checker.chosen
            h = hashlib.sha256()
            for slot in sorted(chosen):
                h.update(slot.to_bytes(8, "little", signed=True))
                h.update(chosen[slot][0].data)
            out[f"{name}{'+reconfig' if reconfig else ''}/{seed}"] = (
                f"{outcome.kind}:{outcome.delivered}:{len(chosen)}:{h.hexdigest()[:16]}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--against", type=Path, help="another checkout to compare with")
    parser.add_argument("--plant", action="append", default=[],
                        help="run with this planted bug (repeatable)")
    parser.add_argument("--json", action="store_true", help="print this checkout's digests")
    args = parser.parse_args()
    if args.json:
        import paxos_agents

        print(json.dumps({"source": paxos_agents.__file__, **digests(args.seeds, args.start, frozenset(args.plant))}))
        return 0
    cmd = [sys.executable, __file__, "--json", "--seeds", str(args.seeds), "--start",
           str(args.start), *[f"--plant={p}" for p in args.plant]]
    ours = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True,
                                     env={**os.environ, "PYTHONPATH": str(HERE)}).stdout)
    if args.against is None:
        print(json.dumps(ours, indent=1))
        return 0
    theirs = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True,
                                       env={**os.environ, "PYTHONPATH": str(args.against)},
                                       cwd=args.against).stdout)
    print(f"here: {ours.pop('source')}; there: {theirs.pop('source')}")
    differ = sorted(k for k in ours if ours[k] != theirs.get(k))
    for k in differ:
        print(f"{k}: here {ours[k]}  there {theirs.get(k)}")
    print(f"{len(ours) - len(differ)} of {len(ours)} runs decide the same log "
          f"(outcome, messages delivered, slots, digest)")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
