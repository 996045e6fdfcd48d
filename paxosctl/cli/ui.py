"""`paxosctl ui`: serve a live page of the cluster on this machine.

The page draws the agents (by role, state, leader), the decided log
growing, leader changes, kills and restarts, and the messages between
the agents (paxosctl.ui). Only the code of this command imports the
server (cold `status` stays as it was).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..errors import PaxosctlError, UsageError
from .common import FileOption, echo, echo_err, find_manifest, owned_manifest


def ui(
    file: FileOption = None,
    port: Annotated[int, typer.Option(
        "--port", "-p", min=0, max=65535,
        help="The port to listen on (0: any free one).")] = 8765,
    host: Annotated[str, typer.Option(
        help="The address to listen on. Anything but the loopback shows the cluster, and "
             "with --allow-actions lets it be killed, to whoever has the token.")] = "127.0.0.1",
    allow_actions: Annotated[bool, typer.Option(
        "--allow-actions", help="Let the page kill an agent, cut one off and heal, and "
                                "slow the cluster down (chaos delay); off by default.")] = False,
) -> None:
    """Serve a live page of the cluster: agents, leader, the decided log, the messages.

    The first line of output is the URL to open, with a random token in it:
    every request without that token is refused (403), as is one whose Host
    is not this server's (421: DNS rebinding) and an action from another
    origin (403). Runs until Ctrl-C (exit 130). Works without a supervisor
    here (the agents are asked over the transport); actions need one.
    """
    from ..ui.gate import new_token
    from ..ui.server import serve

    if not host or any(c.isspace() for c in host):
        raise UsageError(f"--host: expected an address to listen on, got {host!r}")
    file = find_manifest(file)
    manifest = owned_manifest(file)
    token = new_token()

    def ready(url: str) -> None:
        echo(url)  # the first line: scripts and tests read it
        sys.stdout.flush()
        echo_err(f"serving the page of cluster {manifest.name} (Ctrl-C ends it)"
                 + ("; actions allowed" if allow_actions else ""))

    try:
        serve(manifest, file, host=host, port=port, token=token, allow_actions=allow_actions,
              ready=ready)
    except OSError as e:
        raise PaxosctlError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
