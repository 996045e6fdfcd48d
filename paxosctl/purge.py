"""`paxosctl down --purge`: delete a stopped cluster's state, and only its state.

The state dir may be a folder the operator also uses for other things
(a manifest's `state_dir = "."` is legal), so purge removes only what a
cluster writes there (paxosctl.layout.paths: the control socket, lock,
pid file, identity, member registry, logs/, state/, run/), then the
folder itself if nothing else is left in it. It is the only way to wipe
a cluster: agents that ran once refuse to start with their state gone.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .layout import paths


def purge(state_dir: Path) -> tuple[list[Path], list[Path]]:
    """Delete the cluster's files under `state_dir`. Returns what was
    removed and what was left (files the cluster did not write)."""
    removed: list[Path] = []
    for path in paths(state_dir).values():
        if path.parent != state_dir:
            continue  # inside logs/ or run/: goes with its folder
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(path)
    left = sorted(state_dir.iterdir()) if state_dir.is_dir() else []
    if state_dir.is_dir() and not left:
        state_dir.rmdir()
        removed.append(state_dir)
    return removed, left
