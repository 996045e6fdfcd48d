"""Load and faults against a running cluster: `chaos` (faults in the
messages), `soak` (load and faults, then a check that nothing was lost),
`bench` (throughput, latency, CPU)."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Optional

import typer

from ..durations import parse_duration
from ..output import MACHINE, chaos_line, render
from ..errors import UsageError
from ..discovery import find_manifest
from .common import (TEXT, FileOption, TextOutput, checked_call, connect, echo, echo_err,
                     owned_manifest, output_format, unsupervised)


def chaos(
    file: FileOption = None,
    drop: Annotated[Optional[float], typer.Option(help="Fraction of messages to drop (0..1).")] = None,
    duplicate: Annotated[Optional[float], typer.Option(
        help="Fraction of messages to deliver twice (0..1).")] = None,
    delay: Annotated[Optional[str], typer.Option(
        help='Hold each message back up to this long, e.g. "20ms" ("0s": off).')] = None,
    partition: Annotated[Optional[str], typer.Option(
        help="Comma-separated agents to cut off from the rest (\"\": none).")] = None,
    drop_kind: Annotated[Optional[str], typer.Option(
        "--drop-kind", help="Comma-separated message kinds to drop every one of, e.g. "
                            "accepted (\"\": none).")] = None,
    drop_to: Annotated[Optional[str], typer.Option(
        "--drop-to", help="Comma-separated agents whose inbound --drop-kind messages are "
                          "dropped (\"\": to any agent).")] = None,
    heal: Annotated[bool, typer.Option("--heal", help="Turn every fault off first.")] = False,
    output: TextOutput = "text",
) -> None:
    """Inject faults into the messages between agents (each agent applies them to what it sends).

    With no option, show what is in force. `--drop-kind accepted --drop-to
    proposer-0` drops every Accepted sent to proposer-0 (a leader that never
    hears its votes); kinds: prepare, promise, accept, accepted, nack,
    decide, heartbeat, retry, stored, fetch, chunk, clientrequest.
    """
    output = output_format(output, TEXT)
    changes: dict[str, Any] = {}
    if heal:
        changes["heal"] = True
    if drop is not None:
        changes["drop"] = drop
    if duplicate is not None:
        changes["duplicate"] = duplicate
    if delay is not None:
        try:
            changes["delay"] = 0.0 if delay.strip() in ("0", "0s", "0ms") else parse_duration(delay)
        except ValueError as e:
            raise UsageError(f"--delay: {e}") from None
    if partition is not None:
        changes["partition"] = [n.strip() for n in partition.split(",") if n.strip()]
    if drop_kind is not None:
        changes["drop_kinds"] = [k.strip().lower() for k in drop_kind.split(",") if k.strip()]
    if drop_to is not None:
        changes["drop_to"] = [n.strip() for n in drop_to.split(",") if n.strip()]
    with connect(file) as client:
        reply = checked_call(lambda: client.request("chaos", **changes))
    active = reply["chaos"]
    if output in MACHINE:
        echo(render(active, output))
    else:
        echo(chaos_line(active))


def soak(
    file: FileOption = None,
    duration: Annotated[str, typer.Option(help='How long to drive load, e.g. "60s".')] = "30s",
    kill_every: Annotated[Optional[str], typer.Option(
        help='SIGKILL an agent this often, e.g. "1s" (the leader every third time).')] = None,
    chaos_spec: Annotated[Optional[str], typer.Option(
        "--chaos", help="Faults meanwhile: drop=0.05,duplicate=0.01,delay=5ms,partition=a+b,"
                        "drop_kinds=accepted+retry,drop_to=c (as `paxosctl chaos`)")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=4096,
                                             help="Proposals in flight.")] = 8,
    seed: Annotated[int, typer.Option(help="Seeds the choice of agents to kill.")] = 0,
    reconfig_every: Annotated[Optional[str], typer.Option(
        help='Change the acceptors this often, e.g. "5s": +2, back, replace one.')] = None,
) -> None:
    """Drive load and faults against the running cluster, then check nothing was lost.

    Prints `kills: N, proposals acknowledged: M, lost: 0, duplicated: 0,
    linearizable: yes` and exits 1 on any anomaly.
    """
    from ..tools.soak import soak as run_soak

    try:
        seconds = parse_duration(duration)
        every = parse_duration(kill_every) if kill_every else None
        reconfig = parse_duration(reconfig_every) if reconfig_every else None
    except ValueError as e:
        raise UsageError(f"--duration/--kill-every/--reconfig-every: {e}") from None
    changes = _parse_chaos(chaos_spec) if chaos_spec else {}
    with connect(file) as client:
        result = run_soak(client, duration=seconds, kill_every=every, chaos=changes,
                          concurrency=concurrency, seed=seed, reconfig_every=reconfig,
                          progress=echo_err)
    for problem in result.problems[:50]:
        echo_err(f"anomaly: {problem}")
    echo(result.summary())
    if not result.ok:
        raise typer.Exit(1)


def _parse_chaos(spec: str) -> dict[str, Any]:
    """`drop=0.05,duplicate=0.01,delay=5ms,partition=a+b,drop_kinds=accepted,drop_to=c`
    as a chaos request (the keys of `paxosctl chaos`'s options; lists joined by +)."""
    changes: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, value = part.partition("=")
        try:
            if not sep:
                raise ValueError("expected key=value")
            if key in ("drop", "duplicate"):
                changes[key] = float(value)
            elif key == "delay":
                changes[key] = parse_duration(value)
            elif key in ("partition", "drop_to"):
                changes[key] = [n for n in value.split("+") if n]
            elif key == "drop_kinds":
                changes[key] = _kinds(value)
            else:
                raise ValueError("keys: drop, duplicate, delay, partition, drop_kinds, drop_to")
        except ValueError as e:
            raise UsageError(f"--chaos: bad {part!r}: {e}") from None
    return changes


def _kinds(value: str) -> list[str]:
    """`accepted+prepare` as the kinds `drop_kinds` names, checked before the
    soak starts anything, by the agents' own rule (`ChaosSettings`: a
    ValueError naming the unknown kind and the kinds there are)."""
    from paxos_agents.runtime.chaos import ChaosSettings  # only a soak with chaos needs it

    kinds = [k.lower() for k in value.split("+") if k]
    ChaosSettings(drop_kinds=tuple(kinds))
    return kinds


def bench(
    file: FileOption = None,
    requests: Annotated[Optional[int], typer.Option(min=1, max=1_000_000_000,
                                                    help="Proposals to make.")] = None,
    duration: Annotated[Optional[str], typer.Option(help='Or: propose for this long, e.g. "10s".')] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=65536, help="Proposals in flight.")] = 256,
    value_size: Annotated[int, typer.Option(min=0, help="Bytes per value.")] = 16,
    output: TextOutput = "text",
    warmup: Annotated[Optional[int], typer.Option(
        min=0, max=1_000_000_000,
        help="Unmeasured proposals first [default: 2000, or a fifth of --requests if less].")] = None,
    batch: Annotated[Optional[int], typer.Option(
        min=1, max=1_000_000,
        help="Then measure as many again (or as long again) through propose_many, "
             "N values a call (reported beside the one-future-per-command figures).")] = None,
) -> None:
    """Measure decided commands per second, latency and CPU per command of each process."""
    from ..tools.bench import bench as run_bench
    from ..tools.bench import cpu_table

    output = output_format(output, TEXT)
    seconds = None
    if duration is not None:
        try:
            seconds = parse_duration(duration)
        except ValueError as e:
            raise UsageError(f"--duration: {e}") from None
    if requests is None and seconds is None:
        requests = 10_000
    manifest = owned_manifest(file)
    if value_size > manifest.paxos.max_value_bytes:
        raise UsageError(f"--value-size: {value_size} is over paxos.max_value_bytes "
                         f"({manifest.paxos.max_value_bytes})")
    remote = unsupervised(manifest, find_manifest(file))
    if remote is not None:
        # Agents on their own hosts: straight to them, and only this
        # process's CPU is measured (theirs is on other hosts).
        from ..client.datapath import DataClient

        client, state_dir = DataClient(remote[1], cluster_file=str(remote[0].path)), None
    else:
        client, state_dir = connect(file, manifest), manifest.state_dir
    with client:
        if requests is not None and output == "text" and sys.stderr.isatty():
            total = requests * (2 if batch is not None else 1)
            with typer.progressbar(length=total, label="proposing", file=sys.stderr) as bar:
                result = run_bench(client, requests=requests, duration=seconds,
                                   concurrency=concurrency, value_size=value_size,
                                   warmup=warmup, state_dir=state_dir, batch=batch,
                                   progress=bar.update)
        else:
            result = run_bench(client, requests=requests, duration=seconds,
                               concurrency=concurrency, value_size=value_size,
                               warmup=warmup, state_dir=state_dir, batch=batch)
    data = result.as_dict()
    if output in MACHINE:
        echo(render(data, output))
    else:
        lat = data["latency_ms"]
        echo(f"{data['requests']} proposals ({data['errors']} failed), concurrency "
                   f"{concurrency}, {value_size}-byte values, in {data['seconds']:.2f}s")
        echo(f"throughput: {data['throughput_per_s']:.0f} decided commands/s")
        echo(f"latency: p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, "
                   f"max {lat['max']:.2f} ms")
        echo(f"queue limit here: {data['queue_limit_per_s']:.0f} msgs/s one way; "
                   f"ratio {data['ratio_to_limit']:.3f}")
        for line in cpu_table(data):
            echo(line)
        phase = data["batch"]
        if phase is not None:
            lat = phase["latency_ms"]
            echo(f"propose_many, {phase['size']} values a call, {phase['calls_in_flight']} "
                 f"call(s) in flight: {phase['requests']} proposals ({phase['errors']} failed) "
                 f"in {phase['seconds']:.2f}s, {phase['throughput_per_s']:.0f} decided commands/s")
            echo(f"latency (of the call): p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, "
                 f"max {lat['max']:.2f} ms")
            for line in cpu_table(phase):
                echo(line)
    if result.errors or (result.batch is not None and result.batch.errors):
        raise typer.Exit(1)
