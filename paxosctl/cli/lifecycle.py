"""Start and stop the whole cluster: `up` (foreground, or a daemon with -d) and `down`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..discovery import find_manifest
from ..durations import format_duration
from ..errors import NotHealthy, NotRunning, OutcomeUnknown, PaxosctlError
from ..manifest import Manifest, check_runtime
from ..layout import paths
from ..supervisor.ownership import conflict, runs
from ..supervisor.ownership import claim as claim_state_dir
from ..supervisor.pidfile import live_supervisor, running_supervisor
from .common import FILE_HELP, FileOption, connect, echo, echo_err, owned_manifest


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
    manifest = owned_manifest(file)
    # First: a running cluster's own folder and metrics port are in use by it.
    live = live_supervisor(manifest.state_dir)
    if live is not None:
        if runs(manifest, live):
            echo(f"cluster {manifest.name} is already running (supervisor pid {live.pid})")
            return
        raise conflict(manifest, live)
    for warning in check_runtime(manifest):  # creates nothing
        echo_err(f"warning: {warning}")
    from ..membership.topology import check_endpoints

    check_endpoints(manifest)  # the agents a scale named must fit too: exit 2, nothing started
    if detach:
        _up_detached(manifest, file, wait)
        return
    # Heavy (multiprocessing, runtime): only here.
    from ..supervisor.daemon import setup_logging
    from ..supervisor.supervisor import Supervisor

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
    echo_err(f"cluster {manifest.name}: starting {len(manifest.agents)} agents "
         f"(state in {manifest.state_dir}); Ctrl-C stops it")
    supervisor.serve()


def _up_detached(manifest: Manifest, file: str, wait: float) -> None:
    """Start the daemon (paxosctl.supervisor.daemon), which claims the state dir
    itself, and wait until the cluster serves. Writes nothing there."""
    log_path = paths(manifest.state_dir)["log"]
    # -P: `-m` would put the working folder first on the daemon's path (and
    # its agents', forked from it), so a folder holding another paxosctl (a
    # source checkout) would run that one instead of this installed one.
    daemon = subprocess.Popen(
        [sys.executable, "-P", "-m", "paxosctl.supervisor.daemon", str(manifest.path)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True, close_fds=True,
    )
    from ..client.sync import Client

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
                echo(f"cluster {manifest.name} up: {len(status['agents'])} agents running, "
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
    manifest = owned_manifest(file)
    _stop_cluster(manifest, file)
    if purge:
        _purge(manifest)


def _purge(manifest: Manifest) -> None:
    from ..supervisor.purge import NOT_EMPTY, NOT_MADE, purge as purge_state

    if not manifest.state_dir.exists():
        echo(f"nothing to purge: {manifest.state_dir} does not exist")
        return
    claim = claim_state_dir(manifest, lay_out=False)  # no `up` can start while we delete
    try:
        removed, kept = purge_state(manifest.state_dir, (a.name for a in manifest.agents))
    finally:
        claim.release()
    echo(f"purged cluster {manifest.name}: deleted {len(removed)} entries in {manifest.state_dir}")
    for why, line in ((NOT_MADE, "entries the cluster did not write in"),
                      (NOT_EMPTY, "folders the cluster made, which hold files it did not write, in")):
        names = [os.path.relpath(k.path, manifest.state_dir) for k in kept if k.why == why]
        if names:
            echo_err(f"warning: kept {len(names)} {line} {manifest.state_dir}: "
                 f"{', '.join(names[:5])}" + (" ..." if len(names) > 5 else ""))
    for k in kept:
        if k.why not in (NOT_MADE, NOT_EMPTY):
            echo_err(f"warning: kept {k.path}: {k.why}")


def _stop_cluster(manifest: Manifest, file: str | None) -> None:
    """Stop the cluster `manifest` runs, if it runs; say which happened."""
    process = running_supervisor(manifest.state_dir)
    try:
        client = connect(file) if process is not None else None
    except NotRunning:  # it stopped meanwhile
        client = None
    if client is None:
        echo(f"cluster {manifest.name} is not running")
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
    echo(f"cluster {manifest.name} stopped")


def _exists(process: Any) -> bool:
    """True while `process` (a psutil.Process) runs; False once it exited,
    even if its parent has not reaped it yet."""
    import psutil

    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
