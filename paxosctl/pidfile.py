"""The supervisor's pid file, trusted only with a matching create time."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psutil

from .layout import paths


def write_pid_file(path: Path) -> None:
    """Record this supervisor's pid and create time (pids are reused)."""
    me = psutil.Process()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": me.pid, "create_time": me.create_time()}))
    os.replace(tmp, path)


def remove_pid_file(path: Path) -> None:
    try:
        data = json.loads(path.read_text())
        if data.get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def running_supervisor(state_dir: Path) -> psutil.Process | None:
    """The live supervisor recorded in state_dir, or None.

    The pid is trusted only if that process's create time matches the one
    recorded: after a crash and a reboot (or enough time) the pid may
    belong to an unrelated process, which must never be signalled.
    """
    path = paths(state_dir)["pid"]
    try:
        data = json.loads(path.read_text())
        process = psutil.Process(int(data["pid"]))
        # A zombie is a dead supervisor its parent has not reaped yet.
        if (abs(process.create_time() - float(data["create_time"])) < 0.01
                and process.status() != psutil.STATUS_ZOMBIE):
            return process
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        pass
    return None
