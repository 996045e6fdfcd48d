"""`python -m paxos_agents.sim`: run seeded simulations and report what broke.

    python -m paxos_agents.sim --seeds N [--start S]
        [--topology proposers=2,acceptors=3,learners=2 | --topology replicas=3]
        (either with ,retain=N: learners keep N slots of log)
        [--plant BUG] [--steps K] [--jobs J] [--reconfig]

Prints one line per failing seed (seed, what broke, at which step, the
command that replays it) and ends with `N runs, K safety violations, L
liveness failures`. Exits 1 if K or L is not 0, 2 on bad arguments.

    python -m paxos_agents.sim --seed N --trace SLOT [-o text|json] [same options]

runs seed N alone, recording every node's protocol records, and prints
the life of slot SLOT as a sequence diagram (paxos_agents.trace), or its
steps as JSON. A slot no learner decided in that run: one line, exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor

from ..core.settings import PLANTABLE
from ..trace import render, slot_life
from .faults import LIVENESS_TICKS, Outcome, run_seed
from .recording import SimRecorder
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
    parser.add_argument("--seed", type=int, metavar="N",
                        help="run this one seed (the same as --seeds 1 --start N)")
    parser.add_argument("--trace", type=int, metavar="SLOT",
                        help="with --seed: draw the life of slot SLOT in that run")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text",
                        help="with --trace: the diagram (text) or its steps (json)")
    args = parser.parse_args(argv)
    if args.seed is not None:
        args.seeds, args.start = 1, args.seed
    if args.trace is not None and args.seed is None:
        parser.error("--trace needs --seed N (the run whose slot to draw)")
    if args.trace is not None and args.trace < 0:
        parser.error(f"--trace: slot {args.trace} is negative; slots count from 0")
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


def trace(args: argparse.Namespace) -> int:
    """Run `args.seed` with a recorder and print the life of slot `args.trace`."""
    recorder = SimRecorder()
    outcome = run_seed(args.seed, args.topology, frozenset(args.plant), args.steps,
                       args.reconfig, recorder=recorder)
    if outcome.kind:
        print(f"seed {args.seed}: {outcome.kind}: {outcome.detail} (step {outcome.step})",
              file=sys.stderr)
    life = slot_life(recorder.records, args.trace)
    if life is None or not life.decided:
        top = max((r["slots"][0] for r in recorder.records if r["kind"] == "decided"),
                  default=None)
        known = f"slots 0 to {top}" if top is not None else "no slot"
        print(f"python -m paxos_agents.sim: slot {args.trace} was not decided in seed "
              f"{args.seed} ({known} decided)", file=sys.stderr)
        return 2
    if args.output == "json":
        print(json.dumps(life.to_json(), indent=1))
    else:
        width = shutil.get_terminal_size((80, 24)).columns
        order = [*args.topology.membership().proposers, *args.topology.membership().acceptors,
                 *args.topology.membership().learners]
        print("\n".join(render(life, width, order=dict.fromkeys(order))))
    return 1 if outcome.kind else 0


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.trace is not None:
        return trace(args)
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
