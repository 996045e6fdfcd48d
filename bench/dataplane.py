"""The data-plane figures, side by side in one run (figures and ratios, not verdicts).

    python bench/dataplane.py [--rounds 3] [--only pysyncobj,proto,paxosctl,batch,base,sigstop,failover]
                              [--base CHECKOUT] [--json FILE] [--proto-python PATH]

Measured in the same session, in alternating rounds (each round: PySyncObj,
the prototype at concurrency 256, paxosctl at 256, the prototype at
concurrency 1, paxosctl at 1; the two c=1 runs of paxosctl and `--base`
in alternating order, each after both clusters went quiet), the median of
the rounds reported:

- PySyncObj 0.3.17's pipelined figure: ../shared/bench/pysyncobj_bench.py
  (3 processes on loopback, no fsync, the client in the leader).
- The data-plane prototype, ../shared/bench/dataplane_proto/run.py: base
  run (concurrency 256) and `--c 1 --n 20000 --warm 1000` (latency).
- paxosctl on examples/cluster.toml (fsync on) in a temporary state dir:
  `paxosctl bench -o json` at concurrency 256 with 16-byte values
  (throughput, cpu_us_per_command) and at concurrency 1 (p50/p99); with
  part "batch", the c=256 run adds `--batch 256` (then `propose_many`).
- With `--base CHECKOUT` (part "base"): the same two runs on a second
  cluster started from another checkout's `.venv/bin/paxosctl` (the code
  before a change), for the "p99 not above before" targets.

Then, once, on the same cluster:

- SIGSTOP: with no load, the supervisor is stopped for 5 s; meanwhile
  `paxosctl propose --timeout 3 x` runs (decided? how long?); after SIGCONT,
  `paxosctl status -o json` is read for a few seconds: did any agent's
  restart count (or pid) change?
- Failover: leader `kill -9` under load, time to the first decision of a
  command sent after the kill, p50 of `--failover-tries` (bench/failover.py).

The PySyncObj and prototype runs use a separate Python (`--proto-python`,
default /tmp/proto-venv/bin/python, made with `python3 -m venv` and pip
install msgspec pysyncobj==0.3.17 psutil if it is missing). Every subprocess
has a timeout and runs in its own process group, killed on timeout; the
cluster is always brought down (`paxosctl down`, then SIGKILL to any of its
processes left), also on an error or SIGTERM.

Prints a markdown table (figure, measured, target, ratio, met/MISSED/n/a)
to stdout, progress to stderr. Exit 0 when every part asked for produced
its figures (whatever the verdicts), 1 when one failed (its rows say why),
2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/failover.py, next to this file

from failover import leader_failover, wait_whole  # noqa: E402
from paxosctl import Client  # noqa: E402
from paxosctl.manifest import toml_value  # noqa: E402
from paxosctl.supervisor.pidfile import running_supervisor  # noqa: E402
from paxosctl.tools.bench import cpu_seconds  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cluster.toml"
SHARED = ROOT.parent / "shared" / "bench"
DEFAULT_PROTO_PYTHON = Path("/tmp/proto-venv/bin/python")
PROTO_PACKAGES = ("msgspec", "pysyncobj==0.3.17", "psutil")
PARTS = ("pysyncobj", "proto", "paxosctl", "batch", "base", "sigstop", "failover")

#: Targets (issue 24): throughput >= 3x PySyncObj and >= 0.5x the prototype;
#: the cluster's CPU (agents + supervisor) <= 2x the prototype's summed server
#: CPU in the same run, the supervisor's <= 1 us; the client's CPU <= 10 us one
#: future per command and <= 3 us through the batch API, both quiet-day figures
#: scaled by the prototype's server CPU against its quiet-day 6.0 us;
#: concurrency-1 p50 <= 1.3x the prototype's; c=1 and c=256 p99 not above the
#: `--base` checkout's; SIGSTOP: propose decided, no restart; failover p50 <= 1 s.
TARGET_THROUGHPUT_RATIO = 3.0
TARGET_PROTO_THROUGHPUT_RATIO = 0.5
TARGET_CLUSTER_CPU_RATIO = 2.0
TARGET_SUPERVISOR_CPU_US = 1.0
TARGET_CLIENT_CPU_US = 10.0
TARGET_CLIENT_BATCH_CPU_US = 3.0
#: The prototype's summed server CPU per command on a quiet day (its REPORT.md).
PROTO_QUIET_CPU_US = 6.0
TARGET_P50_RATIO = 1.3
TARGET_BASE_P99_RATIO = 1.0
TARGET_FAILOVER_S = 1.0

#: The supervisor is stopped this long; the proposal meanwhile waits this long.
SIGSTOP_SECONDS = 5.0
SIGSTOP_PROPOSE_TIMEOUT = 3.0

#: Seconds each kind of subprocess may take.
TIMEOUT_PYSYNCOBJ = 300
TIMEOUT_PROTO = 120
TIMEOUT_CLI = 120
TIMEOUT_UP = 120
TIMEOUT_VENV = 600


def log(message: str) -> None:
    print(f"dataplane: {message}", file=sys.stderr, flush=True)


class PartFailed(Exception):
    """A part could not produce its figure; the message is one line."""


# ------------------------------------------------------------- subprocesses


@dataclass
class Ran:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def run_bounded(args: list[str], *, timeout: float, cwd: Path | None = None) -> Ran:
    """Run `args` in a process group of its own; on timeout, SIGKILL that group
    (the command and whatever it started there) and raise PartFailed."""
    start = time.monotonic()
    process = subprocess.Popen(args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except BaseException as e:  # the timeout, or Ctrl-C/SIGTERM meanwhile
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.communicate(timeout=30)
        if isinstance(e, subprocess.TimeoutExpired):
            raise PartFailed(f"{Path(args[1] if len(args) > 1 else args[0]).name} took over "
                             f"{timeout:g}s: killed") from None
        raise
    return Ran(list(args), process.returncode, out, err, time.monotonic() - start)


def last_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error")]
    return (errors or lines or ["(no output)"])[-1][:300]


# ------------------------------------------------------ the reference Python


def proto_python(path: Path, make: bool) -> Path:
    """A Python with msgspec, pysyncobj 0.3.17 and psutil: `path`, made if `make`
    and missing."""
    if not path.exists():
        if not make:
            raise PartFailed(f"--proto-python {path} does not exist")
        venv = path.parent.parent
        log(f"making {venv} (python3 -m venv; pip install {' '.join(PROTO_PACKAGES)})")
        made = run_bounded(["python3", "-m", "venv", str(venv)], timeout=TIMEOUT_VENV)
        if made.returncode != 0:
            raise PartFailed(f"python3 -m venv {venv}: {last_error(made.stderr)}")
        pip = run_bounded([str(path), "-m", "pip", "install", "-q", *PROTO_PACKAGES],
                          timeout=TIMEOUT_VENV)
        if pip.returncode != 0:
            raise PartFailed(f"pip install into {venv}: {last_error(pip.stderr)}")
    check = run_bounded([str(path), "-c", "import msgspec, psutil; from importlib.metadata "
                         "import version; print(version('pysyncobj'))"], timeout=60)
    if check.returncode != 0 or check.stdout.strip() != "0.3.17":
        raise PartFailed(f"{path} lacks msgspec/psutil/pysyncobj 0.3.17: "
                         f"{last_error(check.stderr or check.stdout)}")
    return path


# ----------------------------------------------------------------- the parts


PYSYNCOBJ_LINE = re.compile(r"pysyncobj: (?P<ops>[\d.]+) ops/s pipelined")


#: Before a c=1 run: both clusters under this share of one CPU (idle, the
#: two clusters' ticks and heartbeats read 0.09-0.15 here), waited for up to
#: SETTLE_SECONDS.
QUIET_CPU = 0.25
SETTLE_SECONDS = 10.0


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    """The CPU seconds `processes` used so far, together (those gone count 0)."""
    return sum(sum(times) for times in map(cpu_seconds, processes) if times is not None)


def settle(clusters: list["Cluster"], quiet: float = QUIET_CPU, longest: float = SETTLE_SECONDS) -> None:
    """Wait (up to `longest` s) until the processes of `clusters` together use
    less than `quiet` of one CPU over a 0.2 s window: what a cluster does
    after a run (commits, retention) must not land in the next one's figures."""
    deadline = time.monotonic() + longest
    while time.monotonic() < deadline:
        processes = [p for c in clusters for p in c.seen.values() if _alive(p)]
        before, started = _cpu_seconds(processes), time.monotonic()
        time.sleep(0.2)
        if (_cpu_seconds(processes) - before) / (time.monotonic() - started) < quiet:
            return
    log(f"settle: the clusters still used CPU after {longest:g} s; measuring anyway")


