"""The app every command registers on, what the commands share, and `main`.

The only place that picks exit codes: data goes to stdout, errors and
warnings to stderr, and every expected failure is a `PaxosctlError`,
turned into `error: ...` and its exit code in `main`. The command
modules import from here and from nowhere else in this package, and only
public names: `echo`/`echo_err`, `owned_manifest`, `connect`,
`status_reply`, `checked_call`, `output_format`, the shared options and
their completers are the package's shared surface.

`main` runs the app through `root_command()`, a `LazyGroup` that converts
only the command being run to click (typer would convert all of them on
every call); `--help` and completion still see every command.
"""

from __future__ import annotations

import copy
import os
import sys
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
import typer.main
from typer.core import TyperGroup
from typer.models import CommandInfo, TyperInfo

from .. import __version__
from ..discovery import find_manifest
from ..output import MACHINE, allowed
from ..errors import NotRunning, PaxosctlError, UsageError
from ..manifest import Manifest, load_manifest
from ..layout import paths, running_agents
from ..supervisor.ownership import check_owner
from ..supervisor.pidfile import running_supervisor

if TYPE_CHECKING:
    from ..client.sync import Client


class LazyGroup(TyperGroup):
    """The root `paxosctl` group: it lists every command and builds only
    the ones looked up.

    typer's own group converts every registered command to click (the
    parameters of each, read from its type hints) before it parses the
    command line: 23 commands for the one that runs, 13-21 ms of a cold
    `paxosctl status` of ~130 ms (BENCHMARKS.md, "CLI cold start"). Here the
    table of `CommandInfo`s stands in for the commands: `list_commands`
    reads its names, in registration order (the order `--help` shows), and
    `get_command` converts a command the first time click asks for it, with
    typer's own `get_command_from_info`, so that it is the same click
    command typer would have built. `paxosctl status` builds `status`;
    `--help` and completing a command's name ask for each and build all.

    A sub-app (`app.add_typer(certs.app, name="certs")`) is in the table as
    its `TyperInfo`, after the commands as typer's eager group places it,
    and is built whole, with typer's `get_group_from_info`, when looked up.

    Built by `root_command()`; a group typer builds itself (`app()`) has an
    empty table and its commands already built, and works as a TyperGroup.
    """

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.table: dict[str, CommandInfo | TyperInfo] = {}
        # How a command's callback reports an unexpected exception: typer's
        # default until root_command() copies the app's setting.
        self.pretty_exceptions_short = True

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return list(self.table) if self.table else super().list_commands(ctx)

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:
        info = self.table.get(cmd_name)
        if isinstance(info, TyperInfo) and cmd_name not in self.commands:
            self.commands[cmd_name] = typer.main.get_group_from_info(
                info, pretty_exceptions_short=self.pretty_exceptions_short,
                rich_markup_mode=self.rich_markup_mode, suggest_commands=self.suggest_commands)
        elif info is not None and cmd_name not in self.commands:
            self.commands[cmd_name] = typer.main.get_command_from_info(
                info, pretty_exceptions_short=self.pretty_exceptions_short,
                rich_markup_mode=self.rich_markup_mode)
        return super().get_command(ctx, cmd_name)


def command_names(typer_app: typer.Typer) -> dict[str, CommandInfo | TyperInfo]:
    """`typer_app`'s commands then its named sub-apps, by the name typer gives
    each (`name=` if given, else the function's name with `-` for `_`), in
    the order typer's eager group lists them."""
    table: dict[str, CommandInfo | TyperInfo] = {
        info.name or typer.main.get_command_name(info.callback.__name__): info
        for info in typer_app.registered_commands if info.callback is not None}
    for group in typer_app.registered_groups:
        name = typer.main.solve_typer_info_defaults(group).name
        if name:
            table[name] = group
    return table


