"""The membership record an agent runs: `MembersRecord`, parsed once.

A `members` admin frame (paxosctl.client.admin) carries a versioned record:
who proposes, accepts and learns, the names retired for good (`replace`'s:
a retired name is never welcomed as a peer again, its old disk must never
vote), the names ever members (`used`: `replace` picks a name never used,
so no volume an engine kept under an old name comes back under the new
member), and the addresses of members the manifest does not place (an
agent `scale` added: its peers must know where to dial it). The agent keeps the
latest record it accepted in its store (meta "members", written before it
answers the frame) and runs it at its next start instead of the manifest's
membership (version 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..core.settings import Membership


@dataclass(frozen=True, slots=True)
class MembersRecord:
    """One accepted membership record (see the module docstring)."""

    version: int
    membership: Membership
    retired: frozenset[str] = frozenset()
    addresses: Mapping[str, str] = field(default_factory=dict)
    #: Every name that was ever a member (an optional key: older records lack it).
    used: frozenset[str] = frozenset()

    @property
    def names(self) -> frozenset[str]:
        """Every member's name, whatever its roles."""
        m = self.membership
        return frozenset(m.proposers) | frozenset(m.acceptors) | frozenset(m.learners)

    @classmethod
    def from_json(cls, body: Any) -> "MembersRecord":
        """The record of a `members` frame or of the store; ValueError (one
        line) for anything malformed, or a retired name listed as a member."""
        if not isinstance(body, dict):
            raise ValueError(f"a membership record is an object, got {body!r:.60}")
        version = body.get("version")
        if type(version) is not int or version < 1:
            raise ValueError(f"version: expected an integer from 1, got {version!r:.40}")
        lists = {}
        for key in ("proposers", "acceptors", "learners", "retired", "used"):
            value = body.get(key, [])
            if not isinstance(value, list) or not all(isinstance(n, str) and n for n in value):
                raise ValueError(f"{key}: expected a list of agent names, got {value!r:.60}")
            lists[key] = tuple(value)
        addresses = body.get("addresses", {})
        if not isinstance(addresses, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in addresses.items()):
            raise ValueError(f"addresses: expected names to \"host:port\", got {addresses!r:.60}")
        record = cls(version, Membership(lists["proposers"], lists["acceptors"], lists["learners"]),
                     frozenset(lists["retired"]), dict(addresses), frozenset(lists["used"]))
        back = sorted(record.names & record.retired)
        if back:
            raise ValueError(f"{', '.join(back)}: retired, so never a member again")
        return record

    def to_json(self) -> dict[str, Any]:
        m = self.membership
        return {"version": self.version, "proposers": list(m.proposers),
                "acceptors": list(m.acceptors), "learners": list(m.learners),
                "retired": sorted(self.retired), "addresses": dict(self.addresses),
                "used": sorted(self.used)}
