"""Where each µs of CPU per decided command goes, role by role (py-spy under load).

    python bench/profile_roles.py [--rounds 1] [--requests 50000] [--concurrency 256]
                                  [--rate 250] [--json] [--raw-dir DIR]

Each round starts a fresh example cluster (examples/cluster.toml, fsync on, a
temporary state dir, as bench/dataplane.py does), samples the leader,
acceptor-0, learner-0 and the supervisor with `py-spy record --nonblocking
--format raw` from before `paxosctl bench --requests N --concurrency C -o json`
(run under py-spy too: the client) until the learners have caught up after it.

A role's µs per command (the bench's `cpu_us_per_command`) is split by where
its samples fell: a sample goes to the bucket of its innermost frame that a
rule in BUCKETS names (frames no rule names, such as dataclass `__init__`s,
defer to their caller). Not counted: samples whose innermost frame is a wait
(py-spy drops sleeping threads but keeps runnable ones: a thread woken from
epoll waits for a CPU on a busy machine), the client's set-up and its
`queue_limit` measurement, samples with no Python frame. A thread woken from
SQLite's COMMIT (the fsync) waits for a CPU there too, so that bucket is an
upper bound; beside it are each role's SQLite transactions per command (the
persist histogram's count), one COMMIT's CPU measured apart on the same disk,
and each role's seconds on a CPU and waiting for one (/proc/PID/schedstat).
Rounds: samples summed, µs the median of the rounds'. Also printed: the top 5
functions by self time (innermost frame).

Exit 0 with the tables, 1 when a round failed (one line saying why), 2 on a
bad argument or when py-spy is not installed (`pip install -e '.[dev]'`).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/dataplane.py, next to this file

from dataplane import Cluster, PartFailed, paxosctl_command  # noqa: E402
from paxosctl.supervisor.pidfile import running_supervisor  # noqa: E402

#: (bucket, path fragments of the frames it owns), most specific first: the
#: first rule a frame's file matches decides its bucket.
BUCKETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # BEGIN/COMMIT/ROLLBACK: the fsync, and the wait for a CPU after it (see the docstring).
    ("SQLite BEGIN/COMMIT", ("_immediate@paxos_agents/runtime/storage/sqlite.py",)),
    ("SQLite writes and reads", ("runtime/storage/", "sqlite3/")),
    ("intake, request index, dedup", ("core/intake.py", "core/idfilter.py", "core/requests.py",
                                      "runtime/admission.py", "runtime/proposals.py")),
    ("answering clients (learner)", ("runtime/clients.py", "runtime/watches.py",
                                     "runtime/queries.py")),
    ("codec encode/decode", ("runtime/codec.py", "runtime/frames.py", "runtime/clientwire.py",
                             "core/commands.py", "runtime/records.py", "json/", "pickle")),
    ("logging/metrics", ("logging/", "prometheus_client/", "runtime/report.py",
                         "runtime/ratelog.py", "core/stats.py", "supervisor/metrics.py",
                         "supervisor/events.py")),
    ("socket read/write, TLS", ("runtime/connection.py", "runtime/transport.py",
                                "runtime/tlsnet.py", "runtime/net.py", "runtime/control.py",
                                "client/datapath.py", "ssl.py", "socket.py",
                                "multiprocessing/connection.py", "supervisor/control.py")),
    ("core protocol", ("paxos_agents/core/",)),
    ("client futures, ids, threads", ("paxosctl/client/", "concurrent/futures/", "threading.py",
                                      "queue.py", "tools/bench.py")),
    ("selector/loop", ("selectors.py", "runtime/agent.py", "runtime/main.py",
                       "supervisor/loop.py")),
    ("supervisor: reports, fleet, psutil", ("paxosctl/supervisor/", "psutil/")),
)
OTHER = "other"
#: Innermost frames that are waits, not work: (function name ends with, file ends with).
WAITS = (("select", "selectors.py"), ("wait", "threading.py"), ("get", "queue.py"),
         ("poll", "selectors.py"))
#: Client samples with one of these in the stack are not the bench's load.
CLIENT_SKIP = ("importlib._bootstrap", "queue_limit (", "Queue._feed (multiprocessing/queues.py")
ROLES = ("leader", "acceptor", "learner", "supervisor", "client")
#: Seconds to wait for the learners to catch up after the bench.
CATCH_UP_S = 30.0


class Usage(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr and exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"profile_roles.py: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


#: The allowed range of each whole-number option.
LIMITS = {"rounds": (1, 100), "requests": (1, 10_000_000), "concurrency": (1, 65536),
          "rate": (1, 1000)}


# ------------------------------------------------------------ the samples


def frames(stack: str) -> list[tuple[str, str]]:
    """'f (file:line);g (file:line)' (outermost first) -> [(function, file)], innermost first."""
    out = []
    for frame in reversed(stack.split(";")):
        name, _, where = frame.rpartition(" (")
        out.append((name, where.rstrip(")").rpartition(":")[0] or where))
    return out


def bucket_of(stack: list[tuple[str, str]]) -> str:
    """The bucket of the innermost frame a rule names; a fragment 'function@path'
    names one function of a file."""
    for name, path in stack:
        where = f"{name}@{path}"
        for bucket, fragments in BUCKETS:
            if any(f in (where if "@" in f else path) for f in fragments):
                return bucket
    return OTHER


def is_wait(stack: list[tuple[str, str]]) -> bool:
    name, path = stack[0]
    return any(name.endswith(n) and path.endswith(p) for n, p in WAITS)


@dataclass
class Profile:
    """One role's counted samples: by bucket and by innermost function."""

    buckets: collections.Counter = field(default_factory=collections.Counter)
    functions: collections.Counter = field(default_factory=collections.Counter)
    waits: int = 0
    skipped: int = 0

    def add_raw(self, text: str, client: bool) -> None:
        """Add py-spy's raw (collapsed) output: one 'stack count' per line."""
        for line in text.splitlines():
            stack_text, _, count_text = line.rpartition(" ")
            if not count_text.isdigit():
                continue
            count = int(count_text)
            if not stack_text.strip() or client and any(s in stack_text for s in CLIENT_SKIP):
                self.skipped += count
                continue
            stack = frames(stack_text)
            if is_wait(stack):
                self.waits += count
                continue
            self.buckets[bucket_of(stack)] += count
            name, path = stack[0]
            self.functions[f"{name} ({path})"] += count

    @property
    def counted(self) -> int:
        return sum(self.buckets.values())


