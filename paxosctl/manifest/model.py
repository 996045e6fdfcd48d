"""The manifest as frozen dataclasses, and the constants the loader checks
against. The defaults live here, in one place: the field defaults of
`Health`, `RestartSettings`, `PaxosSettings`, `LogSettings` and
`MetricsSettings`. Those fields also say how each key is checked (their
metadata, read by settings.py), so the parser, the "allowed:" lists and the
defaults cannot drift apart. `[transport]`'s settings are in placement.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paxos_agents.runtime.chaos import ChaosSettings
from paxosctl.durations import parse_duration

from .addresses import split_listen
from .placement import TransportSettings

ROLES = ("proposer", "acceptor", "learner", "replica")
PROTOCOL_ROLES = ("proposer", "acceptor", "learner")
#: Top-level tables a manifest may have, in the order they are documented.
SECTIONS = ("cluster", "agents", "health", "restart", "paxos", "log", "metrics", "chaos", "transport")
#: How agents and clients connect: `[transport] kind`.
TRANSPORTS = ("unix", "tls")
POLICIES = ("always", "on-failure", "never")

CLUSTER_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
CLUSTER_NAME_ALLOWED = 'lowercase letters, digits and "-", 1 to 63 characters, not starting with "-"'
GROUP_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
GROUP_NAME_ALLOWED = 'a lowercase letter, then up to 31 lowercase letters, digits or "-"'
MAX_REPLICAS = 64
#: Longest duration any key accepts. Timers far beyond it are typos, and
#: some waits (threading, select) overflow on absurd values.
MAX_DURATION = "24h"
MAX_DURATION_SECONDS = parse_duration(MAX_DURATION)
#: Kernel file systems: a state_dir under them can never be created.
KERNEL_FILE_SYSTEMS = (Path("/proc"), Path("/sys"))
STATE_DIR_ALLOWED = "a folder paxosctl can create or write"
#: The largest paxos.max_value_bytes: 1 MiB. A slot's value travels whole
#: in one frame (an Accept, a state-transfer Chunk, a page of `decided`), at
#: most frames.MAX_FRAME_BYTES (64 MiB); the leader fills a slot up to
#: SLOT_BYTES (the same 1 MiB) and a larger command goes alone, so a slot
#: is at most this plus one command's encoding: far under a frame
#: (tests/cli/test_manifest.py encodes one). The bound is set by time, not
#: by the frame. On the 2-core test machine (issue 20 (7)) building one
#: value and its three Accepts takes the leader 3 ms at 1 MiB and 42 ms at
#: 16 MiB, decoding and persisting it (fsync included) an acceptor 9 ms and
#: 74 ms. Five values in flight at once, with the transport that copied its
#: unsent buffer on every write, made the longest gap between an agent's
#: heartbeats 0.8 s at 512 KiB and 2.9 s at 2 MiB and got the leader killed
#: at 4 MiB; with the frame-queue transport (load average 11-14 from other
#: jobs): 0.34 s at 1 MiB, 0.79 s at 2 MiB, 1.17 s at 4 MiB, no restart.
#: 1 MiB keeps the worst seen near a tenth of the default heartbeat_timeout,
#: with room for a slower machine.
MAX_VALUE_BYTES = 1024 * 1024
MAX_VALUE_BYTES_WHY = (f"at most {MAX_VALUE_BYTES // 1024} KiB: a value travels in one message, "
                       "and larger ones stall agents past their health timeout")


# -- how a settings field is checked: stored in the field's metadata ---------


def _duration(default: str) -> Any:
    """A duration key: a string like "200ms", > 0 and <= MAX_DURATION."""
    return field(default=parse_duration(default), metadata={"kind": "duration", "text": default})


def _integer(default: int, low: int, high: int, why: str = "") -> Any:
    """An integer key from `low` to `high` inclusive (a TOML bool is not one);
    `why`, if given, ends the error with the reason for the bounds."""
    return field(default=default, metadata={"kind": "int", "low": low, "high": high,
                                            "text": default, "why": why})


def _choice(default: str, noun: str, choices: tuple[str, ...]) -> Any:
    """A string key that must be one of `choices`; `noun` names it in errors."""
    return field(default=default, metadata={"kind": "choice", "noun": noun, "choices": choices})

# -- the manifest, as dataclasses ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Health:
    """[health]: how the supervisor tells a live agent from a stuck one.

    - heartbeat_interval = "200ms": every agent heartbeats the supervisor this often.
    - heartbeat_timeout = "3s": an agent silent this long is killed and
      restarted. Must be greater than heartbeat_interval.
    - start_timeout = "10s": time an agent has from spawn to its first heartbeat.
    """

    heartbeat_interval: float = _duration("200ms")
    heartbeat_timeout: float = _duration("3s")
    start_timeout: float = _duration("10s")


@dataclass(frozen=True, slots=True)
class RestartSettings:
    """[restart]: what happens when an agent process ends (see paxosctl.supervisor.restart).

    - policy = "always": always | on-failure | never. "always" restarts after
      any exit, "on-failure" only after a failed one, "never" leaves it stopped.
    - backoff_initial = "100ms": wait before the first restart; it doubles
      with each consecutive failure...
    - backoff_max = "5s": ...up to this. Must be >= backoff_initial.
    - stable_after = "10s": a run that stayed up this long resets the
      failure count and the backoff.
    - max_restarts = 10: consecutive failed starts before giving up (the
      agent goes FATAL); 0 gives up at the first failure.
    """

    policy: str = _choice("always", "policy", POLICIES)
    backoff_initial: float = _duration("100ms")
    backoff_max: float = _duration("5s")
    stable_after: float = _duration("10s")
    max_restarts: int = _integer(10, 0, 1_000_000)


@dataclass(frozen=True, slots=True)
class PaxosSettings:
    """[paxos]: protocol timers and sizes, handed to every agent.

    - tick = "10ms": one protocol tick; the other durations are converted to
      whole ticks (see `ticks`), so each must be >= tick.
    - heartbeat = "50ms": the leader heartbeats this often.
    - election_timeout = "300ms": a proposer that hears no leader this long
      runs for leader. Must be greater than heartbeat.
    - accept_timeout = "100ms": a leader resends an unanswered Accept after this.
    - retry_cooldown = "500ms": a proposer retries one slot at most this often.
    - gap_timeout = "100ms": a learner asks for a missing slot after this.
    - window = 32 (1..4096): slots a leader keeps in phase 2 at once.
    - batch = 64 (1..1024): commands per slot at most.
    - max_value_bytes = 65536 (1..1048576): largest proposed value
      (MAX_VALUE_BYTES says why no more).
    - alpha = 64 (1..65536): a configuration change decided in slot i
      governs the slots from i + alpha (paxos_agents/core/configs.py); a
      leader runs at most alpha slots ahead of the decided prefix, so it
      must be at least window. Fixed for the cluster's life (`apply`
      refuses a change): the default leaves room to raise window to 64.
    - protocol_records = 8000 (0..1000000): protocol records each agent
      keeps in memory (messages sent and received, slots decided: what
      `paxosctl trace`, `top` and `ui` read), 72 bytes each, allocated at
      start; 0 keeps none.
    """

    tick: float = _duration("10ms")
    heartbeat: float = _duration("50ms")
    election_timeout: float = _duration("300ms")
    accept_timeout: float = _duration("100ms")
    retry_cooldown: float = _duration("500ms")
    gap_timeout: float = _duration("100ms")
    window: int = _integer(32, 1, 4096)
    batch: int = _integer(64, 1, 1024)
    max_value_bytes: int = _integer(65536, 1, MAX_VALUE_BYTES, MAX_VALUE_BYTES_WHY)
    alpha: int = _integer(64, 1, 65536)
    protocol_records: int = _integer(8_000, 0, 1_000_000)

    def ticks(self, name: str) -> int:
        """The duration field `name` in whole ticks, rounded, at least 1."""
        return max(1, round(getattr(self, name) / self.tick))


@dataclass(frozen=True, slots=True)
class LogSettings:
    """[log]: how much of the decided log learners keep.

    - retain = 0 (0..2**62): learners keep the decided log of this many
      slots below what they applied and delete what is older; 0 keeps
      everything. Request ids are deduplicated within what is kept; a
      retry of a request issued before it is refused as expired. Acceptors
      compact their votes on their own, whatever this says.
    """

    retain: int = _integer(0, 0, 2**62)


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """[metrics]: the Prometheus endpoint of the supervisor.

    - listen = "127.0.0.1:9464": "host:port" ("[::1]:9464" for IPv6), port
      0..65535 (0: any free port).
    - enabled = true: false serves no metrics (and skips the port check).
    """

    listen: str = "127.0.0.1:9464"
    enabled: bool = True

    @property
    def host(self) -> str:
        """The host part of `listen`, without IPv6 brackets."""
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """One agent process: instance `index` of group `group`, named
    "<group>-<index>" (e.g. "acceptor-2")."""

    name: str
    group: str
    role: str
    index: int

    @property
    def roles(self) -> frozenset[str]:
        """The protocol roles this agent plays; a replica plays all three."""
        if self.role == "replica":
            return frozenset(PROTOCOL_ROLES)
        return frozenset({self.role})


@dataclass(frozen=True, slots=True)
class Manifest:
    """A validated manifest. `path` is absolute; `state_dir` is absolute and
    resolved. `agents` are in file order, group by group, then by index."""

    path: Path
    name: str
    state_dir: Path
    agents: tuple[AgentSpec, ...]
    health: Health = field(default_factory=Health)
    restart: RestartSettings = field(default_factory=RestartSettings)
    paxos: PaxosSettings = field(default_factory=PaxosSettings)
    log: LogSettings = field(default_factory=LogSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    chaos: ChaosSettings = field(default_factory=ChaosSettings)
    #: [cluster] id: the cluster in certificates' spiffe:// names (None until `certs init`).
    cluster_id: str | None = None
    transport: TransportSettings = field(default_factory=TransportSettings)

    def by_role(self, role: str) -> tuple[AgentSpec, ...]:
        """Agents playing `role`. For "proposer", "acceptor" and "learner"
        replicas are included; "replica" gives the replicas alone."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; allowed: {', '.join(ROLES)}")
        if role == "replica":
            return tuple(a for a in self.agents if a.role == "replica")
        return tuple(a for a in self.agents if role in a.roles)

    @property
    def proposers(self) -> tuple[str, ...]:
        """Names of the agents that propose (replicas included)."""
        return tuple(a.name for a in self.by_role("proposer"))

    @property
    def acceptors(self) -> tuple[str, ...]:
        """Names of the agents that accept (replicas included)."""
        return tuple(a.name for a in self.by_role("acceptor"))

    @property
    def learners(self) -> tuple[str, ...]:
        """Names of the agents that learn (replicas included)."""
        return tuple(a.name for a in self.by_role("learner"))

    def placed_addresses(self) -> tuple[tuple[str, str], ...]:
        """(name, "host:port") of every agent of the manifest it places
        (transport.placement), for peers and clients to dial; the others
        publish theirs in run/<name>.addr. Names a host list or an address
        gives beyond the groups' counts (agents a `scale` adds there) are
        placed too: a client asks them when an agent names them a member."""
        t = self.transport
        names = dict.fromkeys([*(a.name for a in self.agents),
                               *(n for h in t.host_tables for n in h.agents), *(n for n, _ in t.addresses)])
        found = ((name, t.placement(name)) for name in names)
        return tuple((name, p.address) for name, p in found if p.placed)
