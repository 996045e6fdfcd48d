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

from . import __version__
from .durations import format_duration, parse_duration
from .errors import (Interrupted, NotHealthy, NotRunning, OutcomeUnknown, PaxosctlError,
                     UsageError)
from .manifest import Manifest, check_runtime, load_manifest, warnings
from .layout import paths
from .ownership import check_owner, conflict, runs
from .ownership import claim as claim_state_dir
from .pidfile import live_supervisor, running_supervisor

if TYPE_CHECKING:
    from .client import Client
    from .decidedlog import DecidedCommand

app = typer.Typer(
    name="paxosctl",
    help="Run a Multi-Paxos cluster on this machine: one supervised process per agent.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    # -h as well as --help, on every command (as kubectl and docker have it).
    context_settings={"help_option_names": ["-h", "--help"]},
)

DEFAULT_FILE = "cluster.toml"
FileOption = Annotated[
    str, typer.Option("-f", "--file", help="The cluster manifest.", show_default=True)
]
OutputOption = Annotated[str, typer.Option("-o", "--output", help="text or json.")]


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


def _output(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise UsageError(f"-o/--output: unknown format {value!r}; allowed: {', '.join(allowed)}")
    return value


def _manifest(file: str) -> Manifest:
    """The manifest at `file`; refused if another cluster owns its state_dir."""
    if not Path(file).exists() and file == DEFAULT_FILE:
        raise NotRunning(f"no {DEFAULT_FILE} here",
                         hint="pass the manifest with -f/--file PATH")
    manifest = load_manifest(file)
    check_owner(manifest)
    return manifest


def _client(file: str) -> "Client":
    from .client import Client

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
        metavar="[FILE]", help="The cluster manifest (default: ./cluster.toml).")] = None,
    file: FileOption = DEFAULT_FILE,
    detach: Annotated[bool, typer.Option("-d", "--detach", help="Run in the background.")] = False,
    wait: Annotated[float, typer.Option(help="With -d: seconds to wait for the cluster to serve.")] = 30.0,
) -> None:
    """Start the cluster (foreground; Ctrl-C stops it). With -d, return once it serves.

    On a cluster that already runs this manifest, say so and exit 0.
    """
    file = manifest_file or file
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
    from .daemon import setup_logging
    from .supervisor import Supervisor

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
    from .client import Client

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
def down(file: FileOption = DEFAULT_FILE) -> None:
    """Stop the cluster: SIGTERM every agent, a grace period, then SIGKILL.

    On a cluster that is not running, say so and exit 0.
    """
    manifest = _manifest(file)
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
            client.down()
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
    file: FileOption = DEFAULT_FILE,
    request_id: Annotated[Optional[str], typer.Option(
        help="Idempotency key: proposing again with it never decides it twice "
             "[default: a new one, printed if the outcome is unknown].")] = None,
    issued: Annotated[Optional[int], typer.Option(
        min=-1, help="With --request-id, when retrying: the stamp its first try printed "
                     "(needed with [log] retain).")] = None,
    timeout: Annotated[float, typer.Option(
        help="Seconds to wait for the decision; then exit 124 (it may still be decided).")] = 10.0,
    output: OutputOption = "text",
) -> None:
    """Propose VALUE and wait until it is decided; print its position (SLOT.INDEX).

    The value goes straight to the leader and the answer comes from a
    learner: the supervisor is not involved. Exits 124 when the outcome
    is unknown (no answer in time, the connection lost) and 130 on Ctrl-C
    while waiting: the value may still be decided, and proposing it again
    with the request id printed is safe. Exits 2 if the request id was
    decided with another value.
    """
    output = _output(output, ("text", "json"))
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
    from .client import new_request_id
    from .dataclient import retry_hint

    # Made here, before anything is sent, so that an unknown outcome can name it.
    fresh = request_id is None
    request_id = request_id or new_request_id()
    data = _data_client(manifest, file)
    try:
        future = data.propose_async(payload, request_id=request_id, timeout=timeout,
                                    issued=issued, fresh=fresh)
        from .client import Client

        decision = Client.wait(future, request_id, timeout)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted while waiting: request {request_id} may still be "
                          "decided", hint=retry_hint(request_id, data.stamp(request_id)),
                          request_id=request_id) from None
    finally:
        data.close()
    if output == "json":
        from .dataclient import json_value

        _echo(json.dumps({"slot": decision.slot, "index": decision.index,
                               "position": decision.position,
                               "value": json_value(decision.value),
                               "request_id": decision.request_id}))
    else:
        _echo(f"decided at {decision.position}: {_shown(decision.value)} "
                   f"({decision.seconds * 1000:.1f} ms)")


