"""Cold start of the CLI: `paxosctl status` and `--version` against a bare `python -c pass`.

Issue 13's target, restated by issue 21: a cold `paxosctl status` on a
running cluster (and `paxosctl --version`) takes at most 8 times a bare
interpreter start, on the same machine, medians of 15 runs each. The
runs are paired: each round runs every command once, in turn (this
machine is shared and noisy), wall time and CPU time (user + system,
from the child's rusage) both.

    python bench/coldstart.py -f examples/cluster.toml [--runs 15]
    python bench/coldstart.py -f cluster.toml --checkout /tmp/old --checkout .

Prints each median and its ratio to the bare interpreter; with
--importtime, also the 15 slowest imports of one `paxosctl status`
(python -X importtime). With --checkout DIR (repeatable) each DIR is a
source tree (another commit, `git archive` unpacked) run as `PYTHONPATH=DIR
python -m paxosctl`, so that two commits alternate in one run; without it,
the installed `paxosctl` script runs.

It first byte-compiles paxosctl and paxos_agents (compileall), as pip does
on install: where PYTHONDONTWRITEBYTECODE is set (this machine sets it),
every run would otherwise compile our ~15 modules from source again, about
50 ms that no installed copy pays.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def timed(argv: list[str], env: dict[str, str] | None) -> tuple[float, float]:
    """Wall and CPU seconds of one run of `argv` (its output discarded)."""
    before = os.times()
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, env=env)
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu


def compile_sources(roots: list[Path]) -> None:
    for root in roots:
        for package in ("paxosctl", "paxos_agents"):
            compileall.compile_dir(str(root / package), quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-f", "--file", required=True, help="manifest of a running cluster")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--checkout", action="append", default=[], metavar="DIR",
                        help="a source tree to run as PYTHONPATH=DIR python -m paxosctl")
    parser.add_argument("--importtime", action="store_true")
    args = parser.parse_args()
    import paxosctl as package

    # (label, argv prefix that runs paxosctl, environment)
    variants: list[tuple[str, list[str], dict[str, str] | None]] = []
    if args.checkout:
        roots = [Path(d).resolve() for d in args.checkout]
        compile_sources(roots)
        for root in roots:
            env = {**os.environ, "PYTHONPATH": str(root)}
            variants.append((root.name, [sys.executable, "-m", "paxosctl"], env))
    else:
        compile_sources([Path(package.__file__).parent.parent])
        variants.append(("paxosctl", [str(Path(sys.executable).parent / "paxosctl")], None))
    commands: dict[str, tuple[list[str], dict[str, str] | None]] = {
        "python -c pass": ([sys.executable, "-c", "pass"], None)}
    for label, prefix, env in variants:
        probe = subprocess.run([*prefix, "status", "-f", args.file], capture_output=True, text=True,
                               env=env)
        if probe.returncode not in (0, 3):
            sys.exit(f"{label} status failed (exit {probe.returncode}): {probe.stderr.strip()}")
        commands[f"{label} status"] = ([*prefix, "status", "-f", args.file], env)
        commands[f"{label} --version"] = ([*prefix, "--version"], env)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, (argv, env) in commands.items():
            runs[name].append(timed(argv, env))
    medians = {name: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r))
               for name, r in runs.items()}
    bw, bc = medians["python -c pass"]
    width = max(map(len, medians))
    print(f"medians of {args.runs} paired runs (target: at most 8x python -c pass)")
    for name, (wall, cpu) in medians.items():
        print(f"{name:{width}}  wall {wall * 1000:7.1f} ms {wall / bw:5.1f}x   "
              f"cpu {cpu * 1000:7.1f} ms {cpu / bc if bc else float('inf'):5.1f}x")
    if args.importtime:
        label, prefix, env = variants[-1]
        argv = [sys.executable, "-X", "importtime", "-m", "paxosctl", "status", "-f", args.file]
        out = subprocess.run(argv, capture_output=True, text=True, env=env).stderr
        rows = []
        for line in out.splitlines():
            if line.startswith("import time:") and "|" in line:
                _, cumulative, name = (p.strip() for p in line[12:].split("|"))
                if cumulative.isdigit():
                    rows.append((int(cumulative), name))
        print(f"slowest imports of {label} status (cumulative µs):")
        for cumulative, name in sorted(rows, reverse=True)[:15]:
            print(f"  {cumulative:8d}  {name}")


if __name__ == "__main__":
    main()
