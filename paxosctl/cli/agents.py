"""Commands about one agent (or each in turn): `logs`, `kill`, `restart`,
`stop`, `start`, `describe`, `events`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ..durations import format_duration, parse_duration
from ..output import MACHINE, document, render
from ..errors import NotHealthy, PaxosctlError, UsageError
from ..layout import paths
from .common import (FILE_HELP, TABLES, TEXT, AgentArgument, FileOption, TableOutput,
                     TextOutput, checked_call, complete_agent, connect, echo, owned_manifest,
                     output_format, status_reply)

if TYPE_CHECKING:
    from ..client.sync import Client


def logs(
    agents: Annotated[Optional[list[str]], typer.Argument(
        metavar="AGENT", help="Agents (or 'supervisor') [default: all, interleaved].",
        autocompletion=complete_agent, show_default=False)] = None,
    file: Annotated[Optional[str], typer.Option(
        "--file", help=FILE_HELP + " (-f is --follow here, as in kubectl and docker).",
        show_default=False)] = None,
    follow: Annotated[bool, typer.Option(
        "-f", "--follow", "-F", help="Keep printing new lines until Ctrl-C.")] = False,
    tail: Annotated[Optional[int], typer.Option(
        "--tail", "-n", min=0, help="Show only the last N lines [default: all].",
        show_default=False)] = None,
    since: Annotated[Optional[str], typer.Option(
        help='Only records newer than this, e.g. "10m", "90s".')] = None,
) -> None:
    """Print agents' logs (state_dir/logs), merged by time when several.

    With several agents or none (all of them and the supervisor), lines
    are merged by time and prefixed with the agent's name.
    """
    from ..logview import Follower, files_of, merge, read

    manifest = owned_manifest(file)
    logs_dir = paths(manifest.state_dir)["logs"]
    known = [a.name for a in manifest.agents] + ["supervisor"]
    # Logs of agents no longer in the manifest (removed by apply) stay readable.
    on_disk = sorted(p.name[:-4] for p in logs_dir.glob("*.log")) if logs_dir.is_dir() else []
    names = known + [n for n in on_disk if n not in known]
    chosen = list(dict.fromkeys(agents)) if agents else names
    for name in chosen:
        if name not in names:
            raise UsageError(f"no agent {name!r}; agents: {', '.join(names)}")
    cutoff = None
    if since is not None:
        try:
            cutoff = time.time() - parse_duration(since)
        except ValueError as e:
            raise UsageError(f"--since: {e}") from None
    if agents and len(chosen) == 1 and not files_of(logs_dir, chosen[0]) and not follow:
        raise PaxosctlError(f"no log yet for {chosen[0]} ({logs_dir / (chosen[0] + '.log')})")
    prefixed = len(chosen) > 1
    width = max(len(n) for n in chosen)

    def show(name: str, text: str) -> None:
        echo(f"{name.ljust(width)} | {text}" if prefixed else text)

    # Followers first: nothing written between the read and the follow is lost.
    followers = {n: Follower(logs_dir / f"{n}.log", n) for n in chosen} if follow else {}
    lines = list(merge(read(logs_dir, n, cutoff, followers.get(n)) for n in chosen))
    for line in lines[max(0, len(lines) - tail):] if tail is not None else lines:
        show(line.source, line.text)
    if not follow:
        return
    try:
        while True:
            fresh = False
            for follower in followers.values():
                for text in follower.poll():
                    fresh = True
                    show(follower.name, text)
            if not fresh:
                time.sleep(0.1)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None  # Ctrl-C ends a follow: 130, as for any Ctrl-C
    finally:
        for follower in followers.values():
            follower.close()


def kill(
    agent: AgentArgument,
    file: FileOption = None,
    signal_name: Annotated[str, typer.Option("--signal", "-s", help="KILL, TERM, STOP, CONT...")] = "KILL",
) -> None:
    """Send a signal to an agent (default KILL); the supervisor restarts it per policy."""
    with connect(file) as client:
        reply = checked_call(lambda: client.request("kill", agent=agent, signal=signal_name))
    echo(f"sent {reply['signal']} to {reply['agent']} (pid {reply['pid']})")


def restart(agent: AgentArgument, file: FileOption = None) -> None:
    """Restart an agent now (also one that gave up, fatal, or was stopped)."""
    with connect(file) as client:
        reply = checked_call(lambda: client.request("restart", agent=agent))
    echo(f"restarting {reply['agent']}")


def stop(
    agent: AgentArgument,
    file: FileOption = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for it to end.")] = 15.0,
) -> None:
    """Stop one agent until `paxosctl start`, whatever the restart policy.

    SIGTERM, then SIGKILL after 5s. Status does not count it as down.
    """
    with connect(file) as client:
        reply = checked_call(lambda: client.request("stop", agent=agent))
        if not reply["changed"]:
            echo(f"{agent} is already stopped")
            return
        row = _wait_agent(client, agent, lambda a: a["pid"] is None, wait)
    if row is None:
        raise NotHealthy(f"{agent} did not end within {format_duration(wait)}; it stays "
                         f"stopped once it does", hint=f"see paxosctl describe {agent}")
    echo(f"stopped {agent}")


def start(
    agent: AgentArgument,
    file: FileOption = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait until it runs.")] = 30.0,
) -> None:
    """Start an agent that is stopped (by `stop` or its restart policy) or fatal."""
    with connect(file) as client:
        reply = checked_call(lambda: client.request("start", agent=agent))
        if not reply["changed"]:
            echo(f"{agent} is already {reply['state']}")
            return
        row = _wait_agent(client, agent, lambda a: a["state"] in ("running", "fatal"), wait)
    if row is None or row["state"] != "running":
        note = f": {row['note']}" if row and row.get("note") else ""
        raise NotHealthy(f"{agent} is not running{note}",
                         hint=f"see paxosctl describe {agent} and paxosctl logs {agent}")
    echo(f"started {agent} (pid {row['pid']})")


def _wait_agent(client: "Client", name: str, done, seconds: float) -> dict[str, Any] | None:
    """Poll status until `done(row)` holds for agent `name`; its row, or None at the deadline."""
    deadline = time.monotonic() + seconds
    while True:
        row = next(a for a in status_reply(client, False)["agents"] if a["name"] == name)
        if done(row):
            return row
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def describe(agent: AgentArgument, file: FileOption = None,
             output: TextOutput = "text") -> None:
    """Everything the supervisor knows of one agent.

    State, pid, incarnation, last exit, restarts by reason, backoff,
    last heartbeat, files, and its recent events.
    """
    from ..views import describe_lines

    output = output_format(output, TEXT)
    with connect(file) as client:
        reply = checked_call(lambda: client.request("describe", agent=agent))
    if output in MACHINE:
        echo(render(document("Agent", reply["agent"]), output))
        return
    for line in describe_lines(reply["agent"]):
        echo(line)


def events(
    agent: Annotated[Optional[str], typer.Argument(
        help="Only this agent's events.", autocompletion=complete_agent,
        show_default=False)] = None,
    file: FileOption = None,
    output: TableOutput = "table",
    watch: Annotated[bool, typer.Option(
        "-w", "--watch", help="Keep printing new events until Ctrl-C.")] = False,
) -> None:
    """The supervisor's lifecycle events, newest last.

    Started, running, exited, unhealthy, stopped...: kept in memory since
    the supervisor started; its log has them all.
    """
    from ..views import events_lines

    output = output_format(output, TABLES)
    fields = {"agent": agent} if agent else {}
    with connect(file) as client:
        reply = checked_call(lambda: client.request("events", after=0, **fields))
        if output in MACHINE and not watch:
            echo(render(document("EventList", {"events": reply["events"]}), output))
            return
        header = True
        try:
            while True:
                batch = reply["events"]
                if output in MACHINE:
                    for e in batch:  # one document per event, as kubectl get -w
                        doc = render(document("Event", e), output)
                        echo(doc if output == "json" else "---\n" + doc)
                elif batch or (header and not watch):
                    for line in events_lines(batch, header=header):
                        echo(line)
                    header = False
                if not watch:
                    return
                time.sleep(0.3)
                reply = client.request("events", after=reply["last"], **fields)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None  # Ctrl-C ends a watch: 130, as for any Ctrl-C