# ---------------------------------------------------------------- a round


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def sampler(spy: str, rate: int, out: Path, target: list[str],
            session: bool = False) -> subprocess.Popen:
    """`py-spy record` of `target` (`--pid N`, or `-- command...` that it starts) into `out`."""
    return subprocess.Popen([spy, "record", "--nonblocking", "--rate", str(rate), "--format",
                             "raw", "-o", str(out), *target], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=session)


def sched(pid: int) -> tuple[float, float]:
    """Seconds on a CPU and seconds runnable waiting for one, summed over the threads."""
    total = [0.0, 0.0]
    for task in Path(f"/proc/{pid}/task").iterdir():
        on_cpu, waiting, _ = (task / "schedstat").read_text().split()
        total[0] += int(on_cpu) / 1e9
        total[1] += int(waiting) / 1e9
    return total[0], total[1]


def transactions(cluster: Cluster, names: dict[str, str]) -> dict[str, int]:
    """SQLite transactions each role's agent committed so far (its persist histogram's count)."""
    url = cluster.status()["metrics_url"]
    with urllib.request.urlopen(url, timeout=30) as reply:
        text = reply.read().decode()
    counts = dict(re.findall(r'paxos_acceptor_persist_duration_seconds_count\{agent="([^"]+)"'
                             r'[^}]*\} ([0-9.e+]+)', text))
    return {role: int(float(counts.get(name, 0))) for role, name in names.items()}


def commit_cpu_us(folder: Path, count: int = 600) -> float:
    """µs of CPU (user + system, this thread) one COMMIT takes in this folder, with
    the agents' settings (WAL, synchronous=FULL, SQLite's own checkpoints), for a
    transaction of 5 rows of 1,500 bytes: about an acceptor's loop turn at c=256
    (some 150 commands of ~50 bytes in ~5 slots)."""
    conn = sqlite3.connect(folder / "commit.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
    spent = 0.0
    for k in range(count):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO t VALUES (?, ?)",
                         [(k * 5 + i, os.urandom(1500)) for i in range(5)])
        began = time.thread_time()
        conn.execute("COMMIT")
        spent += time.thread_time() - began
    conn.close()
    return spent * 1e6 / count