def pysyncobj_round(python: Path, seq: int) -> dict[str, Any]:
    """PySyncObj's pipelined ops/s (its default run; `--seq` only shortens the
    sequential part, which waits ~100 ms per call and is not used here)."""
    script = SHARED / "pysyncobj_bench.py"
    ran = run_bounded([str(python), str(script), "--seq", str(seq)], timeout=TIMEOUT_PYSYNCOBJ,
                      cwd=SHARED)
    found = PYSYNCOBJ_LINE.search(ran.stdout)
    if ran.returncode != 0 or found is None:
        raise PartFailed(f"pysyncobj_bench.py exited {ran.returncode}: "
                         f"{last_error(ran.stderr or ran.stdout)}")
    return {"pipelined_ops_per_s": float(found["ops"]), "seconds": round(ran.seconds, 1)}


def proto_round(python: Path, *extra: str) -> dict[str, Any]:
    """One run.py: its JSON line (tput, p50/p99 in ms, cpu_us per process...)."""
    folder = SHARED / "dataplane_proto"
    ran = run_bounded([str(python), str(folder / "run.py"), *extra], timeout=TIMEOUT_PROTO,
                      cwd=folder)
    line = next((x for x in ran.stdout.splitlines() if x.startswith("{")), None)
    if ran.returncode != 0 or line is None:
        raise PartFailed(f"dataplane_proto/run.py {' '.join(extra)} exited {ran.returncode}: "
                         f"{last_error(ran.stderr)}")
    data = json.loads(line)
    return {"tput": data["tput"], "p50_ms": data["p50"], "p99_ms": data["p99"],
            "cpu_us": data.get("cpu_us"), "cpu_server_us": data.get("cpu_server_us")}


