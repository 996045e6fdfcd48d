"""Long-life benchmark: does a cluster that decided many commands still behave like a fresh one?

    python bench/long_life.py [--requests 600000] [--warmup 30000] [--round 30000]
                              [--concurrency 256] [--value-size 100] [--kills 5] [--cycles 3]
                              [--retain N] [--acceptor-bound-mib 16] [--json] [--keep]

Two copies of `examples/cluster.toml` (default settings, fsync on), each in
its own folder of a new temp dir with its own state_dir and a free metrics
port: "aged" and "fresh". The aged one decides `--requests` commands
(`paxosctl bench --concurrency C --value-size V`, in chunks of `--round`,
at least 10,000); then the two are measured against each other,
alternately (fresh, aged, fresh, aged, ...) so a machine that gets busier
or quieter meanwhile affects both alike. One line per figure on stdout, with its target and
"met" or "MISSED"; progress on stderr; `--json` adds one JSON object as the
last line. Both clusters are always stopped (`paxosctl down`) at the end.

The figures:

- rss_max_mib: the largest resident memory (psutil) of any aged agent
  after `--requests` commands. Target <= 40 MiB.
- rss_growth_mib: the largest change of an aged agent's resident memory
  between the first `--warmup` commands and `--requests`. Target: within 5 MiB.
- acceptor_state_bytes: the largest acceptor's files in the state folder
  (`<state_dir>/state/<agent>.db`, `-wal`, `-shm`, anything else named
  after it) after `--requests` commands. The bound does not depend on the
  command count: `--acceptor-bound-mib` (16 MiB: SQLite's WAL between
  checkpoints, ~4 MiB, plus the votes still in play, plus slack).
- learner_state_bytes: the same for learners; the target is what the
  retention setting says. Without `--retain` (or with 0) learners keep
  the whole log, so the oldest decided slot the cluster serves must be
  slot 0. With `--retain N` (written as `[log] retain = N` into both
  manifests; the manifest must know that key) they keep N slots, as the
  core's `Settings.retain_slots`: decided_up_to - oldest + 1 <= N.
- throughput_ratio: median over 3 alternated `--round`-command benches,
  aged / fresh. Target >= 0.9.
- kill_to_running_ratio: SIGKILL of acceptor-0 (the request `paxosctl kill
  acceptor-0` sends) until `status` shows it running with a new pid; p50 of
  `--kills` per cluster, alternated; aged / fresh. Target <= 1.2.
- kill_to_running_s: the aged p50 of the above. Target < 0.5 s on a quiet
  machine (the 1-minute load average is printed beside it).
- restart_ratio: `paxosctl down` then `paxosctl up -d` (which returns once
  every agent runs and there is a leader), wall time of the two commands;
  median of `--cycles` per cluster, alternated; aged / fresh. Target <= 1.2.
- startup_restarts: agent restarts the new supervisor reports (status
  `restarts`; a new supervisor counts from 0) one second after `up -d`
  returned, summed over the aged cycles. Target 0.
- proposal_errors: proposals that failed in any bench, per cluster. Target 0.

Exit 0 whatever the figures say (this is a measurement), 2 on bad
arguments (a manifest that rejects `--retain` included), 1 with a
one-line `error:` if a cluster fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from failover import acceptor_restart, wait_whole  # bench/failover.py, next to this file
from paxosctl import Client
from paxosctl.errors import RequestFailed
from paxosctl.errors import PaxosctlError
from paxosctl.manifest import toml_value
from paxosctl.layout import paths
from paxosctl.supervisor.pidfile import running_supervisor

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "cluster.toml"
MIB = 2**20
#: Throughput rounds per cluster (the issue's "median of 3 alternated rounds").
ROUNDS = 3
#: Seconds `up -d` may take before we call the cluster failed (it reports, not fails, slow starts).
UP_WAIT = 600.0
#: After `up -d`, how long agents still count as starting up for startup_restarts.
SETTLE = 1.0
#: Aging benches are `--round` commands, but at least this many (fewer CLI start-ups).
AGING_CHUNK_MIN = 10_000

TARGETS = {
    "rss_max_mib": 40.0,
    "rss_growth_mib": 5.0,
    "throughput_ratio": 0.9,
    "kill_to_running_ratio": 1.2,
    "kill_to_running_s": 0.5,
    "restart_ratio": 1.2,
}


class ClusterFailed(Exception):
    """A cluster did not do what a measurement needs; the message is one line."""


class BadArguments(Exception):
    """The options, or the manifest they make, are not usable; exit 2."""


def log(message: str) -> None:
    print(f"long_life: {message}", file=sys.stderr, flush=True)


def paxosctl_command() -> list[str]:
    """The `paxosctl` of the Python running this script (its venv), else the one on PATH."""
    beside = Path(sys.executable).parent / "paxosctl"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("paxosctl")
    if found is None:
        raise BadArguments("no paxosctl next to this Python or on PATH")
    return [found]


# ------------------------------------------------------------------ manifests


def toml_text(table: dict[str, Any], prefix: tuple[str, ...] = ()) -> str:
    """`table` (as tomllib reads it: scalars, lists and nested tables) as TOML."""
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    lines = [f"[{'.'.join(prefix)}]"] if prefix and (scalars or not tables) else []
    lines += [f"{key} = {toml_value(value)}" for key, value in scalars.items()]
    text = "\n".join(lines) + ("\n\n" if lines else "")
    return text + "".join(toml_text(sub, (*prefix, key)) for key, sub in tables.items())


def write_manifest(folder: Path, name: str, retain: int | None) -> Path:
    """examples/cluster.toml as cluster `name`, state in `folder`, any free metrics port."""
    data = tomllib.loads(EXAMPLE.read_text())
    data["cluster"]["name"] = name
    data["cluster"]["state_dir"] = str(folder / ".paxosctl" / name)
    data.setdefault("metrics", {})["listen"] = "127.0.0.1:0"  # 0: the OS picks a free port
    if retain is not None:
        data.setdefault("log", {})["retain"] = retain
    folder.mkdir(parents=True)
    manifest = folder / "cluster.toml"
    manifest.write_text(toml_text(data))
    return manifest


# ------------------------------------------------------------------- clusters


@dataclass
class Cluster:
    """One cluster in its own folder, driven through the real CLI (run in that
    folder, so its processes' command lines name it)."""

    name: str
    dir: Path
    manifest: Path
    #: Every supervisor/agent process seen, for a last-resort cleanup.
    seen: dict[int, psutil.Process] = field(default_factory=dict)
    errors: int = 0

    @property
    def state_dir(self) -> Path:
        return self.dir / ".paxosctl" / self.name

    def run(self, *args: str, timeout: float = 120,
            with_file: bool = True) -> subprocess.CompletedProcess[str]:
        """`paxosctl ARGS -f MANIFEST` (no -f with `with_file=False`)."""
        file = ["-f", str(self.manifest)] if with_file else []
        return subprocess.run([*paxosctl_command(), *args, *file],
                              cwd=self.dir, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)

    def run_ok(self, *args: str, timeout: float = 120) -> str:
        result = self.run(*args, timeout=timeout)
        if result.returncode != 0:
            raise ClusterFailed(f"paxosctl {args[0]} on the {self.name} cluster exited "
                                f"{result.returncode}: {cli_error(result.stderr)}")
        return result.stdout

    def validate(self) -> None:
        result = self.run("validate", str(self.manifest), timeout=60, with_file=False)
        if result.returncode != 0:  # 2: the manifest (e.g. [log] retain) is refused
            raise BadArguments(f"{self.name} manifest: {cli_error(result.stderr)}")

    def up(self) -> None:
        """`paxosctl up -d`: returns once every agent runs and there is a leader."""
        result = self.run("up", "-d", "--wait", str(UP_WAIT), timeout=UP_WAIT + 60)
        self.remember()  # also after a failure: the supervisor may be up
        if result.returncode != 0:
            raise ClusterFailed(f"paxosctl up -d on the {self.name} cluster exited "
                                f"{result.returncode}: {cli_error(result.stderr)} "
                                f"(log: {paths(self.state_dir)['log']})")

    def down(self) -> None:
        self.run_ok("down", timeout=90)

    def client(self) -> Client:
        return Client.for_manifest(self.manifest)

    def status(self) -> dict[str, Any]:
        """What `paxosctl status -o json` prints, over one control-socket request."""
        with self.client() as client:
            return client.request("status")

    def remember(self) -> None:
        supervisor = running_supervisor(self.state_dir)
        if supervisor is None:
            return
        try:
            processes = [supervisor, *supervisor.children(recursive=True)]
        except psutil.Error:
            processes = [supervisor]
        for process in processes:
            self.seen.setdefault(process.pid, process)

    def bench(self, requests: int, concurrency: int, value_size: int) -> dict[str, Any]:
        """`paxosctl bench -o json`; failed proposals are counted, not fatal."""
        result = self.run("bench", "--requests", str(requests), "--concurrency", str(concurrency),
                          "--value-size", str(value_size), "-o", "json",
                          timeout=120 + requests / 50)
        try:
            data = json.loads(result.stdout)
        except ValueError:
            raise ClusterFailed(f"paxosctl bench on the {self.name} cluster exited "
                                f"{result.returncode}: {cli_error(result.stderr)}") from None
        self.errors += data["errors"]
        return data

    def teardown(self) -> None:
        """`paxosctl down`, then SIGKILL to any process of ours still there."""
        if running_supervisor(self.state_dir) is not None:
            try:
                result = self.run("down", timeout=90)
                if result.returncode != 0:
                    log(f"down {self.name}: {cli_error(result.stderr)}")
            except subprocess.TimeoutExpired:
                log(f"down {self.name}: timed out")
        leftovers = [p for p in self.seen.values() if alive(p)]
        for process in leftovers:
            try:
                process.kill()
            except psutil.Error:
                pass
        if leftovers:
            psutil.wait_procs(leftovers, timeout=10)
            log(f"{self.name}: killed {len(leftovers)} leftover processes")


def cli_error(text: str) -> str:
    """The CLI's `error: ...` line in `text` (not the hint after it), else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line.removeprefix("error: ") for line in lines if line.startswith("error:")]
    return (errors or lines or ["(no output)"])[-1]


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# ------------------------------------------------------------- measurements


@dataclass
class Snapshot:
    """Agents' pids, resident memory and state-file bytes at one moment."""

    commands: int
    status: dict[str, Any]
    rss: dict[str, int]
    state: dict[str, int]
    state_total: int

    def roles(self, role: str) -> dict[str, int]:
        return {a["name"]: self.state[a["name"]] for a in self.status["agents"] if a["role"] == role}

    def pid(self, name: str) -> int | None:
        return next(a["pid"] for a in self.status["agents"] if a["name"] == name)


def snapshot(cluster: Cluster, commands: int) -> Snapshot:
    status = cluster.status()
    rss = {}
    for agent in status["agents"]:
        try:
            process = psutil.Process(agent["pid"])
            cluster.seen.setdefault(process.pid, process)
            rss[agent["name"]] = process.memory_info().rss
        except (psutil.Error, TypeError):  # TypeError: no pid (not running)
            raise ClusterFailed(f"{agent['name']} of the {cluster.name} cluster is not "
                                f"running ({agent['state']})") from None
    names = [a["name"] for a in status["agents"]]
    state, total = state_bytes(cluster.state_dir, names)
    return Snapshot(commands, status, rss, state, total)


def state_bytes(state_dir: Path, names: list[str]) -> tuple[dict[str, int], int]:
    """Bytes of each agent's entries in the state folder (`<name>` itself, or
    `<name>.` / `<name>-` followed by anything, folders summed), and of all."""
    sizes = dict.fromkeys(names, 0)
    total = 0
    folder = paths(state_dir)["state"]
    for entry in folder.iterdir() if folder.is_dir() else ():
        size = tree_bytes(entry)
        total += size
        owners = [n for n in names if entry.name == n or entry.name.startswith((n + ".", n + "-"))]
        if owners:
            sizes[max(owners, key=len)] += size
    return sizes, total


def tree_bytes(path: Path) -> int:
    try:
        if path.is_dir() and not path.is_symlink():
            return sum(tree_bytes(child) for child in path.iterdir())
        return path.lstat().st_size
    except FileNotFoundError:  # a -wal or -journal that went away meanwhile
        return 0


def age(cluster: Cluster, start: int, stop: int, chunk: int, args: argparse.Namespace) -> None:
    """Bench `cluster` from `start` to `stop` commands, `chunk` at a time, printing progress."""
    done = start
    while done < stop:
        n = min(chunk, stop - done)
        data = cluster.bench(n, args.concurrency, args.value_size)
        done += n
        log(f"{cluster.name}: {done:,}/{args.requests:,} commands "
            f"({data['throughput_per_s']:,.0f}/s, {data['errors']} failed)")


def oldest_slot(cluster: Cluster) -> tuple[int | None, str | None]:
    """The first slot the cluster's `decided` serves (from a learner, as
    `paxosctl decided` reads it), or an error text."""
    try:
        with cluster.client() as client:
            entries = client.decided(None, limit=1)
    except RequestFailed as e:
        return None, str(e)
    return (entries[0].slot if entries else None), None


def throughput_rounds(clusters: list[Cluster], args: argparse.Namespace) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {c.name: [] for c in clusters}
    for i in range(ROUNDS):
        for cluster in clusters:
            data = cluster.bench(args.round, args.concurrency, args.value_size)
            results[cluster.name].append(data["throughput_per_s"])
            log(f"round {i + 1}/{ROUNDS} {cluster.name}: {data['throughput_per_s']:,.0f}/s")
    return results


def kill_rounds(clusters: list[Cluster], kills: int) -> dict[str, list[float]]:
    """Seconds from SIGKILL of acceptor-0 to its new incarnation running, alternated."""
    results: dict[str, list[float]] = {c.name: [] for c in clusters}
    for i in range(kills):
        for cluster in clusters:
            with cluster.client() as client:
                # tries=1 kills the first acceptor, acceptor-0, once.
                [seconds] = acceptor_restart(client, 1)
            cluster.remember()
            results[cluster.name].append(seconds)
            log(f"kill {i + 1}/{kills} {cluster.name}: acceptor-0 running again "
                f"after {seconds:.3f}s")
    return results


def restart_cycle(cluster: Cluster) -> tuple[float, float, int]:
    """(down seconds, up -d seconds, agent restarts during start-up)."""
    with cluster.client() as client:
        wait_whole(client)  # a kill's restart in progress would otherwise count
    start = time.perf_counter()
    cluster.down()
    stopped = time.perf_counter()
    cluster.up()
    served = time.perf_counter()
    time.sleep(SETTLE)
    with cluster.client() as client:
        wait_whole(client)
        status = client.request("status")
    cluster.remember()
    return stopped - start, served - stopped, sum(a["restarts"] for a in status["agents"])


def restart_rounds(clusters: list[Cluster], cycles: int) -> dict[str, list[tuple[float, float, int]]]:
    results: dict[str, list[tuple[float, float, int]]] = {c.name: [] for c in clusters}
    for i in range(cycles):
        for cluster in clusters:
            down_s, up_s, restarts = restart_cycle(cluster)
            results[cluster.name].append((down_s, up_s, restarts))
            log(f"down/up {i + 1}/{cycles} {cluster.name}: down {down_s:.2f}s, "
                f"up -d {up_s:.2f}s, {restarts} restarts")
    return results


# -------------------------------------------------------------------- figures


@dataclass
class Figures:
    """The figure lines, printed as they come, and the same as JSON."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, name: str, text: str, target: str, met: bool, **data: Any) -> None:
        line = f"{name} {text} target{target} {'met' if met else 'MISSED'}"
        print(line, flush=True)
        self.items[name] = {"line": line, "met": met, "target": target, **data}


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def mib(n: float) -> str:
    return f"{n / MIB:.1f}"


def memory_figures(figures: Figures, warm: Snapshot, end: Snapshot) -> None:
    top = max(end.rss, key=end.rss.get)
    figures.add("rss_max_mib", f"aged={mib(end.rss[top])} ({top})",
                f"<={TARGETS['rss_max_mib']:g}", end.rss[top] <= TARGETS["rss_max_mib"] * MIB,
                value=end.rss[top] / MIB, agent=top,
                rss_mib={n: v / MIB for n, v in end.rss.items()})
    growth = {n: end.rss[n] - warm.rss[n] for n in end.rss}
    worst = max(growth, key=lambda n: abs(growth[n]))
    restarted = [n for n in growth if warm.pid(n) != end.pid(n)]
    note = f" restarted since warmup: {','.join(restarted)}" if restarted else ""
    figures.add("rss_growth_mib", f"max={growth[worst] / MIB:+.1f} ({worst}; "
                f"{warm.commands:,} -> {end.commands:,} commands){note}",
                f"<={TARGETS['rss_growth_mib']:g}", abs(growth[worst]) <= TARGETS["rss_growth_mib"] * MIB,
                value=growth[worst] / MIB, agent=worst,
                warmup_rss_mib={n: v / MIB for n, v in warm.rss.items()}, restarted=restarted)


def state_figures(figures: Figures, warm: Snapshot, end: Snapshot, cluster: Cluster,
                  args: argparse.Namespace) -> None:
    acceptors = end.roles("acceptor")
    top = max(acceptors, key=acceptors.get)
    bound = args.acceptor_bound_mib * MIB
    figures.add("acceptor_state_bytes",
                f"max={acceptors[top]:,} ({top}, {mib(acceptors[top])} MiB) "
                f"at_warmup={max(warm.roles('acceptor').values()):,} "
                f"acceptors={sum(acceptors.values()):,} all_agents={end.state_total:,}",
                f"<={args.acceptor_bound_mib:g}MiB",
                acceptors[top] <= bound, value=acceptors[top], agent=top, bound=bound,
                per_agent=end.state, warmup_per_agent=warm.state, total=end.state_total)
    learners = end.roles("learner")
    top = max(learners, key=learners.get)
    decided = end.status.get("decided_up_to")
    oldest, error = oldest_slot(cluster)
    kept = decided - oldest + 1 if decided is not None and oldest is not None else None
    if not args.retain:  # None or 0: keep it all
        target, met = ":oldest_slot=0", oldest == 0
    else:
        target, met = f":kept_slots<={args.retain}", kept is not None and kept <= args.retain
    where = f"oldest_slot={oldest}" if error is None else f"oldest_slot=? ({error})"
    figures.add("learner_state_bytes",
                f"max={learners[top]:,} ({top}, {mib(learners[top])} MiB) "
                f"at_warmup={max(warm.roles('learner').values()):,} "
                f"learners={sum(learners.values()):,} {where} decided_up_to={decided} "
                f"retain={args.retain or 'all'}",
                target, met, value=learners[top], agent=top, oldest_slot=oldest,
                decided_up_to=decided, kept_slots=kept, retain=args.retain)


def throughput_figure(figures: Figures, rounds: dict[str, list[float]]) -> None:
    aged, fresh = statistics.median(rounds["aged"]), statistics.median(rounds["fresh"])
    r = ratio(aged, fresh)
    figures.add("throughput_ratio", f"{r:.2f} (aged {aged:,.0f}/s, fresh {fresh:,.0f}/s; "
                f"median of {ROUNDS})", f">={TARGETS['throughput_ratio']:g}",
                r >= TARGETS["throughput_ratio"], value=r, rounds=rounds)


def kill_figures(figures: Figures, kills: dict[str, list[float]]) -> None:
    aged, fresh = statistics.median(kills["aged"]), statistics.median(kills["fresh"])
    r = ratio(aged, fresh)
    n = len(kills["aged"])
    figures.add("kill_to_running_ratio", f"{r:.2f} (aged p50 {aged:.3f}s, fresh p50 "
                f"{fresh:.3f}s; {n} kill{'s' if n != 1 else ''} each)", f"<={TARGETS['kill_to_running_ratio']:g}",
                r <= TARGETS["kill_to_running_ratio"], value=r, seconds=kills)
    load = os.getloadavg()[0]
    figures.add("kill_to_running_s", f"aged_p50={aged:.3f} (load1 {load:.2f})",
                f"<{TARGETS['kill_to_running_s']:g}", aged < TARGETS["kill_to_running_s"],
                value=aged, load1=load)


def restart_figures(figures: Figures, cycles: dict[str, list[tuple[float, float, int]]]) -> None:
    def median_total(name: str) -> float:
        return statistics.median(d + u for d, u, _ in cycles[name])

    aged, fresh = median_total("aged"), median_total("fresh")
    r = ratio(aged, fresh)
    up = {name: statistics.median(u for _, u, _ in rows) for name, rows in cycles.items()}
    figures.add("restart_ratio", f"{r:.2f} (aged {aged:.2f}s, fresh {fresh:.2f}s: down + up -d, "
                f"of which up -d {up['aged']:.2f}s / {up['fresh']:.2f}s; median of "
                f"{len(cycles['aged'])})", f"<={TARGETS['restart_ratio']:g}",
                r <= TARGETS["restart_ratio"], value=r,
                cycles={n: [{"down_s": d, "up_s": u, "restarts": k} for d, u, k in rows]
                        for n, rows in cycles.items()})
    restarts = {name: sum(k for _, _, k in rows) for name, rows in cycles.items()}
    figures.add("startup_restarts", f"aged={restarts['aged']} fresh={restarts['fresh']} "
                f"({len(cycles['aged'])} start-ups each)", "=0", restarts["aged"] == 0,
                value=restarts["aged"], per_cluster=restarts)


def error_figure(figures: Figures, clusters: list[Cluster]) -> None:
    errors = {c.name: c.errors for c in clusters}
    figures.add("proposal_errors", " ".join(f"{n}={e}" for n, e in errors.items()), "=0",
                not any(errors.values()), value=sum(errors.values()), per_cluster=errors)


# ----------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600_000,
                        help="commands the aged cluster decides in all (default 600000)")
    parser.add_argument("--warmup", type=int, default=30_000,
                        help="commands before the first memory reading (default 30000)")
    parser.add_argument("--round", type=int, default=30_000,
                        help="commands per throughput round (default 30000)")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--kills", type=int, default=5, help="acceptor-0 kills per cluster")
    parser.add_argument("--cycles", type=int, default=3, help="down/up cycles per cluster")
    parser.add_argument("--retain", type=int, default=None,
                        help="write [log] retain = N (slots; 0: all) into both manifests")
    parser.add_argument("--acceptor-bound-mib", type=float, default=16.0,
                        help="the acceptor state bound checked (default 16)")
    parser.add_argument("--json", action="store_true", help="also print one JSON object at the end")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (state, logs)")
    args = parser.parse_args(argv)
    for name in ("requests", "warmup", "round", "concurrency", "kills", "cycles"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: must be at least 1")
    if args.value_size < 0:
        parser.error("--value-size: must be at least 0")
    if args.retain is not None and args.retain < 0:
        parser.error("--retain: must be at least 0 (0 keeps the whole log)")
    if args.acceptor_bound_mib <= 0:
        parser.error("--acceptor-bound-mib: must be positive")
    if args.warmup > args.requests:
        parser.error(f"--warmup ({args.warmup}) is more than --requests ({args.requests})")
    return args


def measure(aged: Cluster, fresh: Cluster, args: argparse.Namespace, figures: Figures) -> None:
    aged.up()
    log(f"aged cluster up; {args.warmup:,} warm-up commands")
    chunk = max(args.round, AGING_CHUNK_MIN)
    age(aged, 0, args.warmup, chunk, args)
    warm = snapshot(aged, args.warmup)
    age(aged, args.warmup, args.requests, chunk, args)
    end = snapshot(aged, args.requests)
    memory_figures(figures, warm, end)
    state_figures(figures, warm, end, aged, args)

    fresh.up()
    log("fresh cluster up; alternated throughput rounds")
    pair = [fresh, aged]  # fresh first in every alternation
    throughput_figure(figures, throughput_rounds(pair, args))
    kill_figures(figures, kill_rounds(pair, args.kills))
    restart_figures(figures, restart_rounds(pair, args.cycles))
    error_figure(figures, pair)


def interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (a CI timeout, say) unwinds like Ctrl-C, so both clusters still go down.
    signal.signal(signal.SIGTERM, interrupt)
    work = Path(tempfile.mkdtemp(prefix="longlife-"))
    log(f"work dir {work}")
    clusters = [Cluster(name, work / name, write_manifest(work / name, name, args.retain))
                for name in ("aged", "fresh")]
    figures = Figures()
    failed = True
    code = 1
    try:
        for cluster in clusters:
            cluster.validate()
        measure(clusters[0], clusters[1], args, figures)
        failed = False
        code = 0
    except BadArguments as e:
        print(f"error: {e}", file=sys.stderr)
        code = 2
    except (ClusterFailed, PaxosctlError, subprocess.TimeoutExpired) as e:
        print(f"error: {e}", file=sys.stderr)
    except SystemExit as e:  # bench/failover.py's helpers give up this way
        if not isinstance(e.code, str):
            raise
        print(f"error: {e.code}", file=sys.stderr)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        code = 130
    finally:
        for cluster in clusters:
            cluster.teardown()
        if args.keep or (failed and code != 2):
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps({"workdir": str(work), "ok": not failed,
                          "params": {k: v for k, v in vars(args).items() if k not in ("json", "keep")},
                          "figures": figures.items}))
    return code


if __name__ == "__main__":
    sys.exit(main())
