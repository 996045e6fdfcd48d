"""Cluster shapes for the simulator: `proposers=2,acceptors=3,learners=2` or `replicas=3`."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.settings import Membership

ROLE_KEYS = ("proposers", "acceptors", "learners", "replicas")


@dataclass(frozen=True, slots=True)
class Topology:
    """How many nodes play each role; replicas play all three."""

    proposers: int = 0
    acceptors: int = 0
    learners: int = 0
    replicas: int = 0

    @classmethod
    def parse(cls, text: str) -> "Topology":
        """Parse `key=count,...`; raise ValueError naming what is wrong."""
        counts: dict[str, int] = {}
        for part in text.split(","):
            key, sep, count = part.strip().partition("=")
            if not sep or key not in ROLE_KEYS:
                raise ValueError(
                    f"bad topology part {part!r}; expected key=count with key in {', '.join(ROLE_KEYS)}"
                )
            if not count.isdigit() or not 0 <= int(count) <= 15:
                raise ValueError(f"bad count in {part!r}; expected an integer from 0 to 15")
            counts[key] = int(count)
        topology = cls(**counts)
        for role in ("proposers", "acceptors", "learners"):
            if getattr(topology, role) + topology.replicas == 0:
                raise ValueError(f"topology {text!r} has no {role} (nor replicas)")
        return topology

    def __str__(self) -> str:
        return ",".join(f"{k}={getattr(self, k)}" for k in ROLE_KEYS if getattr(self, k))

    def membership(self) -> Membership:
        replicas = tuple(f"replica-{i}" for i in range(self.replicas))
        return Membership(
            proposers=tuple(f"proposer-{i}" for i in range(self.proposers)) + replicas,
            acceptors=tuple(f"acceptor-{i}" for i in range(self.acceptors)) + replicas,
            learners=tuple(f"learner-{i}" for i in range(self.learners)) + replicas,
        )


SEPARATE = Topology(proposers=2, acceptors=3, learners=2)
COLLAPSED = Topology(replicas=3)
