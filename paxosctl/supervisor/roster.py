"""Who plays which role in the running cluster, as the supervisor knows it.

The fleet runs processes; this holds what a membership change reads and
changes, apart from them: the membership agents are spawned with (and
that the engine announces, paxosctl.supervisor.engine), the most advanced
view of the configurations any agent reported (parsed once,
paxosctl.membership.record), the history new agents are seeded with, and
the latest RECONFIG an agent refused. No process, pipe or clock: the
fleet feeds it what agents report, the engine what a change decides.
"""

from __future__ import annotations

from paxos_agents.core.configs import History
from paxos_agents.core.settings import Membership

from paxos_agents.runtime.report import ConfigReport


class Roster:
    """The membership in force here and the configurations the agents reported."""

    def __init__(self, membership: Membership, stored_history: History | None) -> None:
        #: Who plays each protocol role: given to every agent spawned from now on.
        self.membership = membership
        #: The most advanced view of the configurations any agent reported
        #: (None: none yet); its history seeds agents that start with an
        #: empty store (`RuntimeSpec.configs`).
        self.config: ConfigReport | None = None
        #: The history to seed when no agent has reported one (topology.json's).
        self.stored_history = stored_history
        #: The latest RECONFIG an agent refused: (agent, why); None once a new one is sent.
        self.reconfig_refusal: tuple[str, str] | None = None

    def reported(self, config: ConfigReport) -> None:
        """An agent's view of the configurations: kept if it knows more than the one kept."""
        if config.newer_than(self.config):
            self.config = config

    @property
    def history(self) -> History | None:
        """The configuration history to seed new agents with (see `config`)."""
        return self.config.history if self.config is not None else self.stored_history
