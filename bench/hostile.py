"""What hostile or stalled connections cost the example cluster (issue 20), in one run.

    python bench/hostile.py [--seconds 8] [--json FILE]

On examples/cluster.toml (fsync on) in a temporary state dir, through the
real CLI (`paxosctl bench -o json --duration`):

- a suspended follower: commands/s with 8 KiB values, then the same with a
  `paxosctl decided --follow` started and stopped with SIGSTOP (as Ctrl-Z
  does) before the load; target >= 0.9x. The stopped follower is cut loose
  once 32 MiB of its answers are unread (`paxos_clients_cut_total`);
- a stopped acceptor: commands/s with 16-byte values, then with one
  acceptor stopped with SIGSTOP for the whole run (a majority is left;
  2 s runs, under the health check's 3 s);
  reported as a figure and a ratio (the leader must not spend itself on a
  peer that does not read: it drops past the link bound at O(1));
- pre-handshake probes: every agent's RSS, then eight connections per
  agent each sending a 64 MiB length prefix and as much of its body as the
  agent takes, plus 200 idle connections per agent, then every agent's RSS
  again; target <= +16 MiB each. The idle ones are closed by the agents'
  handshake deadline (5 s), which is timed too.

Prints a markdown table (figure, measured, target, met/MISSED) to stdout,
progress to stderr. Exit 0 when every part produced its figures (whatever
the verdicts), 1 when one failed, 2 on bad arguments. The cluster is
always brought down (bench/dataplane.py's `Cluster.teardown`).
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/dataplane.py, next to this file

from dataplane import Cluster, PartFailed, last_error, log, paxosctl_command  # noqa: E402

TARGET_FOLLOWER_RATIO = 0.9
#: The stopped-acceptor runs are this long: an agent stopped for 3 s is
#: killed by the health check ([health] heartbeat_timeout).
ACCEPTOR_SECONDS = 2.0
TARGET_RSS_GROWTH_MIB = 16.0
#: Probes per agent: connections sending most of a 64 MiB frame, and idle ones.
PARTIAL_FRAMES = 8
IDLE_CONNECTIONS = 200


def throughput(cluster: Cluster, seconds: float, value_size: int) -> float:
    ran = cluster.run("bench", "--duration", f"{seconds}s", "--value-size", str(value_size),
                      "--concurrency", "256", "--warmup", "500", "-o", "json",
                      timeout=seconds * 4 + 120)
    try:
        return float(json.loads(ran.stdout)["throughput_per_s"])
    except (ValueError, KeyError):
        raise PartFailed(f"paxosctl bench exited {ran.returncode}: {last_error(ran.stderr)}") \
            from None


def agent_processes(cluster: Cluster) -> dict[str, psutil.Process]:
    return {a["name"]: psutil.Process(a["pid"]) for a in cluster.status()["agents"] if a["pid"]}


def with_stopped_follower(cluster: Cluster, seconds: float) -> float:
    """Commands/s (8 KiB values) while a `decided --follow` is suspended."""
    follower = subprocess.Popen([*paxosctl_command(), "decided", "--follow", "-f",
                                 str(cluster.manifest)], cwd=cluster.dir,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        if not follower.stdout.readline():  # it printed the log so far: it follows
            raise PartFailed("decided --follow printed nothing")
        follower.send_signal(signal.SIGSTOP)
        return throughput(cluster, seconds, 8192)
    finally:
        follower.send_signal(signal.SIGCONT)
        follower.kill()
        follower.wait(10)


def with_stopped_acceptor(cluster: Cluster, seconds: float) -> tuple[float, str]:
    """Commands/s (16-byte values) with one acceptor stopped for the whole run
    (`ACCEPTOR_SECONDS`, below the health check's 3 s: a longer stop is
    ended by the supervisor's kill and restart, which is not what is measured)."""
    name = "acceptor-2"
    process = agent_processes(cluster)[name]
    process.suspend()
    try:
        return throughput(cluster, seconds, 16), name
    finally:
        try:
            process.resume()
        except psutil.NoSuchProcess:
            log(f"{name} was killed while stopped (health check)")


def probe(cluster: Cluster) -> dict[str, Any]:
    """RSS of every agent before and after the pre-handshake probes."""
    processes = agent_processes(cluster)
    before = {n: p.memory_info().rss for n, p in processes.items()}
    run_dir = cluster.state_dir / "run"
    idle: list[socket.socket] = []
    partial: list[socket.socket] = []  # held open until RSS is read, as the probe did
    refused_at_once = 0
    for name in processes:
        path = str(run_dir / f"{name}.sock")
        for _ in range(PARTIAL_FRAMES):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            partial.append(sock)
            sock.settimeout(5)
            sock.connect(path)
            try:
                sock.sendall((64 << 20).to_bytes(4, "big"))
                for _ in range(60):
                    sock.sendall(b"x" * (1 << 20))
            except OSError:
                refused_at_once += 1
        for _ in range(IDLE_CONNECTIONS):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
            sock.setblocking(False)
            idle.append(sock)
    after = {n: p.memory_info().rss for n, p in processes.items()}
    for sock in partial:
        sock.close()
    started = time.monotonic()
    open_ = list(idle)
    deadline = started + 30
    while open_ and time.monotonic() < deadline:
        still = []
        for sock in open_:
            try:
                if sock.recv(4096) == b"":
                    continue
            except BlockingIOError:
                still.append(sock)
                continue
            except OSError:
                continue
        open_ = still
        time.sleep(0.05)
    closed_after = time.monotonic() - started
    for sock in idle:
        sock.close()
    return {"rss_before_mib": {n: round(v / 2**20, 1) for n, v in before.items()},
            "rss_after_mib": {n: round(v / 2**20, 1) for n, v in after.items()},
            "growth_mib": {n: round((after[n] - before[n]) / 2**20, 1) for n in before},
            "partial_frames_cut_off": refused_at_once,
            "partial_frames_sent": PARTIAL_FRAMES * len(processes),
            "idle_left_open": len(open_), "idle_closed_within_s": round(closed_after, 2)}


def measure(seconds: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="pxh", dir="/tmp"))
    cluster = Cluster(work, name="hostile")
    results: dict[str, Any] = {}
    try:
        log("up")
        cluster.up()
        cluster.run("propose", "first")  # so a follower has a line to print at once
        log("8 KiB values, no follower")
        results["follower_base"] = throughput(cluster, seconds, 8192)
        log("8 KiB values, a follower suspended")
        results["follower_stopped"] = with_stopped_follower(cluster, seconds)
        log("16-byte values, every acceptor up")
        results["acceptor_base"] = throughput(cluster, ACCEPTOR_SECONDS, 16)
        log("16-byte values, an acceptor suspended")
        results["acceptor_stopped"], results["acceptor_name"] = with_stopped_acceptor(
            cluster, ACCEPTOR_SECONDS)
        log("pre-handshake probes")
        results["probe"] = probe(cluster)
        metrics = cluster.run("metrics").stdout
        results["clients_cut"] = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                                     if line.startswith("paxos_clients_cut_total{"))
        results["refused"] = {
            reason: sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                        if line.startswith("paxos_connections_refused_total{")
                        and f'reason="{reason}"' in line)
            for reason in ("handshake_timeout", "too_many_connections", "bad_hello",
                           "stale_incarnation")}
        results["restarts"] = {a["name"]: a["restarts"] for a in cluster.status()["agents"]}
    finally:
        cluster.teardown()
    return results


