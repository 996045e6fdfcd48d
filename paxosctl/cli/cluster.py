"""Look at the cluster without changing it: `status` (`ps`), `metrics`,
`validate` (the manifest and this machine), `version`, and `completion`
(the tool's own)."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any, Optional

import typer

from .. import __version__
from ..discovery import find_manifest
from ..output import MACHINE, document, render
from ..errors import PaxosctlError, UsageError
from ..manifest import check_runtime, load_manifest, warnings
from ..supervisor.ownership import check_owner
from ..supervisor.pidfile import running_supervisor
from .common import (FILE_HELP, TABLES, TEXT, FileOption, TableOutput, TextOutput, completer,
                     connect, echo, echo_err, owned_manifest, output_format, status_reply,
                     unsupervised)


def status(
    file: FileOption = None,
    output: TableOutput = "table",
    watch: Annotated[bool, typer.Option(
        "-w", "--watch", help="Redraw on every change until Ctrl-C.")] = False,
) -> None:
    """Show agents, pids, restarts, the leader and progress.

    Exits 3 when an agent that should run does not (unresponsive counts;
    one stopped by the operator does not).
    """
    from ..views import down_agents, status_key

    output = output_format(output, TABLES)
    wide = output != "table"  # the machine formats carry every field
    file = find_manifest(file)
    manifest = owned_manifest(file)
    remote = unsupervised(manifest, file)
    if remote is not None:
        if watch:
            raise UsageError("--watch needs the cluster's supervisor; agents run on their own "
                             "hosts are asked once: leave out --watch")
        _agents_status(remote, output)
        return
    with connect(file, manifest) as client:
        if not watch:
            st = status_reply(client, wide)
            _warn_if_drifted(st, file)
            _show_status(st, output)
            if down_agents(st):
                raise typer.Exit(3)
            return
        last = None
        clear = sys.stdout.isatty() and output in ("table", "wide")
        try:
            while True:
                st = status_reply(client, wide)
                key = status_key(st)
                if key != last:
                    if clear:
                        echo("\x1b[H\x1b[2J", nl=False)  # redraw in place, as watch(1)
                        echo(f"paxosctl status -w   {time.strftime('%H:%M:%S')}   (Ctrl-C ends)")
                    elif output in ("table", "wide") and last is not None:
                        echo("")  # not a terminal: one table after another
                    _show_status(st, output, watching=True)
                    last = key
                time.sleep(0.5)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None  # Ctrl-C ends a watch: 130, as for any Ctrl-C


def _agents_status(remote, output: str) -> None:
    """`status` asked of the agents themselves: each one's WELCOME
    (paxosctl.client.probe.survey), the manifest's agents and any member
    they name. Exits 3 when an agent does not answer."""
    from ..client.probe import survey

    manifest, endpoints = remote
    answers = survey(endpoints, tuple(a.name for a in manifest.agents))
    leaders = {a.welcome.get("leader") for a in answers if a.welcome.get("leader")}
    rows = [_agent_row(a) for a in answers]
    if output in MACHINE:
        echo(render(document("Status", {"cluster": manifest.name, "source": "agents",
                                         "leader": sorted(leaders)[0] if len(leaders) == 1 else None,
                                         "agents": rows}), output))
    else:
        echo(f"cluster {manifest.name}: asked {len(answers)} agents directly (no supervisor "
             f"here); leader: {', '.join(sorted(leaders)) or 'none known'}")
        echo(f"{'NAME':<16} {'ROLES':<26} {'STATE':<9} {'INCARNATION':>11} {'BALLOT':>14} "
             f"{'APPLIED':>9} {'LAG':>5}  NOTE")
        for row in rows:
            roles = ",".join(row["roles"]) or "-"
            state = "answered" if row["answered"] else "silent"
            ballot = f"{row['ballot'][0]}.{row['ballot'][1]}" if row["ballot"] else "-"
            note = row["error"] or (f"leader {row['leader']}" if row["leader"] else "")
            if row["learned"]:
                note = (note + "; " if note else "") + "not in the manifest (a member says so)"
            echo(f"{row['name']:<16} {roles:<26} {state:<9} {_dash(row['incarnation']):>11} "
                 f"{ballot:>14} {_dash(row['applied']):>9} {_dash(row['lag']):>5}  {note}")
    if not all(a.answered for a in answers):
        raise typer.Exit(3)


def _agent_row(answer) -> dict[str, Any]:
    """One agent's status row from its WELCOME: lag is the slots known
    decided but not applied yet (a learner's)."""
    w = answer.welcome
    applied, decided = w.get("applied"), w.get("highest_decided")
    ballot = w.get("ballot")
    return {"name": answer.name, "answered": answer.answered, "learned": answer.learned,
            "roles": w.get("roles", []), "incarnation": w.get("incarnation"),
            "leader": w.get("leader"),
            "ballot": ballot if isinstance(ballot, list) and len(ballot) == 2 else None,
            "applied": applied, "decided": decided,
            "lag": decided - applied if type(applied) is int and type(decided) is int else None,
            "error": answer.error or None}


def _dash(value: object) -> str:
    return "-" if value is None else str(value)


def _show_status(st: dict[str, Any], output: str, *, watching: bool = False) -> None:
    """Print one status: a table, or a versioned document; while watching,
    JSON is one document per line and YAML a stream of documents."""
    from ..views import status_lines

    if output in MACHINE:
        body = render(document("Status", st), output)
        echo(("---\n" if watching and output == "yaml" else "") + body)
        return
    for line in status_lines(st, wide=output == "wide"):
        echo(line)


def _warn_if_drifted(st: dict[str, Any], file: str) -> None:
    """`status`: say so when the running cluster is not what FILE describes."""
    from ..supervisor.reconcile import drifted

    if drifted(st, file):
        echo_err(f"warning: the running cluster differs from {file} (run paxosctl apply)")



def metrics(file: FileOption = None) -> None:
    """Print the current Prometheus scrape of the running cluster.

    With no supervisor here (agents run by `paxosctl agent`), every agent's
    own /metrics, each after a comment line naming it; an agent that does
    not answer gets a comment line saying why, and the exit code is 3.
    """
    file = find_manifest(file)
    manifest = owned_manifest(file)
    remote = unsupervised(manifest, file)
    if remote is None:
        with connect(file, manifest) as client:
            reply = client.request("metrics")
        echo(reply["text"], nl=False)
        return
    from ..client.scrape import scrape_all

    silent = 0
    for scrape in scrape_all(*remote):
        if scrape.error:
            silent += 1
            echo(f"# paxosctl: {scrape.agent} ({scrape.url or 'no address'}) did not answer: "
                 f"{scrape.error}")
        else:
            echo(f"# paxosctl: {scrape.agent} ({scrape.url})")
            echo(scrape.text.rstrip("\n"))
    if silent:
        raise typer.Exit(3)


def validate(
    manifest_file: Annotated[Optional[str], typer.Argument(
        metavar="FILE", help=FILE_HELP, show_default=False)] = None,
    file: FileOption = None,
) -> None:
    """Check a manifest (and this machine) without starting anything."""
    if manifest_file is not None and file is not None and manifest_file != file:
        raise UsageError(f"validate: two manifests given ({manifest_file} and -f {file}); "
                         f"give one")
    manifest_file = find_manifest(manifest_file if manifest_file is not None else file)
    manifest = load_manifest(manifest_file)
    check_owner(manifest)
    if running_supervisor(manifest.state_dir) is not None:
        found = warnings(manifest)  # its own metrics port is in use by itself
    else:
        found = check_runtime(manifest)
    for warning in found:
        echo_err(f"warning: {warning}")
    roles = {r: len(getattr(manifest, r)) for r in ("proposers", "acceptors", "learners")}
    echo(f"{manifest_file}: valid: cluster {manifest.name}, {len(manifest.agents)} agents "
               f"({', '.join(f'{n} {r}' for r, n in roles.items())})")


def version(file: FileOption = None, output: TextOutput = "text") -> None:
    """The client's version, and the running supervisor's if a cluster runs."""
    output = output_format(output, TEXT)
    server: dict[str, Any] | None = None
    try:
        manifest = owned_manifest(file)
        if running_supervisor(manifest.state_dir) is not None:
            with connect(find_manifest(file)) as client:
                ping = client.request("ping")
            server = {"version": ping.get("version"), "pid": ping.get("pid"),
                      "cluster": ping.get("cluster")}
    except PaxosctlError:
        server = None  # no manifest, or no cluster: the client's version alone
    info = {"client": {"version": __version__, "python": sys.version.split()[0]},
            "supervisor": server}
    if output in MACHINE:
        echo(render(document("Version", info), output))
        return
    echo(f"client:     paxosctl {__version__} (Python {info['client']['python']})")
    if server is None:
        echo("supervisor: (no cluster running here)")
    else:
        echo(f"supervisor: paxosctl {server['version']} (pid {server['pid']}, "
              f"cluster {server['cluster']})")


def completion(shell: Annotated[str, typer.Argument(
        help="bash, zsh or fish.", autocompletion=completer(("bash", "zsh", "fish")))]) -> None:
    """Print the shell completion script: source <(paxosctl completion bash).

    It completes commands, options, agent names and -o values.
    """
    from typer._completion_shared import get_completion_script  # typer pinned in pyproject

    if shell not in ("bash", "zsh", "fish"):
        raise UsageError(f"completion: unknown shell {shell!r}; allowed: bash, zsh, fish")
    echo(get_completion_script(prog_name="paxosctl", complete_var="_PAXOSCTL_COMPLETE",
                                shell=shell))
