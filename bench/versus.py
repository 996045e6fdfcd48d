"""This checkout against another one, same run: throughput and CPU per command.

    python bench/versus.py --base ../base-checkout [--rounds 3] [--requests 30000]
                           [--concurrency 256] [--value-size 16]

`--base` is another clone of paxosctl (an earlier commit, say) with its own
`.venv` (`python3 -m venv .venv && .venv/bin/pip install -e .` there). Each
round starts a fresh example cluster (examples/cluster.toml, fsync on, in a
temporary state dir) on each side in turn, runs `paxosctl bench -o json`
against it and brings it down; rounds alternate base and this checkout so
that both see the same machine. Prints, per side, the median of the rounds:
commands/s, the median latency, and each process's µs of CPU per decided command (the leader,
the acceptors, the learners, the supervisor, the whole cluster, the bench
client), then this checkout's ratios to the base. Figures, not verdicts:
this machine is shared, so only ratios from one run mean anything.

Exit 0 when every round produced figures, 1 when one failed (it says
why), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def paxosctl(checkout: Path) -> Path:
    return checkout / ".venv" / "bin" / "paxosctl"


def one_round(checkout: Path, args: argparse.Namespace) -> dict:
    """One fresh example cluster of `checkout`: up, bench, down."""
    folder = Path(tempfile.mkdtemp(prefix="pxv"))
    manifest = folder / "cluster.toml"
    text = (checkout / "examples" / "cluster.toml").read_text()
    # The OS picks a free metrics port (as bench/dataplane.py does): another
    # cluster on the machine may hold the example's 9464.
    text = text.replace('listen = "127.0.0.1:9464"', 'listen = "127.0.0.1:0"')
    manifest.write_text(text)
    exe = str(paxosctl(checkout))
    try:
        up = subprocess.run([exe, "up", "-d", "--file", str(manifest)],
                            capture_output=True, text=True, timeout=120)
        if up.returncode != 0:
            raise RuntimeError(f"up exited {up.returncode}: {up.stderr.strip()[:300]}")
        done = subprocess.run(
            [exe, "bench", "--file", str(manifest), "--requests", str(args.requests),
             "--concurrency", str(args.concurrency), "--value-size", str(args.value_size),
             "-o", "json"], capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"bench exited {done.returncode}: {done.stderr.strip()[:300]}")
        return json.loads(done.stdout)
    finally:
        subprocess.run([exe, "down", "--file", str(manifest)], capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


def roles(cpu: dict) -> dict[str, float]:
    """Per-process CPU folded into roles: the busiest proposer is the leader;
    acceptors and learners averaged."""
    out: dict[str, float] = {}
    proposers = [v for k, v in cpu.items() if k.startswith("proposer") and v is not None]
    if proposers:
        out["leader"] = max(proposers)
    for role in ("acceptor", "learner"):
        values = [v for k, v in cpu.items() if k.startswith(role) and v is not None]
        if values:
            out[f"each {role}"] = statistics.mean(values)
    for key in ("supervisor", "cluster", "client"):
        if cpu.get(key) is not None:
            out[key] = cpu[key]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=30000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--value-size", type=int, default=16)
    args = parser.parse_args()
    sides = {"base": args.base.resolve(), "this": HERE}
    for name, checkout in sides.items():
        if not paxosctl(checkout).exists():
            print(f"--base: {paxosctl(checkout)} is missing (make {checkout}/.venv first)",
                  file=sys.stderr)
            return 2
    results: dict[str, list[dict]] = {name: [] for name in sides}
    for number in range(args.rounds):
        for name, checkout in sides.items():
            print(f"round {number + 1}: {name}", file=sys.stderr, flush=True)
            try:
                results[name].append(one_round(checkout, args))
            except (RuntimeError, subprocess.SubprocessError, json.JSONDecodeError) as e:
                print(f"round {number + 1} of {name} failed: {e}", file=sys.stderr)
                return 1
    medians: dict[str, dict[str, float]] = {}
    for name, runs in results.items():
        figures: dict[str, list[float]] = {"commands/s": [r["throughput_per_s"] for r in runs],
                                           "p50 ms": [r["latency_ms"]["p50"] for r in runs]}
        for run in runs:
            for key, value in roles(run.get("cpu_us_per_command") or {}).items():
                figures.setdefault(f"{key} µs/cmd", []).append(value)
        medians[name] = {k: statistics.median(v) for k, v in figures.items()}
        print(f"{name}: " + ", ".join(f"{k} {[round(x, 1) for x in v]}"
                                      for k, v in figures.items()))
    print("\n| figure | base | this | this / base |\n| --- | --- | --- | --- |")
    for key, base in medians["base"].items():
        this = medians["this"].get(key)
        if this is None:
            continue
        ratio = f"{this / base:.2f}" if base else "-"
        print(f"| {key} | {base:.1f} | {this:.1f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
