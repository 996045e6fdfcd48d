"""`paxosctl down --purge`: delete a stopped cluster's state, and only its state.

The state dir may be a folder the operator also uses for other things
(a manifest's `state_dir = "."` is legal, and the project may have its
own logs/, state/ and run/), so purge removes only what the cluster made
(paxosctl.supervisor.footprint): its files one by one, wherever they are, then each
folder it made once that folder is empty. Everything else stays, and is
reported with the reason. A state dir with no record (paxosctl 0.4 and
older) is purged from what is there (`Footprint.derived`), with the same
rule. It is the only way to wipe a cluster: agents that ran once refuse
to start with their state gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .footprint import Footprint, names_in
from ..layout import FOLDERS, is_cluster_file, paths

#: Why purge kept something.
NOT_MADE = "the cluster did not make it"
NOT_EMPTY = "the cluster made it, but it holds files the cluster did not make"


@dataclass(frozen=True, slots=True)
class Kept:
    """Something purge left in place, and why (NOT_MADE, NOT_EMPTY, or
    that deleting it failed)."""

    path: Path
    why: str


def purge(state_dir: Path, agents: Iterable[str] = ()) -> tuple[list[Path], list[Kept]]:
    """Delete what the cluster made under `state_dir` (its state, logs,
    endpoints, and the folders it made once empty). `agents` are the
    manifest's, for a state dir with no record. Returns what was removed
    and what was kept (each entry of the state dir and of its logs/,
    state/ and run/ that is left, the folders included)."""
    where = paths(state_dir)
    footprint = Footprint.load(state_dir)
    if footprint is None:
        footprint = Footprint.derived(state_dir, agents)
    else:  # members.json names every agent ever spawned here, as the record does
        footprint.agents |= names_in(where["members"])
    bases = footprint.files()
    record = where["created"]
    removed: list[Path] = []
    failed: list[Kept] = []
    for folder in _folders(state_dir):
        for entry in sorted(folder.iterdir()):
            if entry == record or (entry.is_dir() and not entry.is_symlink()):
                continue
            if is_cluster_file(entry.relative_to(state_dir).as_posix(), bases):
                try:
                    entry.unlink(missing_ok=True)
                except OSError as exc:  # reported with the rest of what is kept
                    failed.append(Kept(entry, f"cannot delete it: {exc.strerror or exc}"))
                    continue
                removed.append(entry)
    # The record goes last of the files: a purge cut short can be run again.
    if record.exists():
        record.unlink()
        removed.append(record)
    for name in (*FOLDERS, "."):
        folder = state_dir / name
        if name in footprint.folders and folder.is_dir() and not folder.is_symlink() \
                and not any(folder.iterdir()):
            folder.rmdir()
            removed.append(folder)
    kept: list[Kept] = list(failed)
    for folder in _folders(state_dir):
        for entry in sorted(folder.iterdir()):
            relative = entry.relative_to(state_dir).as_posix()
            if (relative in FOLDERS and entry.is_dir() and not entry.is_symlink()) \
                    or any(k.path == entry for k in failed):
                continue  # listed with its own reason
            kept.append(Kept(entry, NOT_MADE))
    for name in (*FOLDERS, "."):
        folder = state_dir / name
        if folder.is_dir():
            kept.append(Kept(folder, NOT_EMPTY if name in footprint.folders else NOT_MADE))
    return removed, kept


def _folders(state_dir: Path) -> list[Path]:
    """The folders the cluster writes in that exist: the state dir, logs/, state/, run/."""
    return [f for f in (state_dir, *(state_dir / name for name in FOLDERS)) if f.is_dir()]