def paxosctl_command() -> list[str]:
    """The `paxosctl` of the Python running this script (its venv), else the one on PATH."""
    beside = Path(sys.executable).parent / "paxosctl"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("paxosctl")
    if found is None:
        raise PartFailed("no paxosctl next to this Python or on PATH")
    return [found]


def toml_text(table: dict[str, Any], prefix: tuple[str, ...] = ()) -> str:
    """`table` (as tomllib reads it) as TOML."""
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    lines = [f"[{'.'.join(prefix)}]"] if prefix and (scalars or not tables) else []
    lines += [f"{key} = {toml_value(value)}" for key, value in scalars.items()]
    text = "\n".join(lines) + ("\n\n" if lines else "")
    return text + "".join(toml_text(sub, (*prefix, key)) for key, sub in tables.items())


@dataclass
class Cluster:
    """examples/cluster.toml in a temp folder of its own, driven through the real CLI."""

    dir: Path
    name: str = "dataplane"
    #: The `paxosctl` to run (another checkout's for `--base`); default: ours.
    command: list[str] = field(default_factory=list)
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    def __post_init__(self) -> None:
        data = tomllib.loads(EXAMPLE.read_text())
        data["cluster"]["name"] = self.name
        data["cluster"]["state_dir"] = str(self.state_dir)
        data.setdefault("metrics", {})["listen"] = "127.0.0.1:0"  # the OS picks a free port
        self.dir.mkdir(parents=True, exist_ok=True)
        self.manifest.write_text(toml_text(data))
        if not self.command:
            self.command = paxosctl_command()

    @property
    def manifest(self) -> Path:
        return self.dir / "cluster.toml"

    @property
    def state_dir(self) -> Path:
        return self.dir / ".paxosctl" / self.name

    def run(self, *args: str, timeout: float = TIMEOUT_CLI) -> Ran:
        return run_bounded([*self.command, *args, "-f", str(self.manifest)],
                           timeout=timeout, cwd=self.dir)

    def up(self) -> None:
        ran = self.run("up", "-d", "--wait", "60", timeout=TIMEOUT_UP)
        self.remember()
        if ran.returncode != 0:
            raise PartFailed(f"paxosctl up -d exited {ran.returncode}: {last_error(ran.stderr)}")

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
        try:
            with Client.for_manifest(self.manifest) as client:
                for agent in client.request("status")["agents"]:
                    if agent.get("pid"):
                        self.seen.setdefault(agent["pid"], psutil.Process(agent["pid"]))
        except Exception:  # noqa: BLE001 - best effort, for the cleanup only
            pass

    def bench(self, requests: int, concurrency: int, warmup: int,
              batch: int | None = None, seconds: float | None = None) -> dict[str, Any]:
        """`paxosctl bench -o json`: `requests` commands, or with `seconds`
        (requests then unused) as many as that long allows."""
        extra = ["--batch", str(batch)] if batch else []
        size = ["--duration", f"{seconds}s"] if seconds else ["--requests", str(requests)]
        ran = self.run("bench", *size, "--concurrency", str(concurrency),
                       "--value-size", "16", "--warmup", str(warmup), "-o", "json", *extra,
                       timeout=TIMEOUT_CLI + (seconds or 0) + (requests + warmup) / 50)
        try:
            data = json.loads(ran.stdout)
        except ValueError:
            raise PartFailed(f"paxosctl bench exited {ran.returncode}: "
                             f"{last_error(ran.stderr)}") from None
        return data

    def status(self) -> dict[str, Any]:
        ran = self.run("status", "-o", "json", timeout=60)
        try:
            return json.loads(ran.stdout)
        except ValueError:
            raise PartFailed(f"paxosctl status -o json exited {ran.returncode}: "
                             f"{last_error(ran.stderr)}") from None

    def teardown(self) -> None:
        """`paxosctl down`, then SIGKILL to any process of ours still there."""
        supervisor = running_supervisor(self.state_dir)
        if supervisor is not None:
            try:
                supervisor.resume()  # in case it was left stopped
            except psutil.Error:
                pass
            self.remember()
            try:
                ran = self.run("down", timeout=90)
                if ran.returncode != 0:
                    log(f"down: {last_error(ran.stderr)}")
            except PartFailed as e:
                log(f"down: {e}")
        leftovers = [p for p in self.seen.values() if _alive(p)]
        for process in leftovers:
            try:
                process.kill()
            except psutil.Error:
                pass
        if leftovers:
            psutil.wait_procs(leftovers, timeout=10)
            log(f"killed {len(leftovers)} leftover cluster processes")


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def sigstop_check(cluster: Cluster, settle: float) -> dict[str, Any]:
    """Stop the supervisor SIGSTOP_SECONDS; propose meanwhile; after SIGCONT, did
    any agent restart?"""
    before = cluster.status()
    restarts = {a["name"]: (a["restarts"], a["pid"]) for a in before["agents"]}
    supervisor = running_supervisor(cluster.state_dir)
    if supervisor is None:
        raise PartFailed("no supervisor to stop")
    propose = [*paxosctl_command(), "propose", "--timeout", f"{SIGSTOP_PROPOSE_TIMEOUT:g}",
               "-o", "json", "-f", str(cluster.manifest), "x"]
    process = None
    stopped = time.monotonic()
    supervisor.suspend()
    try:
        process = subprocess.Popen(propose, cwd=cluster.dir, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        started = time.monotonic()
        ended = None
        while time.monotonic() - stopped < SIGSTOP_SECONDS:
            if ended is None and process.poll() is not None:
                ended = time.monotonic()
            time.sleep(0.005)
    finally:
        supervisor.resume()
    resumed = time.monotonic()
    try:
        out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate(timeout=10)
    if ended is None:
        ended = time.monotonic()
    decided = process.returncode == 0
    # The supervisor may only notice the missed heartbeats once it runs
    # again: watch its status for `settle` seconds.
    changed: set[str] = set()
    deadline = time.monotonic() + settle
    while True:
        for agent in cluster.status()["agents"]:
            old = restarts.get(agent["name"])
            if old is None or agent["restarts"] != old[0] or (agent["pid"] and agent["pid"] != old[1]):
                changed.add(agent["name"])
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    return {"decided": decided, "exit_code": process.returncode,
            "seconds": round(ended - started, 3),
            "answer": (out.strip() or last_error(err))[:300],
            "stopped_s": round(resumed - stopped, 3),
            "restarted": sorted(changed)}


def failover_check(cluster: Cluster, tries: int) -> dict[str, Any]:
    """bench/failover.py's leader failover: seconds from kill -9 to the first
    decision of a command sent after it, under load."""
    with Client.for_manifest(cluster.manifest) as client:
        try:
            gaps = leader_failover(client, tries)
            wait_whole(client)
        except SystemExit as e:  # failover.py gives up this way
            raise PartFailed(str(e.code)) from None
        finally:
            cluster.remember()
    if not gaps:
        raise PartFailed(f"no decision after any of {tries} leader kills")
    return {"p50_s": round(statistics.median(gaps), 4), "max_s": round(max(gaps), 4),
            "kills": tries, "measured": len(gaps)}


# --------------------------------------------------------------- the report


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


@dataclass
class Row:
    figure: str
    measured: str
    target: str
    ratio: str
    verdict: str  # met, MISSED, n/a (a figure it needs is missing)


def fmt(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}{unit}"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def rows(results: dict[str, Any]) -> list[Row]:
    m = results["medians"]
    out: list[Row] = []
    px_tput, pso = m.get("paxosctl_tput"), m.get("pysyncobj_tput")
    ratio = px_tput / pso if px_tput is not None and pso else None
    out.append(Row("throughput, concurrency 256, 16-byte values",
                   f"paxosctl {fmt(px_tput, '/s', 0)}; PySyncObj pipelined {fmt(pso, '/s', 0)}",
                   f">= {TARGET_THROUGHPUT_RATIO:g}x PySyncObj", fmt(ratio, "x"),
                   verdict(None if ratio is None else ratio >= TARGET_THROUGHPUT_RATIO)))
    proto_tput = m.get("proto_tput")
    ratio = px_tput / proto_tput if px_tput is not None and proto_tput else None
    out.append(Row("throughput against the prototype, concurrency 256",
                   f"paxosctl {fmt(px_tput, '/s', 0)}; prototype {fmt(proto_tput, '/s', 0)}",
                   f">= {TARGET_PROTO_THROUGHPUT_RATIO:g}x prototype", fmt(ratio, "x"),
                   verdict(None if ratio is None else ratio >= TARGET_PROTO_THROUGHPUT_RATIO)))
    cluster_cpu, proto_cpu = m.get("paxosctl_cpu_cluster"), m.get("proto_cpu_server")
    ratio = cluster_cpu / proto_cpu if cluster_cpu is not None and proto_cpu else None
    out.append(Row("cluster CPU per decided command (agents + supervisor), c=256",
                   f"{fmt(cluster_cpu, ' us')}; prototype {fmt(proto_cpu, ' us')} server side",
                   f"<= {TARGET_CLUSTER_CPU_RATIO:g}x prototype", fmt(ratio, "x"),
                   verdict(None if ratio is None else ratio <= TARGET_CLUSTER_CPU_RATIO)))
    # The client's targets are quiet-day figures: scaled by how much slower
    # the prototype ran today than on its quiet day.
    scale = proto_cpu / PROTO_QUIET_CPU_US if proto_cpu else None
    for key, what, target in (("paxosctl_cpu_client", "one future per command", TARGET_CLIENT_CPU_US),
                              ("batch_cpu_client", "batch API (--batch 256)",
                               TARGET_CLIENT_BATCH_CPU_US)):
        ours = m.get(key)
        if ours is None and key == "batch_cpu_client" and "batch_tput" not in m:
            continue
        limit = target * scale if scale is not None else None
        out.append(Row(f"the client's CPU per command, {what}, c=256", fmt(ours, " us"),
                       f"<= {target:g} us x {fmt(scale, '', 2)} (prototype today / quiet day)",
                       fmt(None if ours is None or limit is None else ours / limit, "x"),
                       verdict(None if ours is None or limit is None else ours <= limit)))
    sup = m.get("paxosctl_cpu_supervisor")
    out.append(Row("supervisor CPU per decided command, c=256", fmt(sup, " us"),
                   f"<= {TARGET_SUPERVISOR_CPU_US:g} us",
                   fmt(None if sup is None else sup / TARGET_SUPERVISOR_CPU_US, "x"),
                   verdict(None if sup is None else sup <= TARGET_SUPERVISOR_CPU_US)))
    ours, proto = m.get("paxosctl_c1_p50_ms"), m.get("proto_c1_p50_ms")
    r = ours / proto if ours is not None and proto else None
    out.append(Row("concurrency-1 latency p50",
                   f"paxosctl {fmt(ours, ' ms')}; prototype {fmt(proto, ' ms')}",
                   f"<= {TARGET_P50_RATIO:g}x prototype", fmt(r, "x"),
                   verdict(None if r is None else r <= TARGET_P50_RATIO)))
    for key, what in (("c1_p99_ms", "concurrency-1 latency p99"),
                      ("p99_ms", "concurrency-256 latency p99")):
        ours, base = m.get(f"paxosctl_{key}"), m.get(f"base_{key}")
        if base is None and "base_tput" not in m:
            continue
        r = ours / base if ours is not None and base else None
        out.append(Row(f"{what} against the code before (--base)",
                       f"paxosctl {fmt(ours, ' ms')}; before {fmt(base, ' ms')}",
                       "not above before", fmt(r, "x"),
                       verdict(None if r is None else r <= TARGET_BASE_P99_RATIO)))
    stop = results.get("sigstop")
    if stop is not None and "error" not in stop:
        out.append(Row(f"propose --timeout {SIGSTOP_PROPOSE_TIMEOUT:g} while the supervisor is "
                       f"SIGSTOPped {SIGSTOP_SECONDS:g}s",
                       f"{'decided' if stop['decided'] else 'not decided'} "
                       f"(exit {stop['exit_code']}) after {stop['seconds']:.2f} s",
                       "decided", "-", verdict(stop["decided"])))
        out.append(Row("agents restarted because of the SIGSTOP",
                       ", ".join(stop["restarted"]) or "none", "none", "-",
                       verdict(not stop["restarted"])))
    elif stop is not None:
        out.append(Row("SIGSTOP of the supervisor", f"error: {stop['error']}", "decided, no restart",
                       "-", "n/a"))
    fo = results.get("failover")
    if fo is not None and "error" not in fo:
        out.append(Row(f"leader kill -9 under load to the next decision, p50 of {fo['kills']}",
                       f"{fo['p50_s']:.3f} s (max {fo['max_s']:.3f} s, {fo['measured']} measured)",
                       f"<= {TARGET_FAILOVER_S:g} s", fmt(fo["p50_s"] / TARGET_FAILOVER_S, "x"),
                       verdict(fo["p50_s"] <= TARGET_FAILOVER_S)))
    elif fo is not None:
        out.append(Row("leader kill -9 under load", f"error: {fo['error']}", f"<= {TARGET_FAILOVER_S:g} s",
                       "-", "n/a"))
    return out


def table(rows_: list[Row]) -> str:
    lines = ["| figure | measured (median) | target | ratio | |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r.figure} | {r.measured} | {r.target} | {r.ratio} | {r.verdict} |"
              for r in rows_]
    return "\n".join(lines)


def reference_table(m: dict[str, Any], rounds: int) -> str:
    """Every median measured, for the record."""
    names = {
        "pysyncobj_tput": "PySyncObj pipelined ops/s",
        "proto_tput": "prototype c=256 commands/s",
        "proto_cpu_server": "prototype c=256 CPU us/command (server processes)",
        "proto_c1_p50_ms": "prototype c=1 p50 ms", "proto_c1_p99_ms": "prototype c=1 p99 ms",
        "paxosctl_tput": "paxosctl c=256 decided/s",
        "paxosctl_p50_ms": "paxosctl c=256 p50 ms", "paxosctl_p99_ms": "paxosctl c=256 p99 ms",
        "paxosctl_cpu_cluster": "paxosctl c=256 cluster CPU us/command",
        "paxosctl_cpu_supervisor": "paxosctl c=256 supervisor CPU us/command",
        "paxosctl_cpu_client": "paxosctl c=256 client CPU us/command",
        "paxosctl_c1_p50_ms": "paxosctl c=1 p50 ms", "paxosctl_c1_p99_ms": "paxosctl c=1 p99 ms",
        "batch_tput": "paxosctl --batch 256 c=256 decided/s",
        "batch_cpu_cluster": "paxosctl --batch 256 cluster CPU us/command",
        "batch_cpu_client": "paxosctl --batch 256 client CPU us/command",
        "base_tput": "before (--base) c=256 decided/s",
        "base_cpu_cluster": "before (--base) c=256 cluster CPU us/command",
        "base_cpu_client": "before (--base) c=256 client CPU us/command",
        "base_p50_ms": "before (--base) c=256 p50 ms", "base_p99_ms": "before (--base) c=256 p99 ms",
        "base_c1_p50_ms": "before (--base) c=1 p50 ms", "base_c1_p99_ms": "before (--base) c=1 p99 ms",
    }
    lines = [f"Medians of {rounds} round(s):", ""]
    lines += [f"- {label}: {fmt(m[key])}" for key, label in names.items() if m.get(key) is not None]
    return "\n".join(lines)


# --------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    parser.add_argument("--only", default=",".join(PARTS),
                        help=f"comma list of parts to run: {','.join(PARTS)}")
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON here")
    parser.add_argument("--proto-python", type=Path, default=None,
                        help=f"Python with msgspec, pysyncobj==0.3.17, psutil for the reference "
                             f"runs [default: {DEFAULT_PROTO_PYTHON}, made if missing]")
    parser.add_argument("--requests", type=int, default=30_000,
                        help="paxosctl bench commands at concurrency 256, per round")
    parser.add_argument("--warmup", type=int, default=3000,
                        help="paxosctl bench warm-up commands at concurrency 256")
    parser.add_argument("--requests-c1", type=int, default=2000,
                        help="paxosctl bench commands at concurrency 1, per round")
    parser.add_argument("--warmup-c1", type=int, default=200)
    parser.add_argument("--pysyncobj-seq", type=int, default=20,
                        help="pysyncobj_bench.py --seq (its sequential part is not used here)")
    parser.add_argument("--batch", type=int, default=256,
                        help="part batch: `paxosctl bench --batch` size at concurrency 256")
    parser.add_argument("--base", type=Path, default=None, metavar="CHECKOUT",
                        help="part base: a checkout of the code before a change, with its own "
                             ".venv (its .venv/bin/paxosctl runs a second cluster)")
    parser.add_argument("--failover-tries", type=int, default=20)
    parser.add_argument("--sigstop-settle", type=float, default=3.0,
                        help="seconds to watch for restarts after SIGCONT")
    only_given = any(a == "--only" or a.startswith("--only=") for a in (argv or sys.argv[1:]))
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.only.split(",") if p.strip()]
    if not only_given and args.base is None:
        args.parts.remove("base")  # the default runs every part that needs no checkout
    unknown = set(args.parts) - set(PARTS)
    if unknown or not args.parts:
        parser.error(f"--only: unknown part(s) {', '.join(sorted(unknown)) or '(none)'}; "
                     f"parts: {', '.join(PARTS)}")
    if args.rounds < 1:
        parser.error("--rounds: at least 1")
    if "base" in args.parts:
        if args.base is None:
            parser.error("--only base needs --base CHECKOUT")
        if not (args.base / ".venv" / "bin" / "paxosctl").exists():
            parser.error(f"--base: no .venv/bin/paxosctl in {args.base} (a checkout with its "
                         f"venv: python3 -m venv .venv && .venv/bin/pip install -e .)")
    return args


def interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def measure(args: argparse.Namespace, work: Path, results: dict[str, Any]) -> list[str]:
    """Run the parts asked for into `results`; return the failures (one line each)."""
    parts = set(args.parts)
    failures: list[str] = []
    rounds: dict[str, list[Any]] = results["rounds"]
    python = None
    if parts & {"pysyncobj", "proto"}:
        try:
            python = proto_python(args.proto_python or DEFAULT_PROTO_PYTHON,
                                  make=args.proto_python is None)
            results["proto_python"] = str(python)
        except PartFailed as e:
            failures.append(f"reference Python: {e}")
            parts -= {"pysyncobj", "proto"}
    cluster = base = None
    try:
        if "base" in parts:
            base = Cluster(work / "base", name="dataplane-base",
                           command=[str(args.base / ".venv" / "bin" / "paxosctl")])
            log(f"starting the cluster of {args.base} in {base.dir}")
            try:
                base.up()
            except PartFailed as e:
                failures.append(f"base cluster: {e}")
                parts -= {"base"}
        if parts & {"paxosctl", "batch", "sigstop", "failover"}:
            cluster = Cluster(work / "cluster")
            log(f"starting the cluster in {cluster.dir}")
            try:
                cluster.up()
            except PartFailed as e:
                failures.append(f"cluster: {e}")
                parts -= {"paxosctl", "batch", "sigstop", "failover"}

        def attempt(key: str, what: str, fn: Any, *fn_args: Any) -> None:
            try:
                value = fn(*fn_args)
                rounds.setdefault(key, []).append(value)
                log(f"  {what}: {json.dumps(value)[:200]}")
            except PartFailed as e:
                rounds.setdefault(key, []).append({"error": str(e)})
                failures.append(f"{what}: {e}")
                log(f"  {what}: FAILED: {e}")

        for r in range(args.rounds):
            log(f"round {r + 1}/{args.rounds}")
            if "pysyncobj" in parts:
                attempt("pysyncobj", "PySyncObj pipelined", pysyncobj_round, python,
                        args.pysyncobj_seq)
            if "proto" in parts:
                attempt("proto", "prototype c=256", proto_round, python)
            if "paxosctl" in parts:
                # With part "batch", the same bench run then measures propose_many.
                attempt("paxosctl", "paxosctl c=256", cluster.bench, args.requests, 256,
                        args.warmup, args.batch if "batch" in parts else None)
            if "base" in parts:
                attempt("base", "before (--base) c=256", base.bench, args.requests, 256,
                        args.warmup)
            if "proto" in parts:
                attempt("proto_c1", "prototype c=1", proto_round, python,
                        "--c", "1", "--n", "20000", "--warm", "1000")
            # The two c=1 runs, each after both clusters went quiet, the one
            # first alternating by round: a cluster still busy after its c=256
            # run (commits, retention) added 0.1-0.5 ms to the p99 of the one
            # measured next, ours in every round when ours always went first
            # (2026-12-08).
            c1 = []
            if "paxosctl" in parts:
                c1.append(("paxosctl_c1", "paxosctl c=1", cluster))
            if "base" in parts:
                c1.append(("base_c1", "before (--base) c=1", base))
            for key, what, side in (c1 if r % 2 == 0 else c1[::-1]):
                settle([c for c in (cluster, base) if c is not None])
                attempt(key, what, side.bench, args.requests_c1, 1, args.warmup_c1)
        if "sigstop" in parts:
            log(f"SIGSTOP of the supervisor for {SIGSTOP_SECONDS:g}s, proposing meanwhile")
            try:
                with Client.for_manifest(cluster.manifest) as client:
                    wait_whole(client)
                results["sigstop"] = sigstop_check(cluster, args.sigstop_settle)
                log(f"  {json.dumps(results['sigstop'])}")
            except (PartFailed, SystemExit) as e:
                results["sigstop"] = {"error": str(getattr(e, "code", e))}
                failures.append(f"sigstop: {results['sigstop']['error']}")
        if "failover" in parts:
            log(f"leader kill -9 under load, {args.failover_tries} times")
            try:
                with Client.for_manifest(cluster.manifest) as client:
                    wait_whole(client)
                results["failover"] = failover_check(cluster, args.failover_tries)
                log(f"  {json.dumps(results['failover'])}")
            except (PartFailed, SystemExit) as e:
                results["failover"] = {"error": str(getattr(e, "code", e))}
                failures.append(f"failover: {results['failover']['error']}")
    finally:
        for each in (cluster, base):
            if each is not None:
                log(f"bringing {each.name} down")
                each.teardown()
    return failures