def _data_client(manifest: Manifest, file: str):
    """The data path of the cluster `manifest` describes (no supervisor needed)."""
    from .dataclient import DataClient
    from .endpoints import read_endpoints

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
def status(file: FileOption = DEFAULT_FILE, output: OutputOption = "table") -> None:
    """Show agents, pids, restarts, the leader and progress. Exit 3 if any agent is not running."""
    output = _output(output, ("table", "wide", "json"))
    with _client(file) as client:
        st = client.request("status", wide=output == "wide")
    st.pop("id", None)
    st.pop("ok", None)
    if output == "json":
        _echo(json.dumps(st))
    else:
        _print_status(st, wide=output == "wide")
    if not all(a["state"] == "running" for a in st["agents"]):
        raise typer.Exit(3)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return format_duration(round(seconds)) if seconds >= 1 else f"{seconds * 1000:.0f}ms"


def _print_status(st: dict[str, Any], *, wide: bool) -> None:
    ballot = st.get("ballot")
    decided = st["decided_up_to"]
    _echo(f"cluster: {st['cluster']}   leader: {st['leader'] or '(none)'}"
               f"{f'   ballot: {ballot[0]}.{ballot[1]}' if ballot else ''}"
               f"   decided up to slot: {decided if decided is not None else '(none)'}")
    if st.get("chaos"):
        _echo("chaos: " + ", ".join(f"{k}={','.join(v) if isinstance(v, list) else v}"
                                        for k, v in st["chaos"].items()))
    header = ["NAME", "ROLE", "STATE", "PID", "RESTARTS", "AGE"]
    if wide:
        header += ["CPU", "RSS", "HEARTBEAT", "NOTE"]
    rows = [header]
    for a in st["agents"]:
        state = a["state"]
        if state == "backoff" and "backoff_s" in a:
            state = f"backoff ({a['backoff_s']:.1f}s)"
        row = [a["name"], a["role"], state, str(a["pid"] or "-"), str(a["restarts"]),
               _age(a["uptime_s"])]
        if wide:
            row += [f"{a['cpu_s']:.2f}s" if a.get("cpu_s") is not None else "-",
                    f"{a['rss_bytes'] / 2**20:.1f}MiB" if a.get("rss_bytes") else "-",
                    _age(a.get("last_heartbeat_s")) + (" ago" if a.get("last_heartbeat_s") is not None else ""),
                    a.get("error", "")]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        _echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    if not wide:
        for a in st["agents"]:
            if a.get("error"):
                _echo(f"{a['name']}: {a['error']}")


# -------------------------------------------------------------------- decided


