"""Change what runs: `apply` a manifest, `scale` a group, `replace` an agent."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from ..discovery import find_manifest
from ..durations import format_duration
from ..errors import NotRunning, UsageError
from ..manifest import load_manifest
from .common import AgentArgument, FileOption, connect, echo, echo_err


def apply(
    file: FileOption = None,
    timeout: Annotated[float, typer.Option(
        min=1, max=3600, help="Seconds to wait for the changes to be in force.")] = 60.0,
) -> None:
    """Change the running cluster to match FILE, touching only what changed (as SIGHUP does).

    Prints one line per change, then waits until it is in force: new agents
    running, removed ones stopped, agents restarted one at a time for
    settings they read at start; a new number of acceptors is a membership
    change, as `scale`. A refused change (an agent's role, log.retain,
    paxos.alpha, the cluster's name or state_dir, the acceptors together
    with other changes) changes nothing and exits 2; no difference exits 0.
    """
    from ..errors import RequestFailed

    started = time.monotonic()
    file = find_manifest(file)
    try:
        client = connect(file)
    except NotRunning:
        raise NotRunning(f"no cluster running for {file}: apply changes a running cluster",
                         hint=f"start it with: paxosctl up -d -f {file} (if it runs with another "
                              "cluster.state_dir, that cannot change while it runs: put it back)"
                         ) from None
    manifest = load_manifest(file)
    with client:
        try:
            reply = client.request("apply", timeout=timeout + 10, file=str(manifest.path),
                                   wait=timeout)
        except RequestFailed as e:
            for line in e.reply.get("refused", []):
                echo_err(f"refused: {line}")
            for line in e.reply.get("changes", []):
                echo(line)
            if e.error == "bad_request":
                raise UsageError(e.message.removeprefix("bad apply request: ")) from None
            raise
    if not reply["changes"]:
        echo(f"no change: cluster {manifest.name} already runs {file}")
        return
    for line in reply["changes"]:
        echo(line)
    restarted = f"; restarted {', '.join(reply['restarted'])}" if reply["restarted"] else ""
    echo(f"applied {file}: in force after {time.monotonic() - started:.1f}s{restarted}")


def scale(
    change: Annotated[list[str], typer.Argument(
        help="GROUP=N: the agent group (a manifest [agents.GROUP] table) and its new count.",
        metavar="GROUP=N")],
    file: FileOption = None,
    timeout: Annotated[float, typer.Option(
        min=1, max=3600, help="Seconds to wait for the change to be in force.")] = 60.0,
    no_wait: Annotated[bool, typer.Option(
        "--no-wait", help="Start the change and exit; paxosctl status shows its progress.")] = False,
) -> None:
    """Grow or shrink an agent group on the running cluster, e.g. acceptor=5.

    New agents take the group's next unused names; shrinking removes the
    highest-numbered ones (their files stay). When the acceptors change,
    the new set is decided as a configuration through Paxos and takes
    effect alpha slots later; removed acceptors stop only once it is in
    force. Waits until then. Refused, exit 2 and nothing changed: an
    unknown group, fewer than 1 of a role, removing a majority of the
    acceptors at once; exit 1 while another change is in progress.
    """
    if len(change) != 1:
        raise UsageError(f"expected one GROUP=N, got {len(change)}: a membership change runs alone")
    group, sep, count = change[0].partition("=")
    if not sep or not group or not count.strip().isdigit():
        raise UsageError(f"expected GROUP=N with N a whole number (e.g. acceptor=5), got {change[0]!r}")
    _membership_change(file, "scale", f"scaling {group} to {int(count)}", timeout, no_wait,
                       group=group, replicas=int(count))


def replace(
    agent: AgentArgument,
    file: FileOption = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace it even though it runs and is healthy.")] = False,
    timeout: Annotated[float, typer.Option(
        min=1, max=3600, help="Seconds to wait for the change to be in force.")] = 60.0,
    no_wait: Annotated[bool, typer.Option(
        "--no-wait", help="Start the change and exit; paxosctl status shows its progress.")] = False,
) -> None:
    """Replace an agent by a new member, e.g. an acceptor whose disk was lost.

    The new member takes its group's next unused name and starts empty; the
    old name is retired for good, so its stale files can never vote again
    (they stay on disk). An acceptor is swapped through a configuration
    change. A running, healthy agent is refused (exit 2) without --force.
    """
    _membership_change(file, "replace", f"replacing {agent}", timeout, no_wait,
                       agent=agent, force=force)


def _membership_change(file: str | None, op: str, doing: str, timeout: float, no_wait: bool,
                       **fields: Any) -> None:
    """Send `op` (scale or replace), print what it does, wait unless `no_wait`."""
    from ..errors import RequestFailed

    started = time.monotonic()
    with connect(file) as client:
        if not no_wait:
            echo(f"{doing}: waiting until the change is in force (at most {format_duration(timeout)})")
        try:
            reply = client.request(op, timeout=timeout + 10, wait=0 if no_wait else timeout,
                                   **fields)
        except RequestFailed as e:
            if e.error == "bad_request":
                raise UsageError(e.message.removeprefix(f"bad {op} request: ")) from None
            raise
    if reply.get("unchanged"):
        echo(f"no change: {reply['why'].removeprefix('scale ')}")
        return
    for line in reply["changes"]:
        echo(line)
    if no_wait:
        echo(f"{reply['why']}: started; see paxosctl status")
    else:
        epoch = f" (configuration epoch {reply['epoch']})" if reply.get("epoch") else ""
        echo(f"{reply['why']}: in force after {time.monotonic() - started:.1f}s{epoch}")
