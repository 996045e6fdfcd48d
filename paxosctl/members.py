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
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from .errors import PaxosctlError

#: The registry's format version; another is refused with a way out.
FORMAT = 1


class RegistryError(PaxosctlError):
    """members.json cannot be read or written; one line naming the file."""


@dataclass(frozen=True, slots=True)
class Member:
    """One agent's identity: `started` once it has run in this state dir."""

    name: str
    member_id: str
    started: bool


class MemberRegistry:
    """The members of one state dir, loaded at start and rewritten on change."""

    def __init__(self, path: Path, cluster_id: str | None = None) -> None:
        self.path = path
        self._members: dict[str, Member] = {}
        #: The cluster's id (cluster.json's, see ownership.py), or generated
        #: with the registry; every store of this cluster records it.
        self.cluster_id = cluster_id or uuid.uuid4().hex
        if path.exists():
            self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise RegistryError(f"{self.path} is unreadable ({exc}); restore it from a copy, "
                                "or move it aside to register every agent anew") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise RegistryError(f"{self.path} has format {data.get('format') if isinstance(data, dict) else '?'}"
                                f"; this paxosctl reads {FORMAT}")
        try:
            self.cluster_id = str(data["cluster_id"])
            for name, entry in data["members"].items():
                self._members[name] = Member(name, str(entry["member_id"]), bool(entry["started"]))
        except (KeyError, TypeError, AttributeError):
            raise RegistryError(f"{self.path} is corrupt (bad member entry)") from None

    @property
    def names(self) -> frozenset[str]:
        """Every agent name registered here (every one that was ever spawned)."""
        return frozenset(self._members)

    def member(self, name: str) -> Member:
        """`name`'s identity, registered (with a new member id) if it has none yet."""
        member = self._members.get(name)
        if member is None:
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