app = typer.Typer(
    name="paxosctl",
    cls=LazyGroup,
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


def complete_agent(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion: the agent names of the manifest the command would use."""
    try:
        manifest = load_manifest(find_manifest(ctx.params.get("file")))
    except Exception:  # completion must never fail loudly
        return []
    return [a.name for a in manifest.agents if a.name.startswith(incomplete)]


def completer(formats: tuple[str, ...]):
    """Shell completion of an option whose values are `formats` (`-o`, a shell's name)."""
    def complete(incomplete: str) -> list[str]:
        return [f for f in formats if f.startswith(incomplete)]
    return complete


FileOption = Annotated[Optional[str], typer.Option(
    "-f", "--file", help=FILE_HELP, show_default=False)]


# What the pods of `render k8s` are made with; `scale`/`replace --engine k8s`
# render an added agent's pod with the same options (give them the same values).
NamespaceOption = Annotated[str, typer.Option(
    "--namespace", "-n", help="The Kubernetes namespace of the cluster's objects.")]
ImageOption = Annotated[str, typer.Option("--image", help="The image built from the Containerfile.")]
IMAGE_DEFAULT = f"paxosctl:{__version__}"
StorageClassOption = Annotated[Optional[str], typer.Option(
    "--storage-class", help="The volumes' StorageClass [default: the cluster's default].",
    show_default=False)]
StorageOption = Annotated[str, typer.Option("--storage", help="Each agent's volume size.")]
ClusterDomainOption = Annotated[str, typer.Option(
    "--cluster-domain", help="The Kubernetes cluster's DNS domain.")]
SecretsOption = Annotated[bool, typer.Option(
    "--secrets", help="Render the agents' Secrets from the certificates folder "
                      "(`paxosctl certs init` / `certs issue`).")]


AgentArgument = Annotated[str, typer.Argument(
    help="The agent's name.", autocompletion=complete_agent)]


TABLES = ("table", "wide", *MACHINE)


TEXT = ("text", *MACHINE)


TableOutput = Annotated[str, typer.Option(
    "-o", "--output", help=f"One of: {', '.join(TABLES)}.", autocompletion=completer(TABLES))]


TextOutput = Annotated[str, typer.Option(
    "-o", "--output", help=f"One of: {', '.join(TEXT)}.", autocompletion=completer(TEXT))]


class _PipeClosed(Exception):
    """Whoever reads our output closed the pipe (`paxosctl decided | head -1`)."""


def echo(message: str = "", *, err: bool = False, nl: bool = True) -> None:
    """`typer.echo`, but a closed pipe ends the command quietly (see `main`).

    Not left to click: it turns a broken pipe into exit 1.
    """
    try:
        typer.echo(message, err=err, nl=nl)
    except BrokenPipeError:
        raise _PipeClosed() from None


def echo_err(message: str) -> None:
    """One line to stderr (errors, warnings, progress), as `echo`."""
    echo(message, err=True)


def _version(value: bool) -> None:
    if value:
        echo(f"paxosctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
) -> None:
    """Run a Multi-Paxos cluster on this machine: one supervised process per agent."""


def output_format(value: str, formats: tuple[str, ...]) -> str:
    """`-o VALUE` if this command offers it; else a `UsageError` listing `formats`."""
    return allowed(value, formats)


def owned_manifest(file: str | None) -> Manifest:
    """The manifest at `file` (found as paxosctl.discovery says when None);
    refused if another cluster owns its state_dir."""
    manifest = load_manifest(find_manifest(file))
    check_owner(manifest)
    return manifest


def connect(file: str | None, manifest: Manifest | None = None) -> "Client":
    """A control-socket client of the running cluster of manifest `file`
    (`manifest`: that file as `owned_manifest` loaded it already).

    `NotRunning` (with the `paxosctl up` to type) when no supervisor runs it;
    refused as `owned_manifest` is when another cluster owns its state_dir.
    """
    from ..client.sync import Client

    file = find_manifest(file)
    if manifest is None:
        manifest = owned_manifest(file)
    socket_path = paths(manifest.state_dir)["socket"]
    if running_supervisor(manifest.state_dir) is None:
        raise NotRunning(f"no cluster running for {file} (start it with: paxosctl up {file})")
    try:
        return Client(socket_path, cluster_file=file)
    except NotRunning:
        raise NotRunning(f"no cluster running for {file} (start it with: paxosctl up {file})") from None


def unsupervised(manifest: Manifest, file: str):
    """(manifest, endpoints) of a cluster whose agents run on their own
    (`paxosctl agent NAME`): no supervisor runs `manifest` (loaded from
    `file`) here, and it places every proposer and learner over TLS, or
    agents in its state dir wrote endpoints.json. None otherwise (`connect`
    then says what to start)."""
    from ..endpoints import from_manifest, read_endpoints

    if running_supervisor(manifest.state_dir) is not None:
        return None
    endpoints = from_manifest(manifest, file)
    if (endpoints is None and paths(manifest.state_dir)["endpoints"].exists()
            and running_agents(manifest.state_dir)):
        # Agents run by `paxosctl agent` in this state dir, over Unix sockets:
        # each wrote endpoints.json. Only while one runs: a supervisor killed
        # with -9 leaves its endpoints.json too, and then no cluster runs.
        endpoints = read_endpoints(paths(manifest.state_dir)["run"], file)
    return None if endpoints is None else (manifest, endpoints)


def status_reply(client: "Client", wide: bool) -> dict[str, Any]:
    """The supervisor's `status` reply without the envelope (`id`, `ok`)."""
    st = client.request("status", wide=wide)
    st.pop("id", None)
    st.pop("ok", None)
    return st


def checked_call(call, *args):
    """`call(*args)`, a control request, with the supervisor's `bad_request`
    refusal raised as a `UsageError` (exit 2), as a bad option would be."""
    from ..errors import RequestFailed

    try:
        return call(*args)
    except RequestFailed as e:
        if e.error == "bad_request":
            raise UsageError(e.message) from None
        raise


def root_command() -> LazyGroup:
    """`app` as click will run it, its commands built on first lookup.

    typer builds the root alone (its callback's `--version`, `-h/--help`,
    the completion options) from a copy of `app` without commands; the
    group is then handed `app`'s table of commands, named as typer names
    them (`command_names`), sub-apps included.
    """
    bare = copy.copy(app)
    bare.registered_commands = []
    bare.registered_groups = []
    group = typer.main.get_command(bare)
    assert isinstance(group, LazyGroup), "app = typer.Typer(cls=LazyGroup, ...)"
    group.pretty_exceptions_short = app.pretty_exceptions_short
    group.table = command_names(app)
    return group


def main() -> None:
    """Console entry point: run the app, map `PaxosctlError` to its exit code."""
    try:
        # With standalone_mode=False, click does not raise a command's
        # `typer.Exit(code)`: it returns the code. Drop it and `status`
        # would exit 0 with agents down.
        code = root_command()(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except PaxosctlError as e:
        echo_err(f"error: {e}" + (f"\n  hint: {e.hint}" if e.hint else ""))
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        echo_err("aborted")
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
            echo_err(f"error: {message}\n  hint: see {command} --help")
        sys.exit(e.exit_code)


def _no_such_command(message: str) -> str:
    """click's "No such command 'x'. Did you mean 'logs'?" suggests far-fetched
    names; name the command and list them all, suggesting only a near miss."""
    import difflib

    given = message.split("'")[1] if message.count("'") >= 2 else "?"
    commands = sorted(command_names(app))
    near = difflib.get_close_matches(given, commands, n=1, cutoff=0.75)
    return (f"no command {given!r}" + (f" (did you mean {near[0]!r}?)" if near else "")
            + f"; commands: {', '.join(commands)}")


#: click's base exception. Recent typer vendors click (typer._click) and does
#: not install the `click` package, so find the class through typer's own
#: BadParameter instead of `import click` (which fails there).
_CLICK_EXCEPTION: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