def caught_up(cluster: Cluster) -> bool:
    learners = [a.get("decided_up_to") for a in cluster.status()["agents"]
                if a["role"] == "learner"]
    return bool(learners) and None not in learners and len(set(learners)) == 1


def stop(samplers: dict[str, subprocess.Popen]) -> None:
    for process in samplers.values():
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # py-spy writes its file and exits
    for process in samplers.values():
        process.communicate(timeout=30)


def one_round(spy: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Up, sample the four cluster roles and the bench client, down: per role the
    bench's µs per command and py-spy's raw text."""
    cluster = Cluster(folder / "cluster", name="profile")
    samplers: dict[str, subprocess.Popen] = {}
    try:
        cluster.up()
        status = cluster.status()
        pids = {a["name"]: a["pid"] for a in status["agents"]}
        names = {"leader": status["leader"], "acceptor": "acceptor-0", "learner": "learner-0"}
        targets = {role: pids.get(name) for role, name in names.items()}
        supervisor = running_supervisor(cluster.state_dir)
        targets["supervisor"] = supervisor.pid if supervisor is not None else None
        if not all(isinstance(p, int) for p in targets.values()):
            raise PartFailed(f"no pid for every role in paxosctl status: {targets}")
        before = {role: sched(pid) for role, pid in targets.items()}
        tx_before = transactions(cluster, names)
        for role, pid in targets.items():
            samplers[role] = sampler(spy, args.rate, folder / f"{role}.txt", ["--pid", str(pid)])
        bench = [*paxosctl_command(), "bench", "-f", str(cluster.manifest), "--requests",
                 str(args.requests), "--concurrency", str(args.concurrency), "-o", "json"]
        # Its own process group: py-spy and the bench it runs are killed together on a failure.
        client = sampler(spy, args.rate, folder / "client.txt", ["--", *bench], session=True)
        try:
            out, err = client.communicate(timeout=120 + args.requests / 100)
        finally:
            if client.poll() is None:
                os.killpg(client.pid, signal.SIGKILL)
                client.communicate(timeout=30)
        line = next((x for x in out.splitlines() if x.startswith("{")), None)
        if client.returncode != 0 or line is None:
            raise PartFailed(f"paxosctl bench under py-spy exited {client.returncode}: "
                             f"{(err.strip().splitlines() or ['(no output)'])[-1][:300]}")
        data = json.loads(line)
        deadline = time.monotonic() + CATCH_UP_S
        while not caught_up(cluster) and time.monotonic() < deadline:
            time.sleep(0.05)
        after = {role: sched(pid) for role, pid in targets.items()}
        stop(samplers)  # before the scrape below: it is no part of the load
        tx_after = transactions(cluster, names)
    finally:
        stop(samplers)
        cluster.teardown()
    cpu = data["cpu_us_per_command"]
    names.update(supervisor="supervisor", client="client")
    files = {role: folder / f"{role}.txt" for role in ROLES}
    return {"us": {role: cpu.get(names[role]) for role in ROLES},
            "raw": {role: f.read_text() if f.exists() else "" for role, f in files.items()},
            "sched_s": {role: [round(b - a, 2) for a, b in zip(before[role], after[role])]
                        for role in targets},
            # Every command of the window, the warm-up's too, per transaction.
            "tx_per_command": {role: (tx_after[role] - tx_before[role])
                               / (data["requests"] + data["warmup"]) for role in tx_after},
            "commit_cpu_us": commit_cpu_us(folder),
            "throughput_per_s": data["throughput_per_s"], "cluster_us": cpu.get("cluster"),
            "leader": names["leader"]}


# ---------------------------------------------------------------- report


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Samples summed over the rounds, µs the median of the rounds', per role."""
    roles: dict[str, Any] = {}
    for role in ROLES:
        profile = Profile()
        for r in rounds:
            profile.add_raw(r["raw"][role], client=role == "client")
        figures = [r["us"][role] for r in rounds if r["us"][role] is not None]
        us = statistics.median(figures) if figures else None
        counted = profile.counted
        buckets = [{"bucket": name, "samples": profile.buckets[name],
                    "share": round(profile.buckets[name] / counted, 4) if counted else 0.0,
                    "us_per_command": round(profile.buckets[name] / counted * us, 2)
                    if counted and us is not None else None}
                   for name in [b for b, _ in BUCKETS] + [OTHER]]
        buckets.sort(key=lambda b: -b["samples"])
        top = [{"function": f, "samples": n, "share": round(n / counted, 4)}
               for f, n in profile.functions.most_common(5)]
        sched_s = [r["sched_s"][role] for r in rounds if role in r["sched_s"]]
        tx = [r["tx_per_command"][role] for r in rounds if role in r["tx_per_command"]]
        roles[role] = {"us_per_command": us, "us_rounds": figures, "samples": counted,
                       "on_cpu_s": round(sum(x[0] for x in sched_s), 2) if sched_s else None,
                       "runnable_wait_s": round(sum(x[1] for x in sched_s), 2)
                       if sched_s else None,
                       "tx_per_command": round(statistics.median(tx), 4) if tx else None,
                       "wait_samples": profile.waits, "skipped_samples": profile.skipped,
                       "buckets": buckets, "top_self": top}
    return {"rounds": len(rounds),
            "throughput_per_s": [r["throughput_per_s"] for r in rounds],
            "cluster_us_per_command": [r["cluster_us"] for r in rounds],
            "commit_cpu_us": round(statistics.median(r["commit_cpu_us"] for r in rounds), 1),
            "roles": roles}


def text(report: dict[str, Any]) -> str:
    lines = [f"rounds {report['rounds']}; commands/s {report['throughput_per_s']}; "
             f"cluster µs/command {report['cluster_us_per_command']}; one SQLite COMMIT "
             f"(measured apart, same disk): {report['commit_cpu_us']} µs of CPU"]
    for role, r in report["roles"].items():
        us = "-" if r["us_per_command"] is None else f"{r['us_per_command']:.1f}"
        busy = ("" if r["on_cpu_s"] is None else f"; {r['on_cpu_s']} s on a CPU, "
                f"{r['runnable_wait_s']} s waiting for one")
        lines += ["", f"{role}: {us} µs/command (rounds {r['us_rounds']}), {r['samples']} "
                      f"samples counted, {r['wait_samples']} in waits left out{busy}",
                  "| bucket | share | µs per command |", "| --- | --- | --- |"]
        for b in r["buckets"]:
            if b["samples"]:
                shown = "-" if b["us_per_command"] is None else f"{b['us_per_command']:.2f}"
                lines.append(f"| {b['bucket']} | {b['share']:.0%} | {shown} |")
        if r.get("tx_per_command") is not None:
            lines.append(f"SQLite transactions per command: {r['tx_per_command']:.3f}, so "
                         f"COMMIT's own CPU is about "
                         f"{r['tx_per_command'] * report['commit_cpu_us']:.2f} µs per command")
        lines.append("top self: " + "; ".join(f"{t['function']} {t['share']:.0%}"
                                              for t in r["top_self"]))
    return "\n".join(lines)


def main() -> int:
    parser = Usage(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--raw-dir", type=Path, default=None,
                        help="keep py-spy's raw samples here (round-N-ROLE.txt, for flamegraph.pl)")
    args = parser.parse_args()
    for name, (low, high) in LIMITS.items():
        if not low <= getattr(args, name) <= high:
            parser.error(f"--{name}: {getattr(args, name)} is outside {low}..{high}")
    spy = py_spy()
    if spy is None:
        print("profile_roles.py: py-spy is not installed: pip install -e '.[dev]' "
              "(or pip install py-spy)", file=sys.stderr)
        return 2
    # SIGTERM ends the run like an error does: samplers stopped, cluster brought down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    rounds = []
    for number in range(args.rounds):
        print(f"profile_roles: round {number + 1} of {args.rounds}", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="pxprof") as folder:
            try:
                rounds.append(one_round(spy, args, Path(folder)))
                if args.raw_dir is not None:
                    args.raw_dir.mkdir(parents=True, exist_ok=True)
                    for role, raw in rounds[-1]["raw"].items():
                        (args.raw_dir / f"round-{number + 1}-{role}.txt").write_text(raw)
            except (PartFailed, subprocess.SubprocessError, OSError, ValueError, KeyError) as e:
                print(f"profile_roles.py: round {number + 1} failed: {e}", file=sys.stderr)
                return 1
    report = summary(rounds)
    print(json.dumps(report) if args.json else text(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
