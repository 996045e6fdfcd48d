"""What an agent process needs to run: passed as its Process argument."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.settings import Membership, Settings
from .connection import Limits

#: Every log file of a cluster (each agent's, the supervisor's) rotates at
#: this size and keeps this many older files.
LOG_MAX_BYTES = 1_000_000
LOG_BACKUPS = 3


@dataclass(frozen=True, slots=True)
class TlsSpec:
    """How an agent's endpoint runs over TCP + mutual TLS 1.3 (runtime/tlsnet.py).

    - `listen`: "host:port" to listen on (port 0: any free port; the address
      got is published in `run/<name>.addr` either way).
    - `cert`, `key`, `ca`: its certificate (spiffe://<cluster>/agent/<name>),
      key and the cluster CA (`paxosctl certs init` writes them).
    - `addresses`: (name, "host:port") of agents the manifest places; the
      others are found in `run/<name>.addr`.
    - `user_timeout_ms`: TCP_USER_TIMEOUT, about twice the election timeout.
    """

    listen: str
    cert: str
    key: str
    ca: str
    addresses: tuple[tuple[str, str], ...] = ()
    user_timeout_ms: int = 2000


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
    - `run_dir`: the folder of the cluster's endpoints (`transport`). The
      agent's incarnation is not here: it is a counter in its own store,
      counted up at each start (runtime/main.py, greeting.py).
    - `bootstrap`: this is the first start of a new cluster (no member ever
      ran). An agent whose store is new is admitted by peers that never
      welcomed it and have nothing decided; it is refused as soon as one
      has (admission.py). Ignored by a store that has run.
    - `max_value_bytes`: a proposer refuses a command with a longer payload.
    - `configs`: the cluster's configuration history as the supervisor last
      heard it (`History.to_json()`), for a node whose store has none yet:
      an agent added after a reconfiguration must not take the current
      membership's acceptors for epoch 0's (see core/configs.py). A
      store's own history wins; either only grows by merging.
    - `limits`: what its endpoint grants connections (`transport.Limits`).
    - `tls`: None: Unix sockets under `run_dir` (net.UnixNet); else TCP +
      mutual TLS (`TlsSpec`, tlsnet.TlsNet).
    - `bootstrap`: the operator says this agent starts a new cluster, so an
      empty store may start (`paxosctl agent --bootstrap`).
    - `protocol_records`: protocol records it keeps in memory (the ring of
      protocolrecords.py, read with INFO "protocol"); 0: none kept.
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
    bootstrap: bool = False
    max_value_bytes: int = 1 << 20
    configs: list | None = None
    limits: Limits = Limits()
    tls: TlsSpec | None = None
    bootstrap: bool = False
    protocol_records: int = 8_000
