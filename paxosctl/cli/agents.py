"""Commands about one agent (or each in turn): `logs`, `kill`, `restart`,
`stop`, `start`, `describe`, `events`.

`logs`, `describe` and `events` also work with no supervisor here (agents
run by `paxosctl agent NAME`, on this host or others): they ask the agents
themselves (an INFO frame: paxos_agents.runtime.queries), which keep their
recent log lines and events in bounded rings (paxos_agents.runtime.records).
The agents asked are the manifest's and any member an answering agent
names (paxosctl.client.probe.survey). An agent not in that set is bad input
(exit 2); an agent asked that does not answer makes the command exit 3
(after printing what the others said), as `status` does.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ..durations import format_duration, parse_duration
from ..output import MACHINE, document, render
from ..errors import NotHealthy, PaxosctlError, UsageError
from ..layout import paths
from .common import (FILE_HELP, TABLES, TEXT, AgentArgument, FileOption, TableOutput,
                     TextOutput, checked_call, complete_agent, connect, echo, echo_err,
                     find_manifest, owned_manifest, output_format, status_reply, unsupervised)

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

    file = find_manifest(file)
    manifest = owned_manifest(file)
    remote = unsupervised(manifest, file)
    if remote is not None:
        _agents_logs(remote, agents, follow, tail, since)
        return
    logs_dir = paths(manifest.state_dir)["logs"]
    known = [a.name for a in manifest.agents] + ["supervisor"]
    # Logs of agents no longer in the manifest (removed by apply) stay readable.
    on_disk = sorted(p.name[:-4] for p in logs_dir.glob("*.log")) if logs_dir.is_dir() else []
    names = known + [n for n in on_disk if n not in known]
    chosen = list(dict.fromkeys(agents)) if agents else names
    for name in chosen:
        if name not in names:
            raise UsageError(f"no agent {name!r}; agents: {', '.join(names)}")
    cutoff = _cutoff(since)
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


def _agents_logs(remote, agents: list[str] | None, follow: bool, tail: int | None,
                 since: str | None) -> None:
    """`logs` asked of the agents: each one's ring of recent lines, merged
    by time; one line on stderr says where the engine keeps the full log."""
    manifest, endpoints = remote
    cutoff = _cutoff(since)
    chosen = _chosen(manifest, endpoints, agents)
    echo_err("full logs: " + "; ".join(_full_log(manifest, n) for n in chosen))
    prefixed = len(chosen) > 1
    width = max(len(n) for n in chosen)
    pages = _Pages(endpoints, chosen, "logs")
    lines = [(item["at"], name, item["line"]) for name, item in pages.fetch()
             if cutoff is None or item["at"] >= cutoff]
    lines.sort(key=lambda line: line[0])
    for _, name, text in lines[max(0, len(lines) - tail):] if tail is not None else lines:
        echo(f"{name.ljust(width)} | {text}" if prefixed else text)
    _follow(pages, follow, lambda name, item: echo(
        f"{name.ljust(width)} | {item['line']}" if prefixed else item["line"]))


def _full_log(manifest, name: str) -> str:
    """Where the engine that runs agent `name` keeps its whole log."""
    transport = manifest.transport
    try:
        placed = transport.placement(name) if transport.tls else None
    except ValueError:
        placed = None
    if placed is not None and placed.by == "template":
        return f"kubectl logs -n {transport.namespace} {manifest.name}-{name}-0"
    if placed is not None and placed.by == "host":
        return f"journalctl -u paxosctl-{manifest.name}-{name} (on {placed.host})"
    return f"{name}: the standard output of its `paxosctl agent {name}`"


def _chosen(manifest, endpoints, agents: list[str] | None) -> list[str]:
    """The agents a command is about: `agents` (each one the cluster has), or all."""
    from ..client.probe import survey

    given = [a.name for a in manifest.agents]
    wanted = list(dict.fromkeys(agents or ()))
    if wanted and all(a in given for a in wanted):
        return wanted
    known = [a.name for a in survey(endpoints, tuple(given))]  # members named since
    for name in wanted:
        if name not in known:
            raise UsageError(f"no agent {name!r}; agents: {', '.join(known)}")
    return wanted or known


class _Pages:
    """Pages of one INFO op ("events" or "logs") from several agents, each
    read on from the last record it gave (started over when it restarted)."""

    def __init__(self, endpoints, names: list[str], op: str) -> None:
        self.endpoints = endpoints
        self.op = op
        self.since = {n: 0 for n in names}
        self.incarnation: dict[str, object] = {}
        self.silent: dict[str, str] = {}

    def fetch(self) -> list[tuple[str, dict[str, Any]]]:
        """The records each agent added since the last fetch, as (agent, record);
        agents that did not answer are in `silent` (and warned of on stderr)."""
        from paxos_agents.runtime.records import EVENTS, LOG_LINES, PAGE

        from ..client.probe import survey

        out: list[tuple[str, dict[str, Any]]] = []
        self.silent = {}
        todo = dict(self.since)
        for _ in range(max(EVENTS, LOG_LINES) // PAGE + 2):  # a whole ring, then stop
            if not todo:
                break
            answers = []
            for since in sorted(set(todo.values())):
                answers += survey(self.endpoints, tuple(n for n, s in todo.items() if s == since),
                                  {"op": self.op, "since": since}, learn=False)
            todo = {}
            for answer in answers:
                name, reply = answer.name, answer.reply
                if not answer.answered:
                    self.silent[name] = answer.error
                    continue
                restarted = self.incarnation.get(name, reply["incarnation"]) != reply["incarnation"]
                self.incarnation[name] = reply["incarnation"]
                if restarted and self.since[name]:
                    self.since[name] = todo[name] = 0  # its numbers start again: read from 0
                    continue
                out += [(name, item) for item in reply["items"]]
                self.since[name] = reply["last"]
                if len(reply["items"]) >= PAGE:
                    todo[name] = reply["last"]  # a full page: there is more
        for name, why in self.silent.items():
            echo_err(f"warning: {name} did not answer: {why}")
        return out


def _follow(pages: _Pages, follow: bool, show) -> None:
    """After the first fetch: with `follow`, print new records until Ctrl-C;
    without, exit 3 if an agent did not answer."""
    if not follow:
        if pages.silent:
            raise typer.Exit(3)
        return
    try:
        while True:
            time.sleep(0.5)
            for name, item in sorted(pages.fetch(), key=lambda r: r[1]["at"]):
                show(name, item)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None  # Ctrl-C ends a follow: 130, as for any Ctrl-C


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
    last heartbeat, files, and its recent events. With no supervisor here,
    what the agent knows of itself (asked of it; exit 3 if it is silent).
    """
    from ..views import describe_lines

    output = output_format(output, TEXT)
    file = find_manifest(file)
    manifest = owned_manifest(file)
    remote = unsupervised(manifest, file)
    if remote is not None:
        _agent_describe(remote, agent, output)
        return
    with connect(file, manifest) as client:
        reply = checked_call(lambda: client.request("describe", agent=agent))
    if output in MACHINE:
        echo(render(document("Agent", reply["agent"]), output))
        return
    for line in describe_lines(reply["agent"]):
        echo(line)


