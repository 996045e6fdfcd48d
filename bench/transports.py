"""The example cluster over Unix sockets against the same over TCP + mutual TLS, same run.

    python bench/transports.py [--rounds 3] [--requests 20000] [--latency-requests 2000]
                               [--value-size 16]

Each round starts a fresh example cluster (examples/cluster.toml, fsync on,
in a temporary folder) with `[transport] kind = "unix"`, then one with
`kind = "tls"` (its certificates made by `paxosctl certs init`), or the other
way round (rounds alternate which goes first), and runs `paxosctl bench -o
json` against each twice: c=256 for throughput, c=1 for the median latency.
Prints the median of the rounds per transport and TLS's ratios to Unix.
Figures, not verdicts: the machine is shared, so only ratios from one run
mean anything. Issue 22's targets are for 3 hosts; this is one machine's
loopback.

Exit 0 when every round produced figures, 1 when one failed (it says why).
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
EXE = str(HERE / ".venv" / "bin" / "paxosctl")


def run(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"paxosctl {args[0]} exited {done.returncode}: {done.stderr.strip()[:300]}")
    return done


def one_round(kind: str, args: argparse.Namespace) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="pxt"))
    manifest = folder / "cluster.toml"
    # Metrics on any free port: a fixed one may be taken by another cluster.
    manifest.write_text((HERE / "examples" / "cluster.toml").read_text().replace("127.0.0.1:9464", "127.0.0.1:0")
                        + f'\n[transport]\nkind = "{kind}"\n')
    try:
        if kind == "tls":
            run("certs", "init", "--file", str(manifest))
        run("up", "-d", "--file", str(manifest), timeout=120)
        figures = {}
        for concurrency, requests in ((256, args.requests), (1, args.latency_requests)):
            out = json.loads(run("bench", "--file", str(manifest), "--requests", str(requests),
                                 "--concurrency", str(concurrency), "--value-size",
                                 str(args.value_size), "-o", "json").stdout)
            if concurrency == 256:
                figures["c=256 commands/s"] = out["throughput_per_s"]
            else:
                figures["c=1 p50 ms"] = out["latency_ms"]["p50"]
        return figures
    finally:
        subprocess.run([EXE, "down", "--file", str(manifest)], capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--latency-requests", type=int, default=2000)
    parser.add_argument("--value-size", type=int, default=16)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {"unix": [], "tls": []}
    for i in range(args.rounds):
        for kind in (("unix", "tls") if i % 2 == 0 else ("tls", "unix")):
            try:
                figures = one_round(kind, args)
            except (RuntimeError, subprocess.TimeoutExpired, ValueError, KeyError) as e:
                print(f"round {i + 1} ({kind}) failed: {e}", file=sys.stderr)
                return 1
            results[kind].append(figures)
            print(f"round {i + 1} {kind}: {figures}", file=sys.stderr)
    medians = {kind: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
               for kind, runs in results.items()}
    for kind, figures in medians.items():
        print(f"{kind:5} " + "  ".join(f"{k}: {v:,.2f}" for k, v in figures.items()))
    print("tls/unix " + "  ".join(f"{k}: {medians['tls'][k] / medians['unix'][k]:.2f}x"
                                  for k in medians["unix"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
