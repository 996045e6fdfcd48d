"""Random runs: one seed picks the faults, the clients and the schedule.

A run has two phases. In the *fault phase* (`steps` ticks) clients submit
commands and retry them (half the tries with a wrong stamp: newer than the
first issue, older, or unknown; and most commands once more, later, after
their answer, as a client that lost it would), while the network drops, delays, reorders and
duplicates messages, partitions come and go, and any node may crash (also
right after persisting, before sending; or during its persist, after what
needs no persist left, as the runtime orders a loop turn) and restart.
Then the faults stop,
every node is restarted and the network heals; a learner may also lose
its disk once per run (it copies its log back from a peer learner); in the *liveness phase*
every submitted command must be applied by every learner within
`LIVENESS_TICKS` ticks.

With retention (`Topology.retain` = R: learners keep R slots of log)
a try may be refused as expired, which answers the client (it stops
retrying), and "applied everywhere" is judged from the common log (the
learners' own logs no longer hold old slots). Clients then never stamp a
try newer than its first issue: with a bounded log such a retry cannot
be told from a new request (README, "What it survives"), so only older
or unknown stamps are lies the cluster must survive.

With `reconfig` (and always with the planted `naive-swap`, which only
shows under reconfiguration) the fault phase also changes the acceptors
now and then, through a random proposer: add one from a pool of spare
names, remove one, or replace one by a fresh name (a removed name is
retired for good); never while a change is pending, which the proposer
refuses anyway. Between 1 and 5 acceptors at any time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..core.commands import Command
from ..core.settings import CHUNK_BYTES, Settings
from .checks import Violation
from .cluster import Faults, SimCluster
from .recording import SimRecorder
from .topology import Topology

#: The bound, in ticks after healing, within which every command must be applied.
LIVENESS_TICKS = 800

#: Settings the simulator runs with (small window and batch to exercise both;
#: learners save their id filter every few ids, so restarts load saved ones).
SIM_SETTINGS = dict(heartbeat_ticks=2, election_ticks=10, accept_timeout_ticks=6,
                    retry_cooldown_ticks=20, gap_ticks=6, window=4, batch=3,
                    filter_save_ids=4)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one run ended. `kind` is None, "safety" or "liveness"."""

    seed: int
    kind: str | None
    detail: str = ""
    step: int = 0
    delivered: int = 0
    crashes: int = 0


#: Spare acceptor names a reconfiguring run may bring in.
SPARES = tuple(f"acceptor-s{i}" for i in range(8))


def _retention_settings(seed: int, topology: Topology) -> dict[str, int]:
    """With retention, a catching-up learner's first chunk may not reach
    `log_start + R` (its index's floor): chunks of one slot, of a few, or
    of the usual size, by a generator of the seed's own."""
    if not topology.retain:
        return {}
    return {"chunk_bytes": random.Random(seed ^ 0xC4C4).choice((1, 256, CHUNK_BYTES))}