def _agent_describe(remote, agent: str, output: str) -> None:
    """`describe` asked of the agent itself (its own view: queries.py)."""
    from ..client.probe import survey
    from ..views import own_view_lines

    manifest, endpoints = remote
    _chosen(manifest, endpoints, [agent])
    answer = survey(endpoints, (agent,), {"op": "describe"}, learn=False)[0]
    if not answer.answered:
        raise NotHealthy(f"{agent} did not answer: {answer.error}")
    view = answer.reply["agent"]
    if output in MACHINE:
        echo(render(document("Agent", view), output))
        return
    for line in own_view_lines(view):
        echo(line)


def events(
    agent: Annotated[Optional[str], typer.Argument(
        help="Only this agent's events.", autocompletion=complete_agent,
        show_default=False)] = None,
    file: FileOption = None,
    output: TableOutput = "table",
    watch: Annotated[bool, typer.Option(
        "-w", "--watch", "--follow", help="Keep printing new events until Ctrl-C.")] = False,
) -> None:
    """The supervisor's lifecycle events, newest last.

    Started, running, exited, unhealthy, stopped...: kept in memory since
    the supervisor started; its log has them all. With no supervisor here,
    the agents' own events (the last 500 each: started, admitted, peers
    welcomed or refused, leader seen, membership and configuration
    changes, admin frames), merged by time; exit 3 if an agent is silent.
    """
    from ..views import events_lines

    output = output_format(output, TABLES)
    file = find_manifest(file)
    manifest = owned_manifest(file)
    remote = unsupervised(manifest, file)
    if remote is not None:
        _agents_events(remote, agent, output, watch)
        return
    fields = {"agent": agent} if agent else {}
    with connect(file, manifest) as client:
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


def _agents_events(remote, agent: str | None, output: str, watch: bool) -> None:
    """`events` asked of the agents (their rings: records.py), merged by time."""
    from ..views import events_lines

    manifest, endpoints = remote
    pages = _Pages(endpoints, _chosen(manifest, endpoints, [agent] if agent else None), "events")

    def merged(records: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        return sorted(({**item, "agent": name} for name, item in records), key=lambda e: e["at"])

    first = merged(pages.fetch())
    if output in MACHINE and not watch:
        echo(render(document("EventList", {"events": first}), output))
    else:
        def show(name: str, item: dict[str, Any]) -> None:
            e = {**item, "agent": name}
            if output in MACHINE:
                doc = render(document("Event", e), output)
                echo(doc if output == "json" else "---\n" + doc)
            else:
                for line in events_lines([e], header=False):
                    echo(line)

        if output in MACHINE:
            for e in first:
                show(e["agent"], e)
        else:
            for line in events_lines(first):
                echo(line)
    _follow(pages, watch, show if watch else None)


def _cutoff(since: str | None) -> float | None:
    """The wall time `--since` names (None: no cutoff); UsageError for a bad one."""
    if since is None:
        return None
    try:
        return time.time() - parse_duration(since)
    except ValueError as e:
        raise UsageError(f"--since: {e}") from None