@app.command()
def decided(
    file: FileOption = DEFAULT_FILE,
    start: Annotated[Optional[int], typer.Option(
        "--from", min=0, max=2**63 - 1,
        help="First slot to show [default: the first slot retained].")] = None,
    limit: Annotated[Optional[int], typer.Option(
        "--limit", min=1, help="Show at most this many entries [default: all].")] = None,
    follow: Annotated[bool, typer.Option(
        "--follow", help="Then keep printing new decisions as they are applied "
                         "(Ctrl-C ends it, exit 130).")] = False,
    output: OutputOption = "text",
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
    output = _output(output, ("text", "json"))
    from .decidedlog import read_log

    manifest = _manifest(file)
    data = _data_client(manifest, file)
    try:
        entries = read_log(data, start, limit=limit, follow=follow)
        if output == "json" and not follow:
            _echo(json.dumps([_decided_json(e) for e in entries]))
            return
        for e in entries:
            _echo(json.dumps(_decided_json(e)) if output == "json" else _decided_text(e))
    finally:
        data.close()


def _decided_json(e: DecidedCommand) -> dict[str, Any]:
    """A `DecidedCommand` as `decided -o json` shows it."""
    from .dataclient import json_value

    return {**e.to_dict(), "value": json_value(e.value)}


def _decided_text(e: DecidedCommand) -> str:
    """A `DecidedCommand` as one tab-separated line (value escaped: `_shown`)."""
    if e.noop:
        return f"{e.position}\t-\t(no-op)"
    return f"{e.position}\t{e.request_id}\t{_shown(e.value)}"


# ------------------------------------------------------------- logs/kill/etc.


@app.command()
def logs(
    agent: Annotated[str, typer.Argument(help="An agent name, or 'supervisor'.")],
    file: FileOption = DEFAULT_FILE,
    follow: Annotated[bool, typer.Option("--follow", "-F", help="Keep printing new lines.")] = False,
    tail: Annotated[int, typer.Option("--tail", "-n", min=0, help="Lines to show.")] = 50,
) -> None:
    """Print an agent's log (from state_dir/logs)."""
    manifest = _manifest(file)
    names = [a.name for a in manifest.agents] + ["supervisor"]
    if agent not in names:
        raise UsageError(f"no agent {agent!r}; agents: {', '.join(names)}")
    path = paths(manifest.state_dir)["logs"] / f"{agent}.log"
    if not path.exists():
        raise PaxosctlError(f"no log yet for {agent} ({path})")
    with open(path, "rb") as f:
        lines = f.read().decode(errors="replace").splitlines()
        for line in lines[len(lines) - tail:] if tail else []:
            _echo(line)
        if not follow:
            return
        try:
            while True:
                chunk = f.read()
                if chunk:
                    sys.stdout.write(chunk.decode(errors="replace"))
                    sys.stdout.flush()
                elif os.path.getsize(path) < f.tell():
                    f = open(path, "rb")  # rotated
                else:
                    time.sleep(0.2)
        except KeyboardInterrupt:
            return


@app.command()
def kill(
    agent: Annotated[str, typer.Argument(help="The agent to signal.")],
    file: FileOption = DEFAULT_FILE,
    signal_name: Annotated[str, typer.Option("--signal", "-s", help="KILL, TERM, STOP, CONT...")] = "KILL",
) -> None:
    """Send a signal to an agent (default KILL); the supervisor restarts it per policy."""
    with _client(file) as client:
        reply = _checked(lambda: client.request("kill", agent=agent, signal=signal_name))
    _echo(f"sent {reply['signal']} to {reply['agent']} (pid {reply['pid']})")


@app.command()
def restart(agent: Annotated[str, typer.Argument(help="The agent to restart.")],
            file: FileOption = DEFAULT_FILE) -> None:
    """Restart an agent now (also one that gave up: fatal)."""
    with _client(file) as client:
        reply = _checked(lambda: client.request("restart", agent=agent))
    _echo(f"restarting {reply['agent']}")


def _checked(call, *args):
    from .client import RequestFailed

    try:
        return call(*args)
    except RequestFailed as e:
        if e.error == "bad_request":
            raise UsageError(e.message) from None
        raise


@app.command()
def chaos(
    file: FileOption = DEFAULT_FILE,
    drop: Annotated[Optional[float], typer.Option(help="Fraction of messages to drop (0..1).")] = None,
    duplicate: Annotated[Optional[float], typer.Option(
        help="Fraction of messages to deliver twice (0..1).")] = None,
    delay: Annotated[Optional[str], typer.Option(
        help='Hold each message back up to this long, e.g. "20ms" ("0s": off).')] = None,
    partition: Annotated[Optional[str], typer.Option(
        help="Comma-separated agents to cut off from the rest (\"\": none).")] = None,
    heal: Annotated[bool, typer.Option("--heal", help="Turn every fault off first.")] = False,
    output: OutputOption = "text",
) -> None:
    """Inject faults into the messages between agents (each agent applies them to what it sends).

    With no option, show what is in force.
    """
    output = _output(output, ("text", "json"))
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
    if output == "json":
        _echo(json.dumps(active))
    elif not active:
        _echo("chaos: off")
    else:
        _echo("chaos: " + ", ".join(f"{k}={','.join(v) if isinstance(v, list) else v}"
                                        for k, v in active.items()))


@app.command()
def soak(
    file: FileOption = DEFAULT_FILE,
    duration: Annotated[str, typer.Option(help='How long to drive load, e.g. "60s".')] = "30s",
    kill_every: Annotated[Optional[str], typer.Option(
        help='SIGKILL an agent this often, e.g. "1s" (the leader every third time).')] = None,
    chaos_spec: Annotated[Optional[str], typer.Option(
        "--chaos", help="Faults meanwhile: drop=0.05,duplicate=0.01,delay=5ms,partition=a+b")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=4096,
                                             help="Proposals in flight.")] = 8,
    seed: Annotated[int, typer.Option(help="Seeds the choice of agents to kill.")] = 0,
) -> None:
    """Drive load and faults against the running cluster, then check nothing was lost.

    Prints `kills: N, proposals acknowledged: M, lost: 0, duplicated: 0,
    linearizable: yes` and exits 1 on any anomaly.
    """
    from .soak import soak as run_soak

    try:
        seconds = parse_duration(duration)
        every = parse_duration(kill_every) if kill_every else None
    except ValueError as e:
        raise UsageError(f"--duration/--kill-every: {e}") from None
    changes = _parse_chaos(chaos_spec) if chaos_spec else {}
    with _client(file) as client:
        result = run_soak(client, duration=seconds, kill_every=every, chaos=changes,
                          concurrency=concurrency, seed=seed, progress=_err)
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
    file: FileOption = DEFAULT_FILE,
    requests: Annotated[Optional[int], typer.Option(min=1, max=1_000_000_000,
                                                    help="Proposals to make.")] = None,
    duration: Annotated[Optional[str], typer.Option(help='Or: propose for this long, e.g. "10s".')] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=65536, help="Proposals in flight.")] = 256,
    value_size: Annotated[int, typer.Option(min=0, help="Bytes per value.")] = 16,
    output: OutputOption = "text",
    warmup: Annotated[Optional[int], typer.Option(
        min=0, max=1_000_000_000,
        help="Unmeasured proposals first [default: 2000, or a fifth of --requests if less].")] = None,
) -> None:
    """Measure decided commands per second, latency and CPU per command of each process."""
    from .bench import bench as run_bench
    from .bench import cpu_table

    output = _output(output, ("text", "json"))
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
    if output == "json":
        _echo(json.dumps(data))
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
def metrics(file: FileOption = DEFAULT_FILE) -> None:
    """Print the current Prometheus scrape of the running cluster."""
    with _client(file) as client:
        reply = client.request("metrics")
    _echo(reply["text"], nl=False)


@app.command()
def validate(manifest_file: Annotated[str, typer.Argument(metavar="FILE")]) -> None:
    """Check a manifest (and this machine) without starting anything."""
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
        if message:
            ctx = getattr(e, "ctx", None)
            command = ctx.command_path if ctx is not None else "paxosctl"
            _err(f"error: {message}\n  hint: see {command} --help")
        sys.exit(e.exit_code)


#: click's base exception. Recent typer vendors click (typer._click) and does
#: not install the `click` package, so find the class through typer's own
#: BadParameter instead of `import click` (which fails there).
_CLICK_EXCEPTION: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
