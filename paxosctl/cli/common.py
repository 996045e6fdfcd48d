"""The app every command registers on, what the commands share, and `main`.

The only place that picks exit codes: data goes to stdout, errors and
warnings to stderr, and every expected failure is a `PaxosctlError`,
turned into `error: ...` and its exit code in `main`. The command
modules import from here and from nowhere else in this package.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from .. import __version__
from ..discovery import find_manifest
from ..output import MACHINE, allowed
from ..errors import NotRunning, PaxosctlError, UsageError
from ..manifest import Manifest, load_manifest
from ..layout import paths
from ..supervisor.ownership import check_owner
from ..supervisor.pidfile import running_supervisor

if TYPE_CHECKING:
    from ..client.sync import Client


app = typer.Typer(
    name="paxosctl",
    help="Run a Multi-Paxos cluster on this machine: one supervised process per agent.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # our help says "[default: ...]": text, not markup
    # -h as well as --help, on every command (as kubectl and docker have it).
    context_settings={"help_option_names": ["-h", "--help"]},
)


FILE_HELP = ("The cluster manifest [default: $PAXOSCTL_FILE, else ./cluster.toml "
             "or the nearest one in a parent folder].")


def _complete_agent(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion: the agent names of the manifest the command would use."""
    try:
        manifest = load_manifest(find_manifest(ctx.params.get("file")))
    except Exception:  # completion must never fail loudly
        return []
    return [a.name for a in manifest.agents if a.name.startswith(incomplete)]


def _completer(formats: tuple[str, ...]):
    def complete(incomplete: str) -> list[str]:
        return [f for f in formats if f.startswith(incomplete)]
    return complete


FileOption = Annotated[Optional[str], typer.Option(
    "-f", "--file", help=FILE_HELP, show_default=False)]


AgentArgument = Annotated[str, typer.Argument(
    help="The agent's name.", autocompletion=_complete_agent)]


TABLES = ("table", "wide", *MACHINE)


TEXT = ("text", *MACHINE)


TableOutput = Annotated[str, typer.Option(
    "-o", "--output", help=f"One of: {', '.join(TABLES)}.", autocompletion=_completer(TABLES))]


TextOutput = Annotated[str, typer.Option(
    "-o", "--output", help=f"One of: {', '.join(TEXT)}.", autocompletion=_completer(TEXT))]


class _PipeClosed(Exception):
    """Whoever reads our output closed the pipe (`paxosctl decided | head -1`)."""


def _echo(message: str = "", *, err: bool = False, nl: bool = True) -> None:
    """`typer.echo`, but a closed pipe ends the command quietly (see `main`).

    Not left to click: it turns a broken pipe into exit 1.
    """
    try:
        typer.echo(message, err=err, nl=nl)
    except BrokenPipeError:
        raise _PipeClosed() from None


def _err(message: str) -> None:
    _echo(message, err=True)


def _version(value: bool) -> None:
    if value:
        _echo(f"paxosctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
) -> None:
    """Run a Multi-Paxos cluster on this machine: one supervised process per agent."""


def _output(value: str, formats: tuple[str, ...]) -> str:
    return allowed(value, formats)


def _manifest(file: str | None) -> Manifest:
    """The manifest at `file` (found as paxosctl.discovery says when None);
    refused if another cluster owns its state_dir."""
    manifest = load_manifest(find_manifest(file))
    check_owner(manifest)
    return manifest


def _client(file: str | None) -> "Client":
    from ..client.sync import Client

    file = find_manifest(file)
    manifest = _manifest(file)
    socket_path = paths(manifest.state_dir)["socket"]
    if running_supervisor(manifest.state_dir) is None:
        raise NotRunning(f"no cluster running for {file} (start it with: paxosctl up {file})")
    try:
        return Client(socket_path, cluster_file=file)
    except NotRunning:
        raise NotRunning(f"no cluster running for {file} (start it with: paxosctl up {file})") from None


def _status_reply(client: "Client", wide: bool) -> dict[str, Any]:
    st = client.request("status", wide=wide)
    st.pop("id", None)
    st.pop("ok", None)
    return st


def _checked(call, *args):
    from ..errors import RequestFailed

    try:
        return call(*args)
    except RequestFailed as e:
        if e.error == "bad_request":
            raise UsageError(e.message) from None
        raise


def main() -> None:
    """Console entry point: run the app, map `PaxosctlError` to its exit code."""
    try:
        # With standalone_mode=False, click does not raise a command's
        # `typer.Exit(code)`: it returns the code. Drop it and `status`
        # would exit 0 with agents down.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except PaxosctlError as e:
        _err(f"error: {e}" + (f"\n  hint: {e.hint}" if e.hint else ""))
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        _err("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except (_PipeClosed, BrokenPipeError):
        # `paxosctl decided | head -1`: the reader has what it wanted. Not an
        # error; point stdout at /dev/null so the interpreter's final flush
        # does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except _CLICK_EXCEPTION as e:  # click's usage errors: bad option, missing argument...
        message = e.format_message()  # empty when the help was shown instead (no arguments)
        if message.startswith("No such command"):
            message = _no_such_command(message)
        if message:
            ctx = getattr(e, "ctx", None)
            command = ctx.command_path if ctx is not None else "paxosctl"
            _err(f"error: {message}\n  hint: see {command} --help")
        sys.exit(e.exit_code)


def _no_such_command(message: str) -> str:
    """click's "No such command 'x'. Did you mean 'logs'?" suggests far-fetched
    names; name the command and list them all, suggesting only a near miss."""
    import difflib

    given = message.split("'")[1] if message.count("'") >= 2 else "?"
    commands = sorted(c.name or c.callback.__name__ for c in app.registered_commands)
    near = difflib.get_close_matches(given, commands, n=1, cutoff=0.75)
    return (f"no command {given!r}" + (f" (did you mean {near[0]!r}?)" if near else "")
            + f"; commands: {', '.join(commands)}")


#: click's base exception. Recent typer vendors click (typer._click) and does
#: not install the `click` package, so find the class through typer's own
#: BadParameter instead of `import click` (which fails there).
_CLICK_EXCEPTION: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
