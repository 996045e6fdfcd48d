"""`paxosctl agent NAME`: one agent of the manifest in the foreground, no supervisor.

The work is `paxosctl.standalone`, imported when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from .common import FileOption, echo_err, find_manifest, load_manifest

#: Where the probes of an agent the manifest does not place listen unless
#: `--http` says otherwise (a placed one: its `Placement.http`, from
#: `[transport] http_port`, the same port by default). All addresses: in a
#: container the probes come from the kubelet through the pod's own
#: address, never its loopback. 9466: beside the supervisor's metrics
#: (9464, and 9465 in examples/replicas.toml), so a host running both
#: clashes with neither.
DEFAULT_HTTP = "0.0.0.0:9466"


def _address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--http: expected HOST:PORT with a port from 0 to 65535, got {value!r:.60}")
    return host.strip("[]"), int(port)


def agent(
    name: Annotated[str, typer.Argument(help="The agent to run, as the manifest names it (acceptor-0).")],
    file: FileOption = None,
    state_dir: Annotated[Optional[Path], typer.Option(
        "--state-dir", help="Its state dir [default: the manifest's state_dir].",
        show_default=False)] = None,
    bootstrap: Annotated[bool, typer.Option(
        "--bootstrap", help="This agent starts a new cluster: an empty store may start.")] = False,
    http: Annotated[Optional[str], typer.Option(
        "--http", help="HOST:PORT of the /healthz, /readyz and /metrics probes (plain HTTP) "
                       "[default: where the manifest places them, else 0.0.0.0:9466].",
        show_default=False)] = None,
) -> None:
    """Run agent NAME of the manifest in the foreground, with no supervisor:
    as a container's or a systemd unit's main process.

    Logs to stdout; SIGTERM or Ctrl-C ends it gracefully (exit 0). Exits 78
    with one line when it refuses to start (a certificate problem, state it
    cannot open or that is missing, a supervisor running the same state
    dir): restarting would fail the same way.
    """
    from ..standalone.program import run

    manifest = load_manifest(find_manifest(file))
    if http is None:
        http = DEFAULT_HTTP
        if manifest.transport.tls:
            try:  # a name `scale` added is placed as the manifest's are
                placed = manifest.transport.placement(name)
            except ValueError:
                placed = None
            if placed is not None and placed.placed:
                http = placed.http
    address = _address(http)
    run(manifest, name, state_dir=state_dir, bootstrap=bootstrap, http=address, say=echo_err)
