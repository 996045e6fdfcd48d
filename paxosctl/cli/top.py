"""`paxosctl top`: the cluster live in the terminal (paxosctl.topview).

The view itself is paxosctl.topview; this module checks the command line,
picks the source as `status` does (the supervisor's, else the agents'
own, with no supervisor here), takes the first pass before the screen
opens (so that a cluster that is not running is the usual one-line
error, exit 1, with the terminal untouched), and maps how the screen
ended to the exit code.

Exit codes: 0 for `q` or Ctrl-C; 1 when no cluster runs; 2 for bad input,
or when standard input or output is not a terminal (top is interactive:
a script reads `paxosctl status -o json` or `paxosctl metrics`, whose
formats are kept stable; a one-shot table from top would be a third,
and its rates need two passes anyway); 3 when the cluster went away while
it ran (one line on stderr says so).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..durations import format_duration, parse_duration
from ..errors import NotRunning, UsageError
from .common import FileOption, connect, echo_err, find_manifest, owned_manifest, unsupervised

#: The shortest and longest refresh interval allowed.
MIN_INTERVAL = 0.1
MAX_INTERVAL = 60.0


def top(
    file: FileOption = None,
    interval: Annotated[str, typer.Option(
        "--interval", "-i", help="Time between two refreshes (100ms to 1m).")] = "1s",
) -> None:
    """Watch the cluster live: agents, rates, lag, restarts (like htop).

    One row per agent: state, role, leader (*), ballot, commands/s,
    slots/s, the 99th percentile of its persists (fsync included), a
    learner's lag and the restarts. Keys: s sort, up/down select, Enter
    describe, l logs, q quit. Needs a terminal; exits 3 if the cluster
    goes away while it watches.
    """
    seconds = _interval(interval)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("top needs a terminal (standard input and output); for a script "
                         "use paxosctl status -o json or paxosctl metrics")
    from ..topview.screen import run
    from ..topview.source import AgentsSource, Source, SupervisedSource, Unreachable

    file = find_manifest(file)
    manifest = owned_manifest(file)
    remote = unsupervised(manifest, file)
    source: Source
    if remote is not None:
        source = AgentsSource(*remote)
    else:
        connect(file, manifest).close()  # NotRunning, with the `paxosctl up` to type
        source = SupervisedSource(manifest, file, lambda: connect(file, manifest))
    try:
        first = source.snapshot()
    except Unreachable as e:
        source.close()
        raise NotRunning(f"cluster {manifest.name}: {e}") from None
    outcome = run(source, seconds, first)
    if outcome.line:
        echo_err(outcome.line)
    if outcome.code:
        raise typer.Exit(outcome.code)


def _interval(text: str) -> float:
    """--interval in seconds; `UsageError` naming what is allowed."""
    allowed = f"{format_duration(MIN_INTERVAL)} to {format_duration(MAX_INTERVAL)}"
    try:
        seconds = parse_duration(text)
    except ValueError as e:
        raise UsageError(f"--interval: {e}") from None
    if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
        raise UsageError(f"--interval: {text!r} is out of range; allowed: {allowed}")
    return seconds
