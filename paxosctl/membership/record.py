"""What the cluster recorded about its configurations, as the membership wing reads it.

Agents report their view of the configurations in every heartbeat: a
`paxos_agents.runtime.report.ConfigReport`, whose history is parsed once,
where the heartbeat is read, into a typed `History`; the supervisor keeps
the most advanced view any agent reported (`ConfigReport.newer_than`).
`decided` is that view as a plan reads it.
"""

from __future__ import annotations

from paxos_agents.runtime.report import ConfigReport

from .plan import Decided


def decided(config: ConfigReport) -> Decided:
    """The latest decided configuration of `config`, for `plan` and `change`."""
    return Decided(config.epoch, config.acceptors, config.in_force_epoch, config.pending_slot)
