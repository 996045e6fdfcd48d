"""What a node reports of itself, typed: `Node.status()` and `Node.configuration()`.

The runtime's heartbeat (the supervisor's view of who leads, with which
ballot, how far a learner applied) and its configuration report read these
values rather than the roles' attributes, so a role may rearrange its state
without the runtime noticing.
"""

from __future__ import annotations

from dataclasses import dataclass

from .configs import Config, History
from .ids import Ballot


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigStatus:
    """What `Node.configuration()` reports.

    - `epoch`: the highest epoch decided (the metric's configuration epoch);
    - `in_force`: the latest configuration every learner has stored every
      slot before (as far as this node heard: learners' `Stored` reports);
      acceptors only in older ones may be stopped;
    - `pending`: a change decided but not yet in force (its epoch, and
      `first_slot`, the first slot it governs), else None;
    - `alpha`, `known`: the history's alpha, and the slot below which it
      has seen every decision;
    - `history`: the whole history these were read from (its `latest` is
      the configuration of `epoch`; `to_json()` is what is persisted).
    """

    epoch: int
    in_force: Config
    pending: Config | None
    alpha: int
    known: int
    history: History


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeStatus:
    """What `Node.status()` reports: one value for the heartbeat and the config report.

    - `leading`: a proposer in phase 2 for its ballot (it believes it leads);
    - `ballot`: a proposer's current ballot (ZERO_BALLOT before its first
      phase 1); None at a node with no proposer;
    - `leader`: whom a proposer believes leads (itself when `leading`; None
      when it knows of nobody, or has no proposer);
    - `decided_up_to`: a learner's highest slot applied with no gap below;
      None at a node with no learner;
    - `config`: `Node.configuration()` (None at an acceptor-only node).
    """

    leading: bool
    ballot: Ballot | None
    leader: str | None
    decided_up_to: int | None
    config: ConfigStatus | None
