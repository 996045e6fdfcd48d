"""The `paxosctl` command line. The only module that prints or picks exit codes.

Data goes to stdout, errors and warnings to stderr. Every expected
failure is a `PaxosctlError`, turned into `error: ...` and its exit code
in one place (`main`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from .. import __version__
from ..discovery import find_manifest
from ..durations import format_duration, parse_duration
from ..output import MACHINE, allowed, document, render
from ..errors import (Interrupted, NotHealthy, NotRunning, OutcomeUnknown, PaxosctlError,
                     UsageError)
from ..manifest import Manifest, check_runtime, load_manifest, warnings
from ..layout import paths
from ..ownership import check_owner, conflict, runs
from ..ownership import claim as claim_state_dir
from ..pidfile import live_supervisor, running_supervisor

if TYPE_CHECKING:
    from ..client import Client
    from ..decidedlog import DecidedCommand

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
    from ..client import Client

    file = find_manifest(file)
    manifest = _manifest(file)
    socket_path = paths(manifest.state_dir)["socket"]
    if running_supervisor(manifest.state_dir) is None:
        raise NotRunning(f"no cluster running for {file} (start it with: paxosctl up {file})")
    try:
        return Client(socket_path, cluster_file=file)
    except NotRunning:
        raise NotRunning(f"no cluster running for {file} (start it with: paxosctl up {file})") from None


# ------------------------------------------------------------------- up / down


@app.command()
def up(
    manifest_file: Annotated[Optional[str], typer.Argument(
        metavar="FILE", show_default=False, help=FILE_HELP)] = None,
    file: FileOption = None,
    detach: Annotated[bool, typer.Option("-d", "--detach", help="Run in the background.")] = False,
    wait: Annotated[float, typer.Option(help="With -d: seconds to wait for the cluster to serve.")] = 30.0,
) -> None:
    """Start the cluster (foreground; Ctrl-C stops it). With -d, return once it serves.

    On a cluster that already runs this manifest, say so and exit 0.
    """
    file = find_manifest(manifest_file if manifest_file is not None else file)
    manifest = _manifest(file)
    # First: a running cluster's own folder and metrics port are in use by it.
    live = live_supervisor(manifest.state_dir)
    if live is not None:
        if runs(manifest, live):
            _echo(f"cluster {manifest.name} is already running (supervisor pid {live.pid})")
            return
        raise conflict(manifest, live)
    for warning in check_runtime(manifest):  # creates nothing
        _err(f"warning: {warning}")
    if detach:
        _up_detached(manifest, file, wait)
        return
    # Heavy (multiprocessing, runtime): only here.
    from ..daemon import setup_logging
    from ..supervisor import Supervisor

    os.umask(0o077)  # what the cluster writes is private: files 0600, folders 0700
    claim = claim_state_dir(manifest)
    try:
        setup_logging(paths(manifest.state_dir)["log"], to_stderr=True)
        supervisor = Supervisor(manifest, claim)
    except BaseException:
        claim.release()
        raise
    signal.signal(signal.SIGINT, supervisor.request_stop)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    _err(f"cluster {manifest.name}: starting {len(manifest.agents)} agents "
         f"(state in {manifest.state_dir}); Ctrl-C stops it")
    supervisor.serve()


def _up_detached(manifest: Manifest, file: str, wait: float) -> None:
    """Start the daemon (paxosctl.daemon), which claims the state dir
    itself, and wait until the cluster serves. Writes nothing there."""
    log_path = paths(manifest.state_dir)["log"]
    daemon = subprocess.Popen(
        [sys.executable, "-m", "paxosctl.daemon", str(manifest.path)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True, close_fds=True,
    )
    from ..client import Client

    deadline = time.monotonic() + wait
    status: dict[str, Any] | None = None
    client: Client | None = None
    try:
        while time.monotonic() < deadline:
            if daemon.poll() is not None:
                raise _daemon_failure(daemon, log_path)
            if client is None:
                owner = live_supervisor(manifest.state_dir)
                if owner is None or owner.pid != daemon.pid:
                    # Ours has not claimed the state dir yet; or another `up`
                    # got it first, and ours will exit and say so.
                    time.sleep(0.05)
                    continue
                try:
                    client = Client(paths(manifest.state_dir)["socket"], cluster_file=file)
                except NotRunning:
                    time.sleep(0.05)
                    continue
            try:
                status = client.request("status")
            except OutcomeUnknown:  # it went away: daemon.poll() above says why
                client.close()
                client = None
                continue
            if status["leader"] and all(a["state"] == "running" for a in status["agents"]):
                _echo(f"cluster {manifest.name} up: {len(status['agents'])} agents running, "
                           f"leader {status['leader']} (supervisor pid {daemon.pid})")
                return
            fatal = [a for a in status["agents"] if a["state"] == "fatal"]
            if fatal:  # given up on: it will not run until an operator acts
                raise NotHealthy(
                    f"cluster {manifest.name} is up but "
                    + "; ".join(f"{a['name']} is fatal" + (f": {a['error']}" if a.get("error") else "")
                                for a in fatal),
                    hint=f"see paxosctl status -f {file}; after fixing it: "
                         f"paxosctl restart -f {file} {fatal[0]['name']}")
            time.sleep(0.05)
    finally:
        if client is not None:
            client.close()
        daemon.stderr.close()
    waiting = ([f"{a['name']} {a['state']}" for a in status["agents"] if a["state"] != "running"]
               if status else ["the control socket"])
    if status and not status["leader"]:
        waiting.append("a leader")
    raise NotHealthy(f"cluster {manifest.name} did not serve within {format_duration(wait)}: "
                     f"waiting for {', '.join(waiting)}",
                     hint=f"it is still starting in the background; see paxosctl status -f {file} "
                          f"and {log_path}")


def _daemon_failure(daemon: subprocess.Popen, log_path: Path) -> PaxosctlError:
    """Why the daemon exited before the cluster served: what it said on
    stderr (a refusal to claim the state dir, as one JSON line), or else
    the last line of its log."""
    said = [line for line in daemon.stderr.read().decode(errors="replace").splitlines()
            if line.strip()]
    if said:
        try:
            report = json.loads(said[-1])
            error = PaxosctlError(report["message"], hint=report.get("hint"))
            error.exit_code = report["exit_code"] if report["exit_code"] in (1, 2, 3) else 1
            return error
        except (ValueError, KeyError, TypeError):
            pass
    last = said[-1] if said else _last_error(log_path)
    return PaxosctlError(f"the supervisor exited with code {daemon.returncode} "
                         f"before the cluster served: {last}")


def _last_error(log_path: Path) -> str:
    try:
        lines = [l for l in log_path.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(empty log)"


@app.command()
def down(
    file: FileOption = None,
    purge: Annotated[bool, typer.Option(
        "--purge", help="Also delete the cluster's state dir: its decided log, "
                        "votes and logs. Cannot be undone.")] = False,
) -> None:
    """Stop the cluster: SIGTERM every agent, a grace period, then SIGKILL.

    On a cluster that is not running, say so and exit 0. With --purge,
    then delete what the cluster wrote in its state_dir (the only way to
    wipe it: agents that ran once refuse to start with their state gone).
    """
    manifest = _manifest(file)
    _stop_cluster(manifest, file)
    if purge:
        _purge(manifest)


def _purge(manifest: Manifest) -> None:
    from ..purge import purge as purge_state

    if not manifest.state_dir.exists():
        _echo(f"nothing to purge: {manifest.state_dir} does not exist")
        return
    claim = claim_state_dir(manifest)  # no `up` can start while we delete
    try:
        removed, left = purge_state(manifest.state_dir)
    finally:
        claim.release()
    _echo(f"purged cluster {manifest.name}: deleted {len(removed)} entries in {manifest.state_dir}")
    if left:
        _err(f"warning: kept {len(left)} entries the cluster did not write in "
             f"{manifest.state_dir}: {', '.join(p.name for p in left[:5])}"
             + (" ..." if len(left) > 5 else ""))


def _stop_cluster(manifest: Manifest, file: str | None) -> None:
    """Stop the cluster `manifest` runs, if it runs; say which happened."""
    process = running_supervisor(manifest.state_dir)
    try:
        client = _client(file) if process is not None else None
    except NotRunning:  # it stopped meanwhile
        client = None
    if client is None:
        _echo(f"cluster {manifest.name} is not running")
        return
    with client:
        try:
            client.request("down")
        except OutcomeUnknown:  # it closed before it answered: stopping, or died; see below
            pass
    if process is not None:
        # Not process.wait(): the detached supervisor is not our child, and
        # psutil then waits until its pid is gone, i.e. until init reaps the
        # zombie, which may take long (or forever under a PID 1 that does not
        # reap). A zombie has exited.
        deadline = time.monotonic() + 30
        while _exists(process):
            if time.monotonic() >= deadline:
                raise PaxosctlError(f"supervisor pid {process.pid} did not exit within 30s")
            time.sleep(0.02)
    _echo(f"cluster {manifest.name} stopped")


def _exists(process: Any) -> bool:
    """True while `process` (a psutil.Process) runs; False once it exited,
    even if its parent has not reaped it yet."""
    import psutil

    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# -------------------------------------------------------------------- propose


@app.command()
def propose(
    value: Annotated[str, typer.Argument(help='The value; "-" reads standard input (bytes, as they are).')],
    file: FileOption = None,
    request_id: Annotated[Optional[str], typer.Option(
        help="Idempotency key: proposing again with it never decides it twice "
             "[default: a new one, printed if the outcome is unknown].")] = None,
    issued: Annotated[Optional[int], typer.Option(
        min=-1, help="With --request-id, when retrying: the stamp its first try printed "
                     "(needed with [log] retain).")] = None,
    timeout: Annotated[float, typer.Option(
        help="Seconds to wait for the decision; then exit 124 (it may still be decided).")] = 10.0,
    output: TextOutput = "text",
) -> None:
    """Propose VALUE and wait until it is decided; print its position (SLOT.INDEX).

    The value goes straight to the leader and the answer comes from a
    learner: the supervisor is not involved. Exits 124 when the outcome
    is unknown (no answer in time, the connection lost) and 130 on Ctrl-C
    while waiting: the value may still be decided, and proposing it again
    with the request id printed is safe. Exits 2 if the request id was
    decided with another value.
    """
    output = _output(output, TEXT)
    if value == "-":
        payload = sys.stdin.buffer.read()
    else:
        # Bytes that are not UTF-8 reach us as lone surrogates (PEP 383): give them back.
        payload = os.fsencode(value)
    if request_id is not None:
        _text(request_id, "--request-id")
        if not 0 < len(request_id) <= 256 or not request_id.isprintable():
            raise UsageError(f"--request-id: expected 1 to 256 printable characters, "
                             f"got {ascii(request_id)[:60]}")
    elif issued is not None:
        raise UsageError("--issued: only with --request-id (the stamp of that request's first try)")
    if not 0.001 <= timeout <= 3600:
        raise UsageError(f"--timeout: expected seconds from 0.001 to 3600, got {timeout}")
    manifest = _manifest(file)
    limit = manifest.paxos.max_value_bytes
    if len(payload) > limit:
        raise UsageError(f"value is {len(payload)} bytes; the limit is {limit} (paxos.max_value_bytes)")
    from ..client import new_request_id
    from ..dataclient import retry_hint

    # Made here, before anything is sent, so that an unknown outcome can name it.
    fresh = request_id is None
    request_id = request_id or new_request_id()
    data = _data_client(manifest, file)
    try:
        future = data.propose_async(payload, request_id=request_id, timeout=timeout,
                                    issued=issued, fresh=fresh)
        from ..client import Client

        decision = Client.wait(future, request_id, timeout)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted while waiting: request {request_id} may still be "
                          "decided", hint=retry_hint(request_id, data.stamp(request_id)),
                          request_id=request_id) from None
    finally:
        data.close()
    if output in MACHINE:
        from ..dataclient import json_value

        _echo(render({"slot": decision.slot, "index": decision.index,
                      "position": decision.position,
                      "value": json_value(decision.value),
                      "request_id": decision.request_id}, output))
    else:
        _echo(f"decided at {decision.position}: {_shown(decision.value)} "
                   f"({decision.seconds * 1000:.1f} ms)")


def _data_client(manifest: Manifest, file: str | None):
    """The data path of the cluster `manifest` describes (no supervisor needed)."""
    from ..dataclient import DataClient
    from ..endpoints import read_endpoints

    file = find_manifest(file)
    return DataClient(read_endpoints(paths(manifest.state_dir)["run"], file), cluster_file=file)


def _shown(value: bytes | None) -> str:
    """A payload on one line: UTF-8 text with tab, newline, backslash and
    other control characters escaped (\\t, \\n, \\\\, \\xHH); bytes that
    are not UTF-8 as \\xHH. `decided` output stays one entry per line."""
    if value is None:
        return "(no-op)"
    text = value.decode("utf-8", "surrogateescape")
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    return "".join(out)


def _text(value: str | bytes, what: str) -> str:
    """`value` as text, or a UsageError naming `what` if it is not UTF-8.

    Bytes come from standard input; a str from the command line, where
    bytes that are not UTF-8 arrive as lone surrogates (PEP 383).
    """
    try:
        if isinstance(value, bytes):
            return value.decode("utf-8")
        value.encode("utf-8")
        return value
    except UnicodeError as e:
        bad = value[e.start:e.start + 1]
        shown = f"byte 0x{bad[0]:02x}" if isinstance(bad, bytes) else ascii(bad)
        raise UsageError(f"{what}: not UTF-8 text ({shown} at position {e.start})") from None


# --------------------------------------------------------------------- status


@app.command()
@app.command("ps", help="The same as status (as docker compose ps).")
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

    output = _output(output, TABLES)
    wide = output != "table"  # the machine formats carry every field
    file = find_manifest(file)
    with _client(file) as client:
        if not watch:
            st = _status_reply(client, wide)
            _warn_if_drifted(st, file)
            _show_status(st, output)
            if down_agents(st):
                raise typer.Exit(3)
            return
        last = None
        clear = sys.stdout.isatty() and output in ("table", "wide")
        try:
            while True:
                st = _status_reply(client, wide)
                key = status_key(st)
                if key != last:
                    if clear:
                        _echo("\x1b[H\x1b[2J", nl=False)  # redraw in place, as watch(1)
                        _echo(f"paxosctl status -w   {time.strftime('%H:%M:%S')}   (Ctrl-C ends)")
                    elif output in ("table", "wide") and last is not None:
                        _echo("")  # not a terminal: one table after another
                    _show_status(st, output, watching=True)
                    last = key
                time.sleep(0.5)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None  # Ctrl-C ends a watch: 130, as for any Ctrl-C


def _status_reply(client: "Client", wide: bool) -> dict[str, Any]:
    st = client.request("status", wide=wide)
    st.pop("id", None)
    st.pop("ok", None)
    return st


def _show_status(st: dict[str, Any], output: str, *, watching: bool = False) -> None:
    """Print one status: a table, or a versioned document; while watching,
    JSON is one document per line and YAML a stream of documents."""
    from ..views import status_lines

    if output in MACHINE:
        body = render(document("Status", st), output)
        _echo(("---\n" if watching and output == "yaml" else "") + body)
        return
    for line in status_lines(st, wide=output == "wide"):
        _echo(line)


# -------------------------------------------------------------------- decided


@app.command()
def decided(
    file: FileOption = None,
    start: Annotated[Optional[int], typer.Option(
        "--from", min=0, max=2**63 - 1,
        help="First slot to show [default: the first slot retained].")] = None,
    limit: Annotated[Optional[int], typer.Option(
        "--limit", min=1, help="Show at most this many entries [default: all].")] = None,
    follow: Annotated[bool, typer.Option(
        "--follow", help="Then keep printing new decisions as they are applied "
                         "(Ctrl-C ends it, exit 130).")] = False,
    output: TextOutput = "text",
) -> None:
    """Print the decided log, read from a learner: position (SLOT.INDEX),
    request id, value; no-op slots marked.

    Text output: one entry per line, tab-separated, the value with tabs,
    newlines, backslashes and bytes that are not UTF-8 escaped (\\t \\n
    \\\\ \\xHH). JSON output: a value that is UTF-8 is a string, any other
    is {"base64": "..."}; one array, or with --follow one object per line
    as each decision arrives. With `[log] retain`, learners keep only the
    latest slots: a --from below them is an error naming the first slot
    retained.
    """
    output = _output(output, TEXT)
    from ..decidedlog import read_log

    manifest = _manifest(file)
    data = _data_client(manifest, file)
    try:
        entries = read_log(data, start, limit=limit, follow=follow)
        if output in MACHINE and not follow:
            _echo(render([_decided_json(e) for e in entries], output))
            return
        for e in entries:
            if output == "text":
                _echo(_decided_text(e))
            else:  # one JSON object per line, or a stream of YAML documents
                _echo(("---\n" if output == "yaml" else "") + render(_decided_json(e), output))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None  # Ctrl-C ends a follow: 130, as for any Ctrl-C
    finally:
        data.close()


def _decided_json(e: DecidedCommand) -> dict[str, Any]:
    """A `DecidedCommand` as `decided -o json` shows it."""
    from ..dataclient import json_value

    return {**e.to_dict(), "value": json_value(e.value)}


def _decided_text(e: DecidedCommand) -> str:
    """A `DecidedCommand` as one tab-separated line (value escaped: `_shown`)."""
    if e.noop:
        return f"{e.position}\t-\t(no-op)"
    return f"{e.position}\t{e.request_id}\t{_shown(e.value)}"


# ------------------------------------------------------------- logs/kill/etc.


@app.command()
def logs(
    agents: Annotated[Optional[list[str]], typer.Argument(
        metavar="AGENT", help="Agents (or 'supervisor') [default: all, interleaved].",
        autocompletion=_complete_agent, show_default=False)] = None,
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

    manifest = _manifest(file)
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
        _echo(f"{name.ljust(width)} | {text}" if prefixed else text)

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


@app.command()
def kill(
    agent: AgentArgument,
    file: FileOption = None,
    signal_name: Annotated[str, typer.Option("--signal", "-s", help="KILL, TERM, STOP, CONT...")] = "KILL",
) -> None:
    """Send a signal to an agent (default KILL); the supervisor restarts it per policy."""
    with _client(file) as client:
        reply = _checked(lambda: client.request("kill", agent=agent, signal=signal_name))
    _echo(f"sent {reply['signal']} to {reply['agent']} (pid {reply['pid']})")


@app.command()
def restart(agent: AgentArgument, file: FileOption = None) -> None:
    """Restart an agent now (also one that gave up, fatal, or was stopped)."""
    with _client(file) as client:
        reply = _checked(lambda: client.request("restart", agent=agent))
    _echo(f"restarting {reply['agent']}")


@app.command()
def stop(
    agent: AgentArgument,
    file: FileOption = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for it to end.")] = 15.0,
) -> None:
    """Stop one agent until `paxosctl start`, whatever the restart policy.

    SIGTERM, then SIGKILL after 5s. Status does not count it as down.
    """
    with _client(file) as client:
        reply = _checked(lambda: client.request("stop", agent=agent))
        if not reply["changed"]:
            _echo(f"{agent} is already stopped")
            return
        row = _wait_agent(client, agent, lambda a: a["pid"] is None, wait)
    if row is None:
        raise NotHealthy(f"{agent} did not end within {format_duration(wait)}; it stays "
                         f"stopped once it does", hint=f"see paxosctl describe {agent}")
    _echo(f"stopped {agent}")


@app.command()
def start(
    agent: AgentArgument,
    file: FileOption = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait until it runs.")] = 30.0,
) -> None:
    """Start an agent that is stopped (by `stop` or its restart policy) or fatal."""
    with _client(file) as client:
        reply = _checked(lambda: client.request("start", agent=agent))
        if not reply["changed"]:
            _echo(f"{agent} is already {reply['state']}")
            return
        row = _wait_agent(client, agent, lambda a: a["state"] in ("running", "fatal"), wait)
    if row is None or row["state"] != "running":
        note = f": {row['note']}" if row and row.get("note") else ""
        raise NotHealthy(f"{agent} is not running{note}",
                         hint=f"see paxosctl describe {agent} and paxosctl logs {agent}")
    _echo(f"started {agent} (pid {row['pid']})")


def _wait_agent(client: "Client", name: str, done, seconds: float) -> dict[str, Any] | None:
    """Poll status until `done(row)` holds for agent `name`; its row, or None at the deadline."""
    deadline = time.monotonic() + seconds
    while True:
        row = next(a for a in _status_reply(client, False)["agents"] if a["name"] == name)
        if done(row):
            return row
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


@app.command()
def describe(agent: AgentArgument, file: FileOption = None,
             output: TextOutput = "text") -> None:
    """Everything the supervisor knows of one agent.

    State, pid, incarnation, last exit, restarts by reason, backoff,
    last heartbeat, files, and its recent events.
    """
    from ..views import describe_lines

    output = _output(output, TEXT)
    with _client(file) as client:
        reply = _checked(lambda: client.request("describe", agent=agent))
    if output in MACHINE:
        _echo(render(document("Agent", reply["agent"]), output))
        return
    for line in describe_lines(reply["agent"]):
        _echo(line)


@app.command()
def events(
    agent: Annotated[Optional[str], typer.Argument(
        help="Only this agent's events.", autocompletion=_complete_agent,
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

    output = _output(output, TABLES)
    fields = {"agent": agent} if agent else {}
    with _client(file) as client:
        reply = _checked(lambda: client.request("events", after=0, **fields))
        if output in MACHINE and not watch:
            _echo(render(document("EventList", {"events": reply["events"]}), output))
            return
        header = True
        try:
            while True:
                batch = reply["events"]
                if output in MACHINE:
                    for e in batch:  # one document per event, as kubectl get -w
                        doc = render(document("Event", e), output)
                        _echo(doc if output == "json" else "---\n" + doc)
                elif batch or (header and not watch):
                    for line in events_lines(batch, header=header):
                        _echo(line)
                    header = False
                if not watch:
                    return
                time.sleep(0.3)
                reply = client.request("events", after=reply["last"], **fields)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None  # Ctrl-C ends a watch: 130, as for any Ctrl-C


@app.command()
def version(file: FileOption = None, output: TextOutput = "text") -> None:
    """The client's version, and the running supervisor's if a cluster runs."""
    output = _output(output, TEXT)
    server: dict[str, Any] | None = None
    try:
        manifest = _manifest(file)
        if running_supervisor(manifest.state_dir) is not None:
            with _client(find_manifest(file)) as client:
                ping = client.request("ping")
            server = {"version": ping.get("version"), "pid": ping.get("pid"),
                      "cluster": ping.get("cluster")}
    except PaxosctlError:
        server = None  # no manifest, or no cluster: the client's version alone
    info = {"client": {"version": __version__, "python": sys.version.split()[0]},
            "supervisor": server}
    if output in MACHINE:
        _echo(render(document("Version", info), output))
        return
    _echo(f"client:     paxosctl {__version__} (Python {info['client']['python']})")
    if server is None:
        _echo("supervisor: (no cluster running here)")
    else:
        _echo(f"supervisor: paxosctl {server['version']} (pid {server['pid']}, "
              f"cluster {server['cluster']})")


@app.command()
def completion(shell: Annotated[str, typer.Argument(
        help="bash, zsh or fish.", autocompletion=_completer(("bash", "zsh", "fish")))]) -> None:
    """Print the shell completion script: source <(paxosctl completion bash).

    It completes commands, options, agent names and -o values.
    """
    from typer._completion_shared import get_completion_script  # typer pinned in pyproject

    if shell not in ("bash", "zsh", "fish"):
        raise UsageError(f"completion: unknown shell {shell!r}; allowed: bash, zsh, fish")
    _echo(get_completion_script(prog_name="paxosctl", complete_var="_PAXOSCTL_COMPLETE",
                                shell=shell))


def _checked(call, *args):
    from ..client import RequestFailed

    try:
        return call(*args)
    except RequestFailed as e:
        if e.error == "bad_request":
            raise UsageError(e.message) from None
        raise


@app.command()
def chaos(
    file: FileOption = None,
    drop: Annotated[Optional[float], typer.Option(help="Fraction of messages to drop (0..1).")] = None,
    duplicate: Annotated[Optional[float], typer.Option(
        help="Fraction of messages to deliver twice (0..1).")] = None,
    delay: Annotated[Optional[str], typer.Option(
        help='Hold each message back up to this long, e.g. "20ms" ("0s": off).')] = None,
    partition: Annotated[Optional[str], typer.Option(
        help="Comma-separated agents to cut off from the rest (\"\": none).")] = None,
    heal: Annotated[bool, typer.Option("--heal", help="Turn every fault off first.")] = False,
    output: TextOutput = "text",
) -> None:
    """Inject faults into the messages between agents (each agent applies them to what it sends).

    With no option, show what is in force.
    """
    output = _output(output, TEXT)
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
    with _client(file) as client:
        reply = _checked(lambda: client.request("chaos", **changes))
    active = reply["chaos"]
    if output in MACHINE:
        _echo(render(active, output))
    elif not active:
        _echo("chaos: off")
    else:
        _echo("chaos: " + ", ".join(f"{k}={','.join(v) if isinstance(v, list) else v}"
                                        for k, v in active.items()))


@app.command()
def soak(
    file: FileOption = None,
    duration: Annotated[str, typer.Option(help='How long to drive load, e.g. "60s".')] = "30s",
    kill_every: Annotated[Optional[str], typer.Option(
        help='SIGKILL an agent this often, e.g. "1s" (the leader every third time).')] = None,
    chaos_spec: Annotated[Optional[str], typer.Option(
        "--chaos", help="Faults meanwhile: drop=0.05,duplicate=0.01,delay=5ms,partition=a+b")] = None,
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
    from ..soak import soak as run_soak

    try:
        seconds = parse_duration(duration)
        every = parse_duration(kill_every) if kill_every else None
        reconfig = parse_duration(reconfig_every) if reconfig_every else None
    except ValueError as e:
        raise UsageError(f"--duration/--kill-every/--reconfig-every: {e}") from None
    changes = _parse_chaos(chaos_spec) if chaos_spec else {}
    with _client(file) as client:
        result = run_soak(client, duration=seconds, kill_every=every, chaos=changes,
                          concurrency=concurrency, seed=seed, reconfig_every=reconfig,
                          progress=_err)
    for problem in result.problems[:50]:
        _err(f"anomaly: {problem}")
    _echo(result.summary())
    if not result.ok:
        raise typer.Exit(1)


def _parse_chaos(spec: str) -> dict[str, Any]:
    """`drop=0.05,duplicate=0.01,delay=5ms,partition=a+b` as a chaos request."""
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
            elif key == "partition":
                changes[key] = [n for n in value.split("+") if n]
            else:
                raise ValueError("keys: drop, duplicate, delay, partition")
        except ValueError as e:
            raise UsageError(f"--chaos: bad {part!r}: {e}") from None
    return changes


@app.command()
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
) -> None:
    """Measure decided commands per second, latency and CPU per command of each process."""
    from ..bench import bench as run_bench
    from ..bench import cpu_table

    output = _output(output, TEXT)
    seconds = None
    if duration is not None:
        try:
            seconds = parse_duration(duration)
        except ValueError as e:
            raise UsageError(f"--duration: {e}") from None
    if requests is None and seconds is None:
        requests = 10_000
    manifest = _manifest(file)
    if value_size > manifest.paxos.max_value_bytes:
        raise UsageError(f"--value-size: {value_size} is over paxos.max_value_bytes "
                         f"({manifest.paxos.max_value_bytes})")
    with _client(file) as client:
        if requests is not None and output == "text" and sys.stderr.isatty():
            with typer.progressbar(length=requests, label="proposing", file=sys.stderr) as bar:
                result = run_bench(client, requests=requests, duration=seconds,
                                   concurrency=concurrency, value_size=value_size,
                                   warmup=warmup, state_dir=manifest.state_dir,
                                   progress=bar.update)
        else:
            result = run_bench(client, requests=requests, duration=seconds,
                               concurrency=concurrency, value_size=value_size,
                               warmup=warmup, state_dir=manifest.state_dir)
    data = result.as_dict()
    if output in MACHINE:
        _echo(render(data, output))
    else:
        lat = data["latency_ms"]
        _echo(f"{data['requests']} proposals ({data['errors']} failed), concurrency "
                   f"{concurrency}, {value_size}-byte values, in {data['seconds']:.2f}s")
        _echo(f"throughput: {data['throughput_per_s']:.0f} decided commands/s")
        _echo(f"latency: p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, "
                   f"max {lat['max']:.2f} ms")
        _echo(f"queue limit here: {data['queue_limit_per_s']:.0f} msgs/s one way; "
                   f"ratio {data['ratio_to_limit']:.3f}")
        for line in cpu_table(data):
            _echo(line)
    if result.errors:
        raise typer.Exit(1)


@app.command()
def metrics(file: FileOption = None) -> None:
    """Print the current Prometheus scrape of the running cluster."""
    with _client(file) as client:
        reply = client.request("metrics")
    _echo(reply["text"], nl=False)


@app.command()
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
        _err(f"warning: {warning}")
    roles = {r: len(getattr(manifest, r)) for r in ("proposers", "acceptors", "learners")}
    _echo(f"{manifest_file}: valid: cluster {manifest.name}, {len(manifest.agents)} agents "
               f"({', '.join(f'{n} {r}' for r, n in roles.items())})")


@app.command()
def apply(
    file: FileOption = None,
    timeout: Annotated[float, typer.Option(
        min=1, max=3600, help="Seconds to wait for the changes to be in force.")] = 60.0,
) -> None:
    """Change the running cluster to match FILE, touching only what changed (as SIGHUP does).

    Prints one line per change, then waits until it is in force: new agents
    running, removed ones stopped, agents restarted one at a time for
    settings they read at start. A refused change (the acceptors, an
    agent's role, log.retain, the cluster's name or state_dir) changes
    nothing and exits 2; no difference exits 0.
    """
    from ..client import RequestFailed

    started = time.monotonic()
    file = find_manifest(file)
    try:
        client = _client(file)
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
                _err(f"refused: {line}")
            for line in e.reply.get("changes", []):
                _echo(line)
            if e.error == "bad_request":
                raise UsageError(e.message.removeprefix("bad apply request: ")) from None
            raise
    if not reply["changes"]:
        _echo(f"no change: cluster {manifest.name} already runs {file}")
        return
    for line in reply["changes"]:
        _echo(line)
    restarted = f"; restarted {', '.join(reply['restarted'])}" if reply["restarted"] else ""
    _echo(f"applied {file}: in force after {time.monotonic() - started:.1f}s{restarted}")


@app.command()
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


@app.command()
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
    from ..client import RequestFailed

    started = time.monotonic()
    with _client(file) as client:
        if not no_wait:
            _echo(f"{doing}: waiting until the change is in force (at most {format_duration(timeout)})")
        try:
            reply = client.request(op, timeout=timeout + 10, wait=0 if no_wait else timeout,
                                   **fields)
        except RequestFailed as e:
            if e.error == "bad_request":
                raise UsageError(e.message.removeprefix(f"bad {op} request: ")) from None
            raise
    if reply.get("unchanged"):
        _echo(f"no change: {reply['why'].removeprefix('scale ')}")
        return
    for line in reply["changes"]:
        _echo(line)
    if no_wait:
        _echo(f"{reply['why']}: started; see paxosctl status")
    else:
        epoch = f" (configuration epoch {reply['epoch']})" if reply.get("epoch") else ""
        _echo(f"{reply['why']}: in force after {time.monotonic() - started:.1f}s{epoch}")


def _warn_if_drifted(st: dict[str, Any], file: str) -> None:
    """`status`: say so when the running cluster is not what FILE describes."""
    from ..reconcile import drifted

    if drifted(st, file):
        _err(f"warning: the running cluster differs from {file} (run paxosctl apply)")


# ----------------------------------------------------------------------- main


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
