"""Where a cluster keeps its files inside its state_dir, and which names are its.

The state dir may be a folder the operator also uses (`state_dir = "."`
is legal), so "the cluster's files" is never a whole folder: it is the
supervisor's files (`SUPERVISOR_FILES`) and each agent's files
(`agent_files`), each with the companions SQLite, log rotation and atomic
writes leave beside it (`COMPANION`). paxosctl.supervisor.footprint records which
folders and agents a cluster made; `down --purge` removes exactly these.
"""

from __future__ import annotations

import os
import re
from pathlib import Path


#: The longest path a Unix socket can bind to on Linux (sun_path, less the NUL):
#: the control socket's and each agent's in run/ (the manifest refuses a longer state_dir).
MAX_SOCKET_PATH = 107


def paths(state_dir: Path) -> dict[str, Path]:
    """The control socket, agent endpoints (run/), lock, pid file, identity, logs and SQLite state of one cluster."""
    return {
        "socket": state_dir / "control.sock",
        "lock": state_dir / "supervisor.lock",
        "pid": state_dir / "supervisor.pid",
        "identity": state_dir / "cluster.json",
        "logs": state_dir / "logs",
        "log": state_dir / "logs" / "supervisor.log",
        "state": state_dir / "state",
        "members": state_dir / "members.json",
        "topology": state_dir / "topology.json",
        "created": state_dir / "created.json",
        "run": state_dir / "run",
        "endpoints": state_dir / "run" / "endpoints.json",
    }


#: The folders a cluster keeps its files in, relative to the state dir.
FOLDERS = ("logs", "state", "run")

#: The supervisor's own files, relative to the state dir. They are the
#: cluster's by name: the supervisor writes these names over whatever is
#: there, so no operator file under them survives `up` anyway.
#: (pidfile writes supervisor.pid through "supervisor.tmp".)
SUPERVISOR_FILES = ("control.sock", "supervisor.lock", "supervisor.pid", "supervisor.tmp",
                    "cluster.json", "members.json", "topology.json", "created.json",
                    "logs/supervisor.log", "run/endpoints.json")

#: What may follow a cluster file's name in a file the cluster made beside it:
#: SQLite's -wal/-shm/-journal, a store being created (storage/opening.py's
#: ".creating", with its own journals), an atomic write's ".tmp" (or
#: ".<pid>.tmp" where several processes write one file: endpoints.json),
#: and a rotated log's ".1", ".2", ...
COMPANION = re.compile(r"(-wal|-shm|-journal|\.creating(-wal|-shm|-journal)?|(\.\d+)?\.tmp|\.\d+)?")


def agent_files(name: str) -> tuple[str, ...]:
    """Agent `name`'s files, relative to the state dir: its store, its log and
    its endpoint (paxosctl.supervisor.fleet names them so), and the lock a
    standalone agent holds and the address of its probes it publishes
    (paxosctl.standalone.program)."""
    return (f"state/{name}.db", f"logs/{name}.log", f"run/{name}.sock", f"run/{name}.lock",
            f"run/{name}.http")


def is_cluster_file(relative: str, bases: frozenset[str]) -> bool:
    """True if `relative` (a path relative to the state dir) is one of
    `bases` or a companion of one (see COMPANION)."""
    for base in bases:
        if relative.startswith(base) and COMPANION.fullmatch(relative[len(base):]):
            return True
    return False


def running_agents(state_dir: Path) -> list[str]:
    """The agents `paxosctl agent NAME` runs in `state_dir` now: each holds
    `run/NAME.lock` (flock) for its life, so a lock we cannot share is held
    by a live one; a lock file left by one that ended is free."""
    import fcntl

    try:
        locks = sorted(paths(state_dir)["run"].glob("*.lock"))
    except OSError:
        return []
    held = []
    for lock in locks:
        try:
            fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            held.append(lock.stem)
        finally:
            os.close(fd)
    return held