def run_seed(seed: int, topology: Topology, plant: frozenset[str] = frozenset(),
             steps: int = 300, reconfig: bool = False,
             recorder: SimRecorder | None = None) -> Outcome:
    """Run one seeded simulation and report the first broken property, if any.
    With `recorder`, every node's protocol records go there (recording.py)."""
    settings = Settings(plant=plant, retain_slots=topology.retain, **SIM_SETTINGS,
                        **_retention_settings(seed, topology))
    reconfig = reconfig or "naive-swap" in plant
    sim = SimCluster(topology.membership(), seed, settings, spares=SPARES if reconfig else (),
                     recorder=recorder)
    rng = random.Random(seed ^ 0x5EED)
    # Its own generator, so runs without reconfiguration replay as before.
    changes = Reconfigurer(sim, random.Random(seed ^ 0xC0F1)) if reconfig else None
    # Clients' wrong stamps: a generator of their own, so the schedule stays the seed's.
    liar = random.Random(seed ^ 0x57A4)
    ids = sim.ids
    proposers = sim.membership.proposers
    faults = Faults(
        drop=rng.choice((0.0, 0.02, 0.1, 0.25)),
        duplicate=rng.choice((0.0, 0.05, 0.2)),
        max_delay=rng.choice((0, 1, 3, 8)),
        crash_after_persist=rng.choice((0.0, 0.0, 0.002)),
    )
    crash_rate = rng.choice((0.0, 0.003, 0.01, 0.03))
    # Learner-only nodes may lose their disk (one per run: two lost disks
    # could lose decisions that acceptors compacted, as in any real system).
    wipeable = [n for n in ids if sim.membership.roles(n) == frozenset({"learner"})]
    wipe_rate = rng.choice((0.0, 0.0, 0.002, 0.01)) if wipeable else 0.0
    wiped = False
    partition_rate = rng.choice((0.0, 0.01, 0.04))
    heal_rate = 0.1
    n_commands = rng.randint(4, 24)
    client_retry = rng.randint(15, 60)
    # Each command: (submit tick, request id, payload).
    schedule = sorted((rng.randrange(steps), f"r{i}", f"v{i}".encode()) for i in range(n_commands))
    next_try: dict[str, int] = {}
    #: Each request's stamp (Command.issued): a slot decided, with no gap
    #: below it, when the request was first issued; its retries carry it too.
    stamps: dict[str, int] = {}
    down_until: dict[str, int] = {}
    #: request id -> the tick of its one try after it was acknowledged (-1: none).
    late: dict[str, int] = {}
    # Its own generator, so runs from before this fault replay their schedules.
    faults.crash_before_persist = random.Random(seed ^ 0xBEF0).choice((0.0, 0.003, 0.01))
    sim.faults = faults

    def clients() -> None:
        now = sim.now
        while schedule and schedule[0][0] <= now:
            _, rid, payload = schedule.pop(0)
            next_try[rid] = now
            chosen = sim.checker.chosen
            prefix = -1
            while prefix + 1 in chosen:
                prefix += 1
            stamps[rid] = prefix
            sim.checker.submit(rid, payload)
        acked = sim.checker.acked
        for rid, at in next_try.items():
            if at <= now and rid not in acked:
                next_try[rid] = now + client_retry
                sim.submit(rng.choice(proposers),
                           Command(rid, sim.checker.submitted[rid], stamp(rid)))
            elif rid in acked and rid not in late:
                # A client that lost its answer (it crashed, say) tries once more, later.
                late[rid] = now + liar.randint(1, 200) if liar.random() < 0.7 else -1
        for rid, at in late.items():
            if at == now:
                sim.submit(liar.choice(proposers),
                           Command(rid, sim.checker.submitted[rid], stamp(rid)))

    def stamp(rid: str) -> int:
        """The stamp a try of `rid` carries: mostly its true one, but clients
        may lie (`--issued`, `fresh=True`): newer than its first issue (the
        prefix decided now, or past anything decided), older, or unknown.
        A stamp never decides whether a command is applied twice."""
        lie = liar.random()
        if lie >= 0.5 or (topology.retain and lie < 0.3):
            return stamps[rid]  # with retention, never newer (see the module doc)
        if lie < 0.2:
            return max(sim.checker.chosen, default=-1)  # "fresh": newer than the truth
        if lie < 0.3:
            return stamps[rid] + 1_000_000  # newer than any slot
        if lie < 0.4:
            return -1  # unknown
        return max(-1, stamps[rid] - liar.randint(1, 50))  # older

    def applied(request_ids: list[str]) -> bool:
        """Each of `request_ids` is applied by every learner: in each one's
        log, or, with retention (old slots deleted), in the common log the
        checker keeps, with every learner up (the checks make their logs
        agree), or refused as expired there."""
        if not topology.retain:
            return sim.applied_everywhere(request_ids)
        checker = sim.checker
        return (all(sim.nodes[n] is not None for n in sim.membership.learners)
                and all(checker.in_log(r) or r in checker.expired for r in request_ids))

    try:
        for _ in range(steps):
            for node_id in ids:
                if sim.nodes[node_id] is None:
                    if down_until.get(node_id, 0) <= sim.now:
                        sim.restart(node_id)
                elif crash_rate and rng.random() < crash_rate:
                    sim.crash(node_id)
                    down_until[node_id] = sim.now + rng.randint(1, 40)
                elif wipe_rate and not wiped and node_id in wipeable and rng.random() < wipe_rate:
                    sim.wipe(node_id)
                    wiped = True
                    down_until[node_id] = sim.now + rng.randint(1, 40)
            if partition_rate and rng.random() < partition_rate:
                side = [n for n in ids if rng.random() < 0.5]
                sim.partition(side)
            elif sim._groups is not None and rng.random() < heal_rate:
                sim.heal()
            clients()
            if changes is not None:
                changes.maybe_change()
            sim.step()
        # Heal: no more faults, everyone up, clients keep retrying.
        fault_end = sim.now
        sim.faults = Faults()
        sim.heal()
        for node_id in ids:
            sim.restart(node_id)
        while schedule:
            schedule[0] = (sim.now, *schedule[0][1:])
            clients()
        wanted = list(next_try)
        for _ in range(LIVENESS_TICKS):
            if applied(wanted) and _caught_up(sim):
                return Outcome(seed, None, step=sim.now, delivered=sim.delivered,
                               crashes=sim.crashes)
            clients()
            sim.step()
        missing = [r for r in wanted if not applied([r])]
        behind = {n.node_id: n.learner.decided_up_to for n in sim.learners()}
        return Outcome(seed, "liveness",
                       f"{len(missing)} of {len(wanted)} commands not applied everywhere "
                       f"{LIVENESS_TICKS} ticks after the faults stopped at tick {fault_end} "
                       f"(e.g. {missing[:3]}; learners decided up to {behind})",
                       step=sim.now, delivered=sim.delivered, crashes=sim.crashes)
    except Violation as v:
        return Outcome(seed, "safety", str(v), step=sim.now, delivered=sim.delivered,
                       crashes=sim.crashes)


class Reconfigurer:
    """Random acceptor changes for one run (see the module doc)."""

    def __init__(self, sim: SimCluster, rng: random.Random) -> None:
        self.sim = sim
        self.rng = rng
        self.rate = rng.choice((0.01, 0.03, 0.08))
        self.spares = list(sim.spares)
        self.proposed = 0

    def maybe_change(self) -> None:
        rng, sim = self.rng, self.sim
        if rng.random() >= self.rate:
            return
        proposer = rng.choice(sim.membership.proposers)
        node = sim.nodes[proposer]
        if node is None:
            return
        current = list(node.proposer.history.latest.acceptors)
        ops = []
        if len(current) < 5 and self.spares:
            ops.append("add")
        if len(current) > 1:
            ops.append("remove")
        if self.spares:
            ops.append("replace")
        if not ops:
            return
        op = rng.choice(ops)
        if op == "remove":
            current.remove(rng.choice(current))
        else:
            fresh = self.spares[0]
            if op == "replace":
                current[current.index(rng.choice(current))] = fresh
            else:
                current.append(fresh)
        if sim.reconfigure(proposer, tuple(current)) and op != "remove":
            self.spares.pop(0)  # proposed once: never offered again, decided or not
            self.proposed += 1
        elif op == "remove":
            self.proposed += 1


def _caught_up(sim: SimCluster) -> bool:
    """Every learner has applied every slot any learner decided (no trailing gap)."""
    top = max(sim.checker.chosen, default=-1)
    return all(n.learner.decided_up_to >= top for n in sim.learners())