def medians(rounds: dict[str, list[Any]]) -> dict[str, float | None]:
    def ok(key: str) -> list[dict[str, Any]]:
        return [x for x in rounds.get(key, []) if "error" not in x]

    def cpu(x: dict[str, Any], key: str) -> float | None:
        return (x.get("cpu_us_per_command") or {}).get(key)

    m: dict[str, float | None] = {
        "pysyncobj_tput": median([x["pipelined_ops_per_s"] for x in ok("pysyncobj")]),
        "proto_tput": median([x["tput"] for x in ok("proto")]),
        "proto_cpu_server": median([x["cpu_server_us"] for x in ok("proto")]),
        "proto_c1_p50_ms": median([x["p50_ms"] for x in ok("proto_c1")]),
        "proto_c1_p99_ms": median([x["p99_ms"] for x in ok("proto_c1")]),
        "paxosctl_tput": median([x["throughput_per_s"] for x in ok("paxosctl")]),
        "paxosctl_p50_ms": median([x["latency_ms"]["p50"] for x in ok("paxosctl")]),
        "paxosctl_p99_ms": median([x["latency_ms"]["p99"] for x in ok("paxosctl")]),
        "paxosctl_cpu_cluster": median([cpu(x, "cluster") for x in ok("paxosctl")]),
        "paxosctl_cpu_supervisor": median([cpu(x, "supervisor") for x in ok("paxosctl")]),
        "paxosctl_cpu_client": median([cpu(x, "client") for x in ok("paxosctl")]),
        "paxosctl_c1_p50_ms": median([x["latency_ms"]["p50"] for x in ok("paxosctl_c1")]),
        "paxosctl_c1_p99_ms": median([x["latency_ms"]["p99"] for x in ok("paxosctl_c1")]),
    }
    # `paxosctl bench --batch` reports the batch path under "batch" (the
    # one-future keys stay those of its own run).
    for prefix, key in (("batch", "paxosctl"), ("base", "base")):
        runs = [x["batch"] for x in ok(key) if x.get("batch")] if prefix == "batch" else ok(key)
        if not runs:
            continue
        m[f"{prefix}_tput"] = median([x.get("throughput_per_s") for x in runs])
        m[f"{prefix}_cpu_cluster"] = median([cpu(x, "cluster") for x in runs])
        m[f"{prefix}_cpu_client"] = median([cpu(x, "client") for x in runs])
        if prefix == "base":
            m["base_p50_ms"] = median([x["latency_ms"]["p50"] for x in runs])
            m["base_p99_ms"] = median([x["latency_ms"]["p99"] for x in runs])
            m["base_c1_p50_ms"] = median([x["latency_ms"]["p50"] for x in ok("base_c1")])
            m["base_c1_p99_ms"] = median([x["latency_ms"]["p99"] for x in ok("base_c1")])
    return m


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (a timeout around us, say) unwinds like Ctrl-C: the cluster still goes down.
    signal.signal(signal.SIGTERM, interrupt)
    work = Path(tempfile.mkdtemp(prefix="dataplane-", dir="/tmp"))  # short: Unix socket paths
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                               "params": {k: (str(v) if isinstance(v, Path) else v)
                                          for k, v in vars(args).items() if k != "json"},
                               "rounds": {}}
    code = 0
    try:
        failures = measure(args, work, results)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["failures"] = failures
    results["medians"] = medians(results["rounds"])
    report = rows(results)
    results["rows"] = [vars(r) for r in report]
    print(table(report))
    print()
    print(reference_table(results["medians"], args.rounds))
    if failures:
        print()
        print("Failed parts:")
        for failure in failures:
            print(f"- {failure}")
        code = 1
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
