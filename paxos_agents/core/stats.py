"""A proposer's counters, shared by its rooms (proposer.py) and exported as metrics.

`Node.stats()` exports each field as `proposer_<name>`; the runtime's
heartbeat carries them to the supervisor's metrics.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ProposerStats:
    """Counters a runtime exports as metrics (cumulative for this incarnation)."""

    elections: int = 0
    leader_changes: int = 0
    proposals: int = 0
    decisions: int = 0
    nacks: int = 0
    forwarded: int = 0
    retries_requested: int = 0
    retries_performed: int = 0
    retries_suppressed: int = 0
    accept_resends: int = 0
    retries_compacted: int = 0
    config_refused: int = 0
    alpha_waits: int = 0
