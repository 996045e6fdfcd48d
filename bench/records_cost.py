"""What protocol records cost (issue 25): CPU per command with records on and off.

    python bench/records_cost.py [--rounds 4] [--requests 200000] [--concurrency 256]
                                 [--together [--seconds 6]] [--spy] [--same] [--size N]
                                 [--json FILE]

Two copies of the example cluster (examples/cluster.toml, fsync on, each in a
temporary state dir, as bench/dataplane.py starts them) run side by side:
one with the default `paxos.protocol_records` (records on), one with 0
(off). Each round runs `paxosctl bench --requests N --concurrency C
--value-size 16 -o json` on each cluster and keeps each agent's
`cpu_us_per_command` (and the cluster's sum), the leader's under "leader"
(read from `status` before the run: the two clusters, and one cluster over
time, need not elect the same proposer, and a leader costs several times a
follower).

Rounds come in pairs, on-off then off-on (an ABBA block), and the ratio
is judged per block: (on1 + on2) / (off1 + off2). A cluster's cost per
command drifts up as it ages (its stores and indexes grow: 20 -> 25 us
for the cluster over four rounds of 200,000 here), and within a block
each side runs once early and once late, so a drift that is linear over
the block cancels. The verdict is on the median of the blocks' ratios;
the table's off and on columns are each side's mean over the rounds.
(Before, three rounds and each side's median: the on side ran 1st, 4th
and 5th, the off side 2nd, 3rd and 6th, and the drift alone made an A/A
run read 1.09x.) So `--rounds` is even.

`--together` runs the two clusters' benches at the same time instead, for
`--seconds` each (`paxosctl bench --duration`), so both see the machine's
load of the same moments (the side started first alternates by round: with
"on" always first an A/A run read 1.03x); each round is its own ratio, on / off, and the
verdict is on the median of the rounds' (any number of rounds). On this
2-core machine the rounds' ratios spread about half as much as ABBA
blocks' (a standard deviation of 1-3% per agent against 3-5%).

Two things still blur the figure on a shared machine: `cpu_us_per_command`
comes in steps of 0.05 us at 200,000 commands (CPU times tick at 10 ms),
about 3% of an acceptor's 1.8 us; and a run slowed by the machine's load
batches fewer commands per slot, which costs more CPU per command whatever
records do (the median throughputs are printed to tell). `--same` starts
the "on" cluster with records off too: an A/A run whose ratios are the
noise alone. `--spy` measures the records' share directly instead: after
the rounds, one more run on the "on" cluster (not counted in the table:
py-spy takes CPU of its own on a 2-core machine) under py-spy (the dev
extra) sampling its leader, acceptor-0 and learner-0; the share of their
busy samples inside paxos_agents/runtime/protocolrecords.py is printed per
agent (the calls into it from the agent and the transport are a few lines
more). Prints a markdown table (agent, off, on, ratio, met/MISSED) to
stdout and progress to stderr; exit 0 when every round produced its
figures (whatever the verdicts), 1 when one failed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/dataplane.py, next to this file

from dataplane import Cluster, PartFailed, interrupt, toml_text  # noqa: E402

#: Records on may cost at most this ratio of off's CPU per command (per agent).
LIMIT = 1.05
#: A run's key naming its leader, and the row of the leader's figures.
LEADER = "leader"
#: The keys of `cpu_us_per_command` not judged (the cluster's sum is: last row).
NOT_AGENTS = ("supervisor", "client")


def log(message: str) -> None:
    print(f"records_cost: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Row:
    who: str
    off_us: float | None
    on_us: float | None
    ratio: float | None
    verdict: str


def median(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def mean(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def rows(rounds: dict[str, list[dict[str, Any] | None]], together: bool = False) -> list[Row]:
    """One row per agent (then the cluster's sum), from each side's runs in
    round order (None: that run failed): each side's mean
    `cpu_us_per_command`, and the median over ABBA blocks (rounds 1-2,
    3-4, ...) of (on1 + on2) / (off1 + off2) (`together`: over rounds of
    on / off, both run at once), judged against `LIMIT`
    (n/a when no block has all four figures). The leader's figures
    (whichever proposer led that run: `run["leader"]`) are one row,
    "leader", first. The supervisor and the client are not judged:
    records run in the agents."""
    def figures(side: str) -> list[dict[str, float]]:
        out: list[dict[str, float]] = []
        for run in rounds.get(side, []):
            got: dict[str, float] = {}
            for who, us in ((run or {}).get("cpu_us_per_command") or {}).items():
                if who not in NOT_AGENTS and us is not None:
                    got[LEADER if who == (run or {}).get(LEADER) else who] = us
            out.append(got)
        return out

    on, off = figures("on"), figures("off")
    names = sorted({n for run in on + off for n in run},
                   key=lambda n: (n == "cluster", n != LEADER, n))
    out = []
    for who in names:
        a = mean([run.get(who) for run in off])
        b = mean([run.get(who) for run in on])
        blocks = []
        if together:  # each round ran both sides at once: its own ratio
            for a_on, a_off in zip(on, off):
                if a_on.get(who) is not None and a_off.get(who):
                    blocks.append(a_on[who] / a_off[who])
        else:
            for k in range(0, min(len(on), len(off)) - 1, 2):
                pair = [side[i].get(who) for side in (on, off) for i in (k, k + 1)]
                if None not in pair and pair[2] + pair[3] > 0:
                    blocks.append((pair[0] + pair[1]) / (pair[2] + pair[3]))
        ratio = statistics.median(blocks) if blocks else None
        verdict = "n/a" if ratio is None else ("met" if ratio <= LIMIT else "MISSED")
        out.append(Row(who, a, b, ratio, verdict))
    return out


def table(rows_: list[Row]) -> str:
    def us(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    lines = ["| agent | off (us/command) | on (us/command) | on/off | at most 1.05x |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r.who} | {us(r.off_us)} | {us(r.on_us)} | "
              f"{'-' if r.ratio is None else f'{r.ratio:.3f}x'} | {r.verdict} |" for r in rows_]
    return "\n".join(lines)


def spy_share(raw: str) -> tuple[int, int]:
    """(busy samples, samples inside protocolrecords.py) of a py-spy raw
    profile (one "frame;frame;... COUNT" line per stack; idle ones dropped)."""
    total = inside = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        if "protocolrecords.py" in stack:
            inside += int(count)
    return total, inside


def start_spies(cluster: Cluster, folder: Path) -> dict[str, tuple[subprocess.Popen, Path]]:
    """py-spy on `cluster`'s leader, acceptor-0 and learner-0 (raw profiles in `folder`)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise PartFailed("--spy: py-spy is not installed (pip install -e '.[dev]')")
    status = cluster.status()
    pids = {a["name"]: a["pid"] for a in status["agents"] if a.get("pid")}
    out = {}
    for role, name in ((LEADER, status.get("leader")), ("acceptor-0", "acceptor-0"),
                       ("learner-0", "learner-0")):
        if name in pids:
            path = folder / f"spy-{role}.txt"
            out[f"{role} ({name})" if role == LEADER else role] = (subprocess.Popen(
                [spy, "record", "--nonblocking", "--rate", "250", "--format", "raw",
                 "-o", str(path), "-p", str(pids[name])],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), path)
    return out


def stop_spies(spies: dict[str, tuple[subprocess.Popen, Path]]) -> list[str]:
    """Lines: each sampled agent's share of busy samples in protocolrecords.py."""
    lines = []
    for who, (process, path) in spies.items():
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
        total, inside = spy_share(path.read_text()) if path.exists() else (0, 0)
        share = f"{100 * inside / total:.1f}%" if total else "-"
        lines.append(f"| {who} | {total} | {inside} | {share} |")
    return ["| agent (records on) | busy samples | in protocolrecords.py | share |",
            "| --- | --- | --- | --- |", *lines]


def together(clusters: dict[str, Cluster], args: argparse.Namespace) -> dict[str, Any]:
    """One round of `--together`: both clusters' `paxosctl bench --duration`
    at once, each in a thread; side -> its JSON (with its leader) or the
    PartFailed that stopped it."""
    got: dict[str, Any] = {}

    def run(side: str) -> None:
        cluster = clusters[side]
        try:
            leader = cluster.status().get("leader")
            data = cluster.bench(0, args.concurrency, args.warmup, seconds=args.seconds)
            if data.get("errors"):
                raise PartFailed(f"{data['errors']} commands failed")
            data[LEADER] = leader
            got[side] = data
        except PartFailed as e:
            got[side] = e

    # The side whose bench starts first alternates by round (`args.round`):
    # an A/A run read 1.03x with "on" always first.
    order = ("on", "off") if args.round % 2 == 0 else ("off", "on")
    threads = [threading.Thread(target=run, args=(side,)) for side in order]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return got


def make_cluster(folder: Path, name: str, records: int | None) -> Cluster:
    """The example cluster in `folder`, with paxos.protocol_records = `records`
    (None: the default)."""
    cluster = Cluster(folder, name=name)
    if records is not None:
        data = tomllib.loads(cluster.manifest.read_text())
        data.setdefault("paxos", {})["protocol_records"] = records
        cluster.manifest.write_text(toml_text(data))
    return cluster


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4,
                        help="an even number: on-off then off-on blocks (the docstring says why)")
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--spy", action="store_true",
                        help="also sample the records-on cluster with py-spy (see above)")
    parser.add_argument("--size", type=int, default=None,
                        help="paxos.protocol_records of the on side [default: the default]")
    parser.add_argument("--together", action="store_true",
                        help="run both clusters' benches at once, a ratio per round (see above)")
    parser.add_argument("--seconds", type=float, default=6.0,
                        help="with --together: each round's length [default: 6]")
    parser.add_argument("--same", action="store_true",
                        help='records off on both clusters (an A/A run: the noise)')
    parser.add_argument("--json", help="also write the rounds and rows to this file")
    args = parser.parse_args(argv)
    for key in ("rounds", "requests", "concurrency"):
        if getattr(args, key) < 1:
            parser.error(f"--{key}: must be 1 or more, got {getattr(args, key)}")
    if args.seconds <= 0:
        parser.error(f"--seconds: must be above 0, got {args.seconds}")
    if args.rounds % 2 and not args.together:
        parser.error(f"--rounds: must be even (on-off then off-on blocks, so that a "
                     f"cluster's drift cancels), "
                     f"got {args.rounds}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
    work = Path(tempfile.mkdtemp(prefix="records-", dir="/tmp"))  # short: Unix socket paths
    rounds: dict[str, list[dict[str, Any] | None]] = {"on": [], "off": []}
    failures: list[str] = []
    clusters = {"on": make_cluster(work / "on", "records-on", 0 if args.same else args.size),
                "off": make_cluster(work / "off", "records-off", 0)}
    spies: dict[str, tuple[subprocess.Popen, Path]] = {}
    spied: list[str] = []
    try:
        for side, cluster in clusters.items():
            log(f"starting the records-{side} cluster in {cluster.dir}")
            cluster.up()
        for n in range(args.rounds):
            if args.together:
                args.round = n
                got = together(clusters, args)
                for side in ("on", "off"):
                    data = got[side]
                    if isinstance(data, PartFailed):
                        failures.append(f"round {n + 1} {side}: {data}")
                        data = None
                    rounds[side].append(data)
                    if data is not None:
                        log(f"round {n + 1} records {side}: {data.get('throughput_per_s')} "
                            f"commands/s, cluster {data['cpu_us_per_command'].get('cluster')} "
                            "us/command")
                continue
            for side in ("on", "off") if n % 2 == 0 else ("off", "on"):
                try:
                    leader = clusters[side].status().get("leader")
                    data = clusters[side].bench(args.requests, args.concurrency, args.warmup)
                    data[LEADER] = leader
                except PartFailed as e:
                    failures.append(f"round {n + 1} {side}: {e}")
                    rounds[side].append(None)  # its block is not judged
                    continue
                if data.get("errors"):
                    failures.append(f"round {n + 1} {side}: {data['errors']} commands failed")
                rounds[side].append(data)
                log(f"round {n + 1} records {side}: {data.get('throughput_per_s')} commands/s, "
                    f"cluster {data['cpu_us_per_command'].get('cluster')} us/command")
        if args.spy:
            spies = start_spies(clusters["on"], work)
            clusters["on"].bench(args.requests, args.concurrency, args.warmup)
            spied = stop_spies(spies)
            spies = {}
    except PartFailed as e:
        failures.append(str(e))
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    finally:
        if spies:
            spied = stop_spies(spies)
        for cluster in clusters.values():
            cluster.teardown()
        shutil.rmtree(work, ignore_errors=True)
    report = rows(rounds, together=args.together)
    print(table(report))
    for side in ("on", "off"):
        tput = median([run.get("throughput_per_s") for run in rounds[side] if run])
        print(f"\nrecords {side}: median {tput if tput is None else round(tput)} commands/s")
    if spied:
        print("\n" + "\n".join(spied))
    if failures:
        print("\nFailed rounds:")
        for failure in failures:
            print(f"- {failure}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "params": vars(args),
             "rounds": rounds, "rows": [dataclasses.asdict(r) for r in report], "spy": spied,
             "failures": failures},
            indent=2, default=str) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
