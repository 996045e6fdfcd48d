"""What the cluster recorded about its configurations, parsed once.

Agents report their view of the configurations in every heartbeat
(`ConfigReport`, whose history is JSON on the wire only: the report
parses it once, where the heartbeat is read, into a typed
`paxos_agents.core.configs.History`). `Recorded` is that view as the
supervisor keeps it; nothing reads a history by position. The most advanced view any agent reported is the cluster's
(`newer_than`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from paxos_agents.core.configs import History, majority
from paxos_agents.runtime.report import ConfigReport

from .plan import Decided


@dataclass(frozen=True, slots=True)
class Recorded:
    """One agent's view of the configurations (see `ConfigReport`)."""

    epoch: int
    acceptors: tuple[str, ...]
    in_force_epoch: int
    in_force: tuple[str, ...]
    #: The first slot a decided change governs while it is not in force, else -1.
    pending_slot: int
    history: History

    @classmethod
    def from_report(cls, report: ConfigReport) -> Recorded:
        """One agent's report, as the supervisor keeps it (already parsed)."""
        return cls(epoch=report.epoch, acceptors=report.acceptors,
                   in_force_epoch=report.in_force_epoch, in_force=report.in_force,
                   pending_slot=report.pending_slot, history=report.history)

    def newer_than(self, other: Recorded | None) -> bool:
        """Whether this view knows more than `other`: more decided, more in
        force, or fed further (views of one history only grow)."""
        if other is None:
            return True
        key = (self.epoch, self.in_force_epoch, self.history.known)
        return key > (other.epoch, other.in_force_epoch, other.history.known)

    @property
    def decided(self) -> Decided:
        return Decided(self.epoch, self.acceptors, self.in_force_epoch, self.pending_slot)

    def to_status(self) -> dict[str, Any]:
        """The configuration for `status` (JSON)."""
        return {
            "epoch": self.epoch,
            "acceptors": list(self.acceptors),
            "majority": majority(len(self.acceptors)),
            "in_force_epoch": self.in_force_epoch,
            "in_force": list(self.in_force),
            "pending_slot": self.pending_slot if self.pending_slot >= 0 else None,
        }
