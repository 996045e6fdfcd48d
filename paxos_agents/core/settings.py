"""Who is in the cluster and how the protocol's timers are set.

Time in the core is counted in ticks; the runtime decides how long a tick
is (paxosctl's manifest sets it in milliseconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .configs import majority


@dataclass(frozen=True, slots=True)
class Membership:
    """The node ids playing each role. A replica appears in all three."""

    proposers: tuple[str, ...]
    acceptors: tuple[str, ...]
    learners: tuple[str, ...]

    @property
    def majority(self) -> int:
        """Acceptors needed for a quorum (any two majorities intersect)."""
        return majority(len(self.acceptors))

    def roles(self, node_id: str) -> frozenset[str]:
        """The roles `node_id` plays."""
        roles = set()
        if node_id in self.proposers:
            roles.add("proposer")
        if node_id in self.acceptors:
            roles.add("acceptor")
        if node_id in self.learners:
            roles.add("learner")
        return frozenset(roles)


#: Bugs that `--plant` can put back into the core, to show the checks catch them.
PLANTABLE = frozenset(
    {
        "forget-promise",
        "reuse-ballot",
        "cross-ballot-learner",
        "ignore-promised-value",
        "accept-without-promise",
        "truncate-early",
        "naive-swap",
        "trust-stamp",
        "send-before-persist",
        "stored-before-persist",
        "lenient-expiry",
        "filter-ahead",
        "ignore-index-floor",
        "values-only-transfer",
    }
)


#: The default byte budget of one slot (`Settings.slot_bytes`): 1 MiB,
#: as paxosctl's largest max_value_bytes, for the same reason: a slot
#: travels whole in one message, and on the 2-core test machine slots of
#: several MiB, several in flight, stalled agents' loops for a second or
#: more (see paxosctl.manifest.MAX_VALUE_BYTES for the measurement). Small
#: commands still batch: 64 of 16 KiB fill it.
SLOT_BYTES = 1024 * 1024


#: Payload bytes a learner sends in one state-transfer `Chunk` (about: a
#: chunk holds at least one slot): `Settings.chunk_bytes`'s default.
CHUNK_BYTES = 1 << 20

#: Request ids a learner adds to its id filter between two saves of it, at
#: least: `Settings.filter_save_ids`'s default (a few seconds of a busy
#: cluster; the saved blob then spares a restart all but these ids' keys).
FILTER_SAVE_IDS = 1 << 16


@dataclass(frozen=True, slots=True)
class Settings:
    """Protocol timers (in ticks) and sizes.

    - `heartbeat_ticks`: a leader heartbeats every this many ticks.
    - `election_ticks`: a proposer that hears no leader for this many ticks
      (plus up to as many again of seeded jitter) runs for leader.
    - `accept_timeout_ticks`: a leader resends an Accept not yet answered by
      a majority after this many ticks.
    - `retry_cooldown_ticks`: a proposer retries one slot at most once per
      this many ticks; more requests inside it are suppressed.
    - `gap_ticks`: a learner asks for a missing slot once it has been
      missing this long, and asks again at most this often.
    - `window`: slots a leader keeps in phase 2 at once.
    - `alpha`: slots between a reconfiguration's slot and the first slot
      it governs (see configs.py); a leader proposes in slot s only when
      it knows every decision below s - alpha + 1. At least `window`
      (else the window could never fill); None means `window`. Every node
      of a cluster must use the same alpha, for the life of the cluster:
      it is recorded in the configuration history, which wins over this
      setting once a node has one.
    - `batch`: commands a leader puts in one slot at most.
    - `slot_bytes`: the byte budget of one slot: a leader adds commands to
      a slot while its encoded value (`Value.data`) stays within it; a
      single command larger than the budget goes alone in its slot. So a
      slot's value is at most max(slot_bytes, the largest command), and
      fits in one frame wherever it travels (Accept, a state-transfer
      Chunk, a decided page) as long as both fit (paxosctl's manifest
      checks max_value_bytes). Default SLOT_BYTES.
    - `stored_ticks`: a learner tells acceptors and the other learners how
      far its log is durable at most this often (and every ten times this
      even when it did not move, so a restarted acceptor hears it again).
    - `chunk_bytes`: payload bytes of one state-transfer `Chunk` (about: a
      chunk holds at least one slot). Default CHUNK_BYTES; the simulator
      makes it small, so catching up takes many chunks.
    - `retain_slots`: learners keep the decided log of this many slots
      below their applied prefix and delete what is older; 0 keeps it all.
      Deduplication of request ids, and what is refused as expired, follow
      from it (see `Learner`), so every learner must use the same value.
    - `filter_save_ids`: a learner saves its request id filter (with its
      applied prefix) once this many ids were added since the last save, or
      a quarter of those it holds if more; a restart then reads only the
      keys applied after it (see core/requests.py). Default FILTER_SAVE_IDS;
      the simulator makes it small, so its restarts load saved filters.
    - `plant`: planted bugs (tests and the simulator only).
    """

    heartbeat_ticks: int = 2
    election_ticks: int = 10
    accept_timeout_ticks: int = 6
    retry_cooldown_ticks: int = 20
    gap_ticks: int = 6
    window: int = 32
    batch: int = 64
    slot_bytes: int = SLOT_BYTES
    stored_ticks: int = 5
    chunk_bytes: int = CHUNK_BYTES
    retain_slots: int = 0
    alpha: int | None = None
    filter_save_ids: int = FILTER_SAVE_IDS
    plant: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        for name in ("heartbeat_ticks", "election_ticks", "accept_timeout_ticks",
                     "retry_cooldown_ticks", "gap_ticks", "window", "batch", "slot_bytes",
                     "stored_ticks", "chunk_bytes", "filter_save_ids"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.alpha is None:
            object.__setattr__(self, "alpha", self.window)
        elif self.alpha < self.window:
            raise ValueError(f"alpha must be >= window ({self.window}), got {self.alpha}: "
                             "a leader keeps window slots in flight and may only run "
                             "alpha slots ahead of the decided prefix")
        if self.retain_slots < 0:
            raise ValueError(f"retain_slots must be >= 0, got {self.retain_slots}")
        unknown = set(self.plant) - PLANTABLE
        if unknown:
            raise ValueError(f"unknown planted bug(s) {sorted(unknown)}; known: {sorted(PLANTABLE)}")
