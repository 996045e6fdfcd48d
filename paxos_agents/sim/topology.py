"""Cluster shapes for the simulator: `proposers=2,acceptors=3,learners=2` or `replicas=3`,
optionally with retention: `...,retain=6` (learners keep 6 slots of log).

`retain` is part of the shape because it changes what the cluster must
survive: learners delete their log and request index below a window,
refuse retries issued before it as expired, and a learner that fell
behind restarts its log above what it missed (state transfer).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.settings import Membership

ROLE_KEYS = ("proposers", "acceptors", "learners", "replicas")
KEYS = (*ROLE_KEYS, "retain")
#: The largest count of one role, and the largest window (`retain`).
MAX_COUNT = 15
MAX_RETAIN = 1000


@dataclass(frozen=True, slots=True)
class Topology:
    """How many nodes play each role (replicas play all three), and how
    many slots learners retain (`Settings.retain_slots`; 0: all)."""

    proposers: int = 0
    acceptors: int = 0
    learners: int = 0
    replicas: int = 0
    retain: int = 0

    @classmethod
    def parse(cls, text: str) -> "Topology":
        """Parse `key=count,...`; raise ValueError naming what is wrong."""
        counts: dict[str, int] = {}
        for part in text.split(","):
            key, sep, count = part.strip().partition("=")
            if not sep or key not in KEYS:
                raise ValueError(
                    f"bad topology part {part!r}; expected key=count with key in {', '.join(KEYS)}"
                )
            top = MAX_RETAIN if key == "retain" else MAX_COUNT
            if not count.isdigit() or not 0 <= int(count) <= top:
                raise ValueError(f"bad count in {part!r}; expected an integer from 0 to {top}")
            counts[key] = int(count)
        topology = cls(**counts)
        for role in ("proposers", "acceptors", "learners"):
            if getattr(topology, role) + topology.replicas == 0:
                raise ValueError(f"topology {text!r} has no {role} (nor replicas)")
        return topology

    def __str__(self) -> str:
        return ",".join(f"{k}={getattr(self, k)}" for k in KEYS if getattr(self, k))

    def membership(self) -> Membership:
        replicas = tuple(f"replica-{i}" for i in range(self.replicas))
        return Membership(
            proposers=tuple(f"proposer-{i}" for i in range(self.proposers)) + replicas,
            acceptors=tuple(f"acceptor-{i}" for i in range(self.acceptors)) + replicas,
            learners=tuple(f"learner-{i}" for i in range(self.learners)) + replicas,
        )


SEPARATE = Topology(proposers=2, acceptors=3, learners=2)
COLLAPSED = Topology(replicas=3)
#: Retention and expiry on: three learners (two may fall behind while one
#: serves), a window small enough that runs delete, expire and restart logs.
RETAINING = Topology(proposers=2, acceptors=3, learners=3, retain=6)
