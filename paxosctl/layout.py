"""Where a cluster keeps its files inside its state_dir."""

from __future__ import annotations

from pathlib import Path


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
        "run": state_dir / "run",
        "endpoints": state_dir / "run" / "endpoints.json",
    }