def table(r: dict[str, Any]) -> str:
    rows = [("figure", "measured", "target", "verdict")]
    ratio = r["follower_stopped"] / r["follower_base"]
    rows.append(("commands/s, 8 KiB values", f"{r['follower_base']:.0f}", "", ""))
    rows.append(("... with a suspended decided --follow", f"{r['follower_stopped']:.0f} "
                 f"({ratio:.2f}x)", f">= {TARGET_FOLLOWER_RATIO}x",
                 "met" if ratio >= TARGET_FOLLOWER_RATIO else "MISSED"))
    ratio = r["acceptor_stopped"] / r["acceptor_base"]
    rows.append(("commands/s, 16-byte values", f"{r['acceptor_base']:.0f}", "", ""))
    rows.append((f"... with {r['acceptor_name']} SIGSTOPped", f"{r['acceptor_stopped']:.0f} "
                 f"({ratio:.2f}x)", "figure", "n/a"))
    p = r["probe"]
    for name, growth in p["growth_mib"].items():
        rows.append((f"RSS {name} before -> after probes",
                     f"{p['rss_before_mib'][name]} -> {p['rss_after_mib'][name]} MiB "
                     f"({growth:+.1f})", f"<= +{TARGET_RSS_GROWTH_MIB:.0f} MiB",
                     "met" if growth <= TARGET_RSS_GROWTH_MIB else "MISSED"))
    rows.append(("partial 64 MiB frames cut off before 60 MiB",
                 f"{p['partial_frames_cut_off']}/{p['partial_frames_sent']}", "all",
                 "met" if p["partial_frames_cut_off"] == p["partial_frames_sent"] else "MISSED"))
    rows.append(("idle connections closed (handshake deadline 5 s)",
                 f"all but {p['idle_left_open']}, within {p['idle_closed_within_s']} s", "all",
                 "met" if p["idle_left_open"] == 0 else "MISSED"))
    rows.append(("clients cut (paxos_clients_cut_total)", f"{r['clients_cut']:.0f}", ">= 1",
                 "met" if r["clients_cut"] >= 1 else "MISSED"))
    rows.append(("connections refused, by reason", json.dumps(r["refused"]), "", ""))
    rows.append(("agent restarts", str(sum(r["restarts"].values())), "0",
                 "met" if not any(r["restarts"].values()) else "MISSED"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=8.0,
                        help="each 8 KiB bench run's duration (over 32 MiB must flow past "
                             "the stopped follower for it to be cut)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be > 0")
    try:
        results = measure(args.seconds)
    except PartFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
