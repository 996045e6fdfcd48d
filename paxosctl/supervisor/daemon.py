"""`python -m paxosctl.supervisor.daemon MANIFEST`: the detached supervisor behind `up -d`.

`paxosctl up -d` starts this in a new session with stderr a pipe it
reads, then waits on the control socket until the cluster serves.

The daemon first claims the state dir (ownership.claim). If it cannot,
having written nothing there, it says why on stderr as one JSON line,
`{"message": ..., "hint": ..., "exit_code": ...}`, for `up` to report, and
exits with that code. Once it owns the state dir, it logs to
state_dir/logs/supervisor.log, rotated like the agents' logs, and whatever
it or a process it starts prints (a traceback Python prints itself, say)
goes into that log too.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import signal
import sys
import threading
from pathlib import Path

from paxos_agents.runtime.spec import LOG_BACKUPS, LOG_MAX_BYTES

from ..errors import PaxosctlError
from ..manifest import load_manifest
from ..layout import paths
from .ownership import claim as claim_state_dir
from .supervisor import Supervisor


def main(argv: list[str]) -> int:
    os.umask(0o077)  # what the cluster writes is private: files 0600, folders 0700
    try:
        manifest = load_manifest(argv[0])
        claim = claim_state_dir(manifest)
    except PaxosctlError as e:
        _tell_up(e)
        return e.exit_code
    setup_logging(paths(manifest.state_dir)["log"], to_stderr=False)
    _log_output()
    try:
        supervisor = Supervisor(manifest, claim)
    except PaxosctlError as e:  # e.g. an unreadable member registry: one line, no traceback
        logging.getLogger("paxosctl").error("%s", e)
        claim.release()
        return 1
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    logging.getLogger("paxosctl").info("supervisor for %s (log %s)", manifest.path,
                                        paths(manifest.state_dir)["log"])
    supervisor.serve()
    return 0


def setup_logging(log_path: Path, *, to_stderr: bool) -> None:
    """Log to `log_path`, rotated as the agents' logs are; with `to_stderr`
    (a foreground `up`) to stderr too."""
    log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [logging.handlers.RotatingFileHandler(
        log_path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS)]
    if to_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s supervisor %(levelname)s %(message)s")


def _tell_up(error: PaxosctlError) -> None:
    """Tell `up -d`, through the stderr pipe it reads, why this supervisor did not start."""
    line = json.dumps({"message": error.message, "hint": error.hint, "exit_code": error.exit_code})
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        pass  # `up` stopped waiting


def _log_output() -> None:
    """Log, line by line, what this process and those it starts from now on
    print on stdout or stderr: `up` no longer reads it, and the log rotates."""
    # Were the log itself the processes' stderr, they would keep writing to
    # it after a rotation renamed it away, and on after it was deleted.
    logging.raiseExceptions = False  # a failing handler must not print into the pipe it drains
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 1)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    threading.Thread(target=_copy_lines, args=(read_fd,), name="output", daemon=True).start()


def _copy_lines(read_fd: int) -> None:
    log = logging.getLogger("paxosctl.output")
    with open(read_fd, "rb") as lines:
        for line in lines:
            log.warning("%s", line.decode(errors="replace").rstrip())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
