"""What a cluster made in its state dir: the record `down --purge` trusts.

    state_dir/created.json
    {"format": 1, "folders": [".", "logs", "run", "state"],
     "agents": ["acceptor-0", "learner-0", ...]}

`folders` are the folders the cluster created (relative to the state dir,
"." for the state dir itself); `agents` every agent it registered here.
The cluster's files are then known by name (paxosctl.layout: the
supervisor's files, and each recorded agent's store, log and endpoint,
with their companions). Files by name, folders by record, because a
folder may be the operator's: with `state_dir = "."` the project's own
logs/, state/ and run/ hold the operator's files beside the cluster's.

Each entry is written before the thing it names is made (a temporary
file, fsync, rename), so a crash leaves at most a recorded folder or agent
that does not exist, which purge skips. The one exception is the state
dir itself: `up` makes it before it holds the lock that lets it write
here, and records it right after (see ownership.claim).

A state dir written before this record existed (paxosctl 0.4 and older)
has none: `derived` reads the same answer from what is there.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from paxos_agents.runtime.storage.schema import APPLICATION_ID

from ..layout import FOLDERS, SUPERVISOR_FILES, agent_files, paths

#: created.json's format version.
FORMAT = 1


@dataclass
class Footprint:
    """The folders and agents a cluster made in one state dir.

    `recorded` is False for a footprint `derived` from what is there (no
    created.json), True for one read from, or kept in, created.json.
    """

    state_dir: Path
    folders: set[str] = field(default_factory=set)
    agents: set[str] = field(default_factory=set)
    recorded: bool = True

    # ------------------------------------------------------------ reading

    @classmethod
    def load(cls, state_dir: Path) -> Footprint | None:
        """The record in `state_dir`; None if there is none or it cannot be
        read (the caller then derives one: see `derived`)."""
        try:
            data = json.loads(paths(state_dir)["created"].read_text())
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                return None
            folders = {str(f) for f in data["folders"]}
            agents = {str(a) for a in data["agents"]}
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return cls(state_dir, folders, agents)

    @classmethod
    def derived(cls, state_dir: Path, agents: Iterable[str] = ()) -> Footprint:
        """The footprint of a state dir that has no record, from what is there.

        Agents: `agents` (the manifest's), every name members.json and
        topology.json hold, and every file in state/ that is a paxosctl
        store. Folders: if a cluster evidently ran here (cluster.json,
        members.json or topology.json, or a store), the state dir, logs/,
        state/ and run/, since older releases made them all; purge still
        removes a folder only once it is empty, so an operator's files in
        them survive. Otherwise none: nothing says they are the cluster's.
        """
        names = set(agents)
        where = paths(state_dir)
        for key in ("members", "topology"):
            names |= names_in(where[key])
        try:
            stores = [p for p in where["state"].glob("*.db") if is_store(p)]
        except OSError:
            stores = []
        names |= {p.name[:-len(".db")] for p in stores}
        ran = bool(stores) or any(where[key].exists() for key in ("identity", "members", "topology"))
        folders = {f for f in (".", *FOLDERS) if (state_dir / f).is_dir()} if ran else set()
        return cls(state_dir, folders, names, recorded=False)

    def files(self) -> frozenset[str]:
        """The base names (relative to the state dir) of every file the
        cluster made: see layout.is_cluster_file for their companions."""
        return frozenset(SUPERVISOR_FILES) | frozenset(
            f for name in self.agents for f in agent_files(name))

    # ------------------------------------------------------------ writing

    def add_folder(self, folder: Path) -> None:
        """Record `folder` (inside the state dir) as the cluster's; before making it."""
        relative = os.path.relpath(folder, self.state_dir)
        if relative not in self.folders:
            self.folders.add(relative)
            self.save()

    def add_agent(self, name: str) -> None:
        """Record agent `name` as the cluster's; before it first starts."""
        if name not in self.agents:
            self.agents.add(name)
            self.save()

    def make_folder(self, folder: Path) -> None:
        """Make `folder` (0700, under the process umask) unless it exists,
        recording it first. A folder that exists keeps its mode and owner:
        it may be the operator's."""
        if folder.is_dir():
            return
        self.add_folder(folder)
        folder.mkdir(mode=0o700, exist_ok=True)

    def save(self) -> None:
        """Write created.json whole: a crash leaves the old record or the new one."""
        path = paths(self.state_dir)["created"]
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump({"format": FORMAT, "folders": sorted(self.folders),
                       "agents": sorted(self.agents)}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self.recorded = True


def names_in(path: Path) -> set[str]:
    """Agent names members.json or topology.json holds, read leniently: for
    deciding what to delete, an unreadable file just names nobody."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return set()
    if not isinstance(data, dict):
        return set()
    names: set[str] = set()
    if isinstance(data.get("members"), dict):
        names |= {str(n) for n in data["members"]}
    for key in ("agents", "retired"):
        for entry in data.get(key) or ():
            if isinstance(entry, list) and entry:
                names.add(str(entry[0]))
            elif isinstance(entry, str):
                names.add(entry)
    return names


def is_store(path: Path) -> bool:
    """True if `path` is a paxosctl store: a SQLite file whose
    application_id is paxosctl's (read from the header: never opened)."""
    try:
        with open(path, "rb") as f:
            header = f.read(100)
    except OSError:
        return False
    return (len(header) == 100 and header.startswith(b"SQLite format 3\x00")
            and int.from_bytes(header[68:72], "big") == APPLICATION_ID)
