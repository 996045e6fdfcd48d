"""Is a supervisor running for a state dir, and which: its lock, then its pid file.

    state_dir/supervisor.lock   flock(LOCK_EX) by the live supervisor (see ownership.claim)
    state_dir/supervisor.pid    {"pid", "create_time", "cluster", "manifest", "digest"}

The lock tells whether a supervisor lives: the kernel releases it when
that process ends, however it ends (`kill -9` included). The pid file
tells which process it is and what it runs; it is written right after
the lock is taken and removed right before it is let go, and it is
trusted only with a matching create time (pids are reused).

A probe takes the lock shared, without waiting, and lets go at once; a
supervisor that is claiming the state dir meanwhile waits for it (see
`ownership.CLAIM_WAIT_SECONDS`). The lock file is never unlinked: a
process that opened it before the unlink would lock a file nobody else
can see.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from ..layout import paths

#: How long a probe that finds the lock held waits for the holder's pid file.
PID_FILE_WAIT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class SupervisorRecord:
    """The live supervisor of a state dir, as its pid file describes it.

    `process` is None (and `pid` too) when the lock is held but no valid pid
    file showed up within PID_FILE_WAIT_SECONDS. `cluster`, `manifest` and
    `digest` (see ownership.manifest_digest) are None in a pid file written
    by paxosctl 0.2 or older.
    """

    process: psutil.Process | None
    cluster: str | None = None
    manifest: str | None = None
    digest: str | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


def write_pid_file(path: Path, **details: str) -> None:
    """Record this supervisor's pid, its create time (pids are reused) and `details`."""
    me = psutil.Process()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": me.pid, "create_time": me.create_time(), **details}))
    os.replace(tmp, path)


def remove_pid_file(path: Path) -> None:
    """Remove the pid file if it is this process's; never another supervisor's."""
    try:
        data = json.loads(path.read_text())
        if data.get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def lock_held(state_dir: Path) -> bool | None:
    """True if a live process holds state_dir's supervisor lock, False if
    none does, None if there is no lock file (never claimed, or state_dir
    is no folder). Creates nothing."""
    try:
        fd = os.open(paths(state_dir)["lock"], os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # lets go of the shared lock, if we took it
    return False


def live_supervisor(state_dir: Path) -> SupervisorRecord | None:
    """The supervisor holding state_dir's lock now, or None if none does."""
    held = lock_held(state_dir)
    if held is None:
        # No lock file: a supervisor of paxosctl 0.2 (which took no lock)
        # may still run here, and `down` must find it.
        return read_pid_file(paths(state_dir)["pid"])
    if not held:
        return None
    deadline = time.monotonic() + PID_FILE_WAIT_SECONDS
    while True:
        record = read_pid_file(paths(state_dir)["pid"])
        # A holder that is starting has not written its pid file yet; one
        # that is stopping has removed it: both last milliseconds.
        if record is not None or time.monotonic() >= deadline:
            break
        time.sleep(0.01)
    if not lock_held(state_dir):
        return None
    return record or SupervisorRecord(process=None)


def running_supervisor(state_dir: Path) -> psutil.Process | None:
    """The live supervisor's process for state_dir, or None.

    None also when the lock is held but the holder wrote no pid file: no
    process can be named, so none may be signalled.
    """
    record = live_supervisor(state_dir)
    return record.process if record is not None else None


def read_pid_file(path: Path) -> SupervisorRecord | None:
    """The pid file's record if the process it names runs; None otherwise.

    The pid is trusted only if that process's create time matches the one
    recorded: after a crash and a reboot (or enough time) the pid may
    belong to an unrelated process, which must never be signalled.
    """
    try:
        data = json.loads(path.read_text())
        process = psutil.Process(int(data["pid"]))
        # A zombie is a dead supervisor its parent has not reaped yet.
        if (abs(process.create_time() - float(data["create_time"])) < 0.01
                and process.status() != psutil.STATUS_ZOMBIE):
            return SupervisorRecord(process=process, cluster=_text(data.get("cluster")),
                                    manifest=_text(data.get("manifest")),
                                    digest=_text(data.get("digest")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, psutil.Error):
        pass
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
