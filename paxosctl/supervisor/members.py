"""The member registry: every agent that ever ran in this state dir, and its member id.

    state_dir/members.json
    {"format": 1, "cluster_id": "9a1e...",
     "members": {"acceptor-0": {"member_id": "5f0c...", "started": true}, ...}}

A member id is generated the first time the supervisor spawns an agent
and written here before the agent starts; the agent's store records it
when it is created. Once the agent has run (its first heartbeat), the
registry says so (`started`), and from then on the agent refuses to start
with a missing store, or with a store that records another member: an
acceptor that forgot its promises and votes, or a proposer that forgot
its ballot round, is the classic way to lose a chosen value (Paxos Made
Simple, section 2.5). A learner may start empty: it copies the decided
log from a peer learner.

Writes are atomic (a temporary file, fsync, rename), so a crash leaves
the old registry or the new one.

Losing the registry must not let a member forget it ran: every store
records its cluster and member id (paxos_agents.runtime.storage), so when
members.json is missing or unreadable the registry is rebuilt from the
stores instead of being started anew (`MemberRegistry.__init__`):

- each store in state/ that records this cluster's id is registered under
  its file's name, with the member id it records, as started;
- if the cluster has evidently run here (such a store exists,
  topology.json exists, or an unreadable members.json does), every agent
  the supervisor is about to run that has no store is registered as
  started with a new member id: its store is gone, so it refuses to start
  with one line naming the file and `paxosctl replace` (a learner still
  starts empty and copies the log from a peer);
- otherwise (no store, no trace of a run) the cluster is new.

Why every store-less agent of a cluster that ran, rather than none: with
the registry gone, nothing can tell an acceptor whose store was deleted
from one that never ran, and only the second may start empty; wrongly
refusing costs an operator a `paxosctl replace`, wrongly starting an
amnesiac acceptor can undo a chosen value. A store of another cluster is
not adopted: its agent refuses it as it did before.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import PaxosctlError
from .footprint import Footprint, is_store
from ..layout import paths

log = logging.getLogger("paxosctl.members")

#: The registry's format version; another is refused with a way out.
FORMAT = 1


class RegistryError(PaxosctlError):
    """members.json cannot be read or written; one line naming the file."""


class _Unreadable(Exception):
    """members.json cannot be read as a registry: it is rebuilt from the stores."""


@dataclass(frozen=True, slots=True)
class Member:
    """One agent's identity: `started` once it has run in this state dir."""

    name: str
    member_id: str
    started: bool


class MemberRegistry:
    """The members of one state dir, loaded at start and rewritten on change."""

    def __init__(self, path: Path, cluster_id: str | None = None, *,
                 agents: Iterable[str] = (), footprint: Footprint | None = None) -> None:
        """Load the registry at `path`, or rebuild it from the stores beside
        it (see the module docstring) if it is missing or unreadable;
        `agents` are the agents about to run. Raises RegistryError for a
        registry of another format (a newer paxosctl's). `footprint`, if
        given, records each new member before its files exist."""
        self.path = path
        self._members: dict[str, Member] = {}
        self._footprint = footprint
        #: The cluster's id (cluster.json's, see ownership.py), or generated
        #: with the registry; every store of this cluster records it.
        self.cluster_id = cluster_id or uuid.uuid4().hex
        if not path.exists():
            self._rebuild(agents, unreadable=None)
            return
        try:
            self._load()
        except _Unreadable as exc:
            self._rebuild(agents, unreadable=str(exc))

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise _Unreadable(f"unreadable ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            if isinstance(data, dict) and "format" in data:
                raise RegistryError(f"{self.path} has format {data.get('format')}; this paxosctl "
                                    f"reads {FORMAT} (written by a newer paxosctl? use that one)")
            raise _Unreadable("corrupt (not a registry)")
        try:
            cluster_id = str(data["cluster_id"])
            members = {name: Member(name, str(entry["member_id"]), bool(entry["started"]))
                       for name, entry in data["members"].items()}
        except (KeyError, TypeError, AttributeError):
            raise _Unreadable("corrupt (bad member entry)") from None
        self.cluster_id = cluster_id
        self._members = members

    def _rebuild(self, agents: Iterable[str], unreadable: str | None) -> None:
        """Register the members the stores record, and treat the agents
        without one as started if the cluster ran (module docstring)."""
        state_dir = self.path.parent
        where = paths(state_dir)
        try:
            stores = sorted(p for p in where["state"].glob("*.db") if is_store(p))
        except OSError:
            stores = []
        for store in stores:
            identity = store_identity(store)
            if identity is not None and identity[0] == self.cluster_id:
                name = store.name[:-len(".db")]
                self._members[name] = Member(name, identity[1], True)
        ran = bool(self._members) or where["topology"].exists() or unreadable is not None
        if not ran:
            return  # a new cluster: members are registered as they are spawned
        gone = sorted(set(agents) - set(self._members))
        for name in gone:
            self._members[name] = Member(name, uuid.uuid4().hex, True)
        why = f"{self.path} was {unreadable}" if unreadable else f"{self.path} was missing"
        log.warning("%s: rebuilt it from the stores in %s (%d member(s) kept their ids)%s",
                    why, where["state"], len(self._members) - len(gone),
                    f"; {', '.join(gone)} ran here but have no store: they must be replaced "
                    "(paxosctl replace NAME), a learner starts empty" if gone else "")
        if self._footprint is not None:
            for name in self._members:
                self._footprint.add_agent(name)
        self._save()

    @property
    def names(self) -> frozenset[str]:
        """Every agent name registered here (every one that was ever spawned)."""
        return frozenset(self._members)

    def member(self, name: str) -> Member:
        """`name`'s identity, registered (with a new member id) if it has none yet."""
        member = self._members.get(name)
        if member is None:
            if self._footprint is not None:
                self._footprint.add_agent(name)  # its files are the cluster's
            member = self._members[name] = Member(name, uuid.uuid4().hex, False)
            self._save()
        return member

    def started(self, name: str) -> None:
        """`name` has run here: from now on it must find its store."""
        member = self.member(name)
        if not member.started:
            self._members[name] = Member(name, member.member_id, True)
            self._save()

    def _save(self) -> None:
        data = {"format": FORMAT, "cluster_id": self.cluster_id, "members": {
            m.name: {"member_id": m.member_id, "started": m.started}
            for m in sorted(self._members.values(), key=lambda m: m.name)}}
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w") as f:
                json.dump(data, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            raise RegistryError(f"cannot write {self.path}: {exc.strerror}") from None


def store_identity(store: Path) -> tuple[str, str] | None:
    """(cluster id, member id) the store at `store` records; None if it is
    not a paxosctl store or records none (paxosctl 0.1's). Read-only: the
    store is not changed."""
    if not is_store(store):
        return None
    try:
        conn = sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            meta = dict(conn.execute(
                "SELECT key, value FROM meta WHERE key IN ('cluster_id', 'member_id')"))
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    cluster_id, member_id = meta.get("cluster_id"), meta.get("member_id")
    if isinstance(cluster_id, str) and isinstance(member_id, str) and cluster_id and member_id:
        return cluster_id, member_id
    return None


def stores_cluster_id(state_dir: Path) -> str | None:
    """The cluster id every store in `state_dir` records, if they agree on one."""
    try:
        stores = [p for p in paths(state_dir)["state"].glob("*.db")]
    except OSError:
        return None
    ids = {identity[0] for identity in map(store_identity, stores) if identity is not None}
    return ids.pop() if len(ids) == 1 else None
