"""What an agent process needs to run: passed as its Process argument."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.settings import Membership, Settings
from .transport import Limits

#: Every log file of a cluster (each agent's, the supervisor's) rotates at
#: this size and keeps this many older files.
LOG_MAX_BYTES = 1_000_000
LOG_BACKUPS = 3


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """One agent incarnation's configuration (picklable, no open resources).

    - `tick_seconds`: wall-clock length of one core tick.
    - `heartbeat_seconds`: how often the agent reports to its supervisor.
    - `state_path`: its SQLite file; `log_path`: its rotated log file.
    - `seed`: seeds the core's jitter (differs per incarnation).
    - `cluster_id`, `member_id`: the identity its store records (empty:
      none, as in tests that run an agent alone).
    - `has_run`: the supervisor's registry says this member ran before, so
      a missing state file means lost state, not a new member.
    - `run_dir`: the folder of the cluster's endpoints (`transport`), and
      `incarnation`: which start of this agent this is (from 1), named in
      every connection's handshake.
    - `max_value_bytes`: a proposer refuses a command with a longer payload.
    - `configs`: the cluster's configuration history as the supervisor last
      heard it (`History.to_json()`), for a node whose store has none yet:
      an agent added after a reconfiguration must not take the current
      membership's acceptors for epoch 0's (see core/configs.py). A
      store's own history wins; either only grows by merging.
    - `limits`: what its endpoint grants connections (`transport.Limits`).
    """

    name: str
    membership: Membership
    settings: Settings
    tick_seconds: float
    heartbeat_seconds: float
    state_path: str
    log_path: str
    seed: int
    log_max_bytes: int = LOG_MAX_BYTES
    log_backups: int = LOG_BACKUPS
    cluster_id: str = ""
    member_id: str = ""
    has_run: bool = False
    run_dir: str = ""
    incarnation: int = 1
    max_value_bytes: int = 1 << 20
    configs: list | None = None
    limits: Limits = Limits()
