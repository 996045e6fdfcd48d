"""`python -m paxos_agents.sim`: run seeded simulations and report what broke.

    python -m paxos_agents.sim --seeds N [--start S]
        [--topology proposers=2,acceptors=3,learners=2 | --topology replicas=3]
        (either with ,retain=N: learners keep N slots of log)
        [--plant BUG] [--steps K] [--jobs J] [--reconfig]

Prints one line per failing seed (seed, what broke, at which step, the
command that replays it) and ends with `N runs, K safety violations, L
liveness failures`. Exits 1 if K or L is not 0, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor

from ..core.settings import PLANTABLE
from .faults import LIVENESS_TICKS, Outcome, run_seed
from .topology import SEPARATE, Topology


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m paxos_agents.sim",
        description="Seeded fault-injecting simulation of the Multi-Paxos core. "
        f"Liveness bound: every command applied everywhere within {LIVENESS_TICKS} "
        "ticks after the faults stop.",
    )
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds to run")
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--topology", default=str(SEPARATE),
                        help="proposers=2,acceptors=3,learners=2 or replicas=3; add "
                        "retain=N for learners that keep N slots of log (expiry, log restarts)")
    parser.add_argument("--plant", action="append", default=[], metavar="BUG",
                        help=f"put a known bug back in: {', '.join(sorted(PLANTABLE))}")
    parser.add_argument("--steps", type=int, default=300, help="ticks of faults per run")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: one per core)")
    parser.add_argument("--reconfig", action="store_true",
                        help="also add, remove and replace acceptors during the faults "
                        "(always on with --plant naive-swap)")
    args = parser.parse_args(argv)
    try:
        args.topology = Topology.parse(args.topology)
    except ValueError as e:
        parser.error(f"--topology: {e}")
    for bug in args.plant:
        if bug not in PLANTABLE:
            parser.error(f"--plant: unknown bug {bug!r}; known: {', '.join(sorted(PLANTABLE))}")
    if args.seeds < 0 or args.steps < 1 or args.jobs < 1:
        parser.error("--seeds must be >= 0, --steps and --jobs >= 1")
    return args


def _run(job: tuple[int, Topology, frozenset[str], int, bool]) -> Outcome:
    return run_seed(*job)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    plant = frozenset(args.plant)
    replay = f"python -m paxos_agents.sim --seeds 1 --start {{seed}} --topology {args.topology}"
    replay += "".join(f" --plant {bug}" for bug in sorted(plant))
    if args.steps != 300:
        replay += f" --steps {args.steps}"
    if args.reconfig:
        replay += " --reconfig"
    runs = safety = liveness = 0

    def report(name: str, outcome: Outcome, how: str) -> None:
        nonlocal safety, liveness
        if outcome.kind == "safety":
            safety += 1
        elif outcome.kind == "liveness":
            liveness += 1
        if outcome.kind:
            print(f"{name}: {outcome.kind}: {outcome.detail} (step {outcome.step}); "
                  f"replay: {how}", flush=True)

    jobs = [(seed, args.topology, plant, args.steps, args.reconfig)
            for seed in range(args.start, args.start + args.seeds)]
    if args.jobs > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            outcomes = pool.map(_run, jobs, chunksize=max(1, len(jobs) // (args.jobs * 8)))
            for outcome in outcomes:
                runs += 1
                report(f"seed {outcome.seed}", outcome, replay.format(seed=outcome.seed))
    else:
        for job in jobs:
            outcome = _run(job)
            runs += 1
            report(f"seed {outcome.seed}", outcome, replay.format(seed=outcome.seed))
    print(f"{runs} runs, {safety} safety violations, {liveness} liveness failures")
    return 1 if safety or liveness else 0


if __name__ == "__main__":
    sys.exit(main())
