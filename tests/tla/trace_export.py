"""Export one seeded simulator run as a TLA+ trace that TLC checks against the spec.

The simulator (`paxos_agents.sim.SimCluster`) runs the real core with lost,
delayed and duplicated messages and crashes. Every step an acceptor takes
that changes its state (a Promise, an accept, or a compaction on a
learner's `Stored`) becomes one event of the trace, in the order they
happened, with the message it produced or the new compaction point; so
does every persist that moves a learner's durable applied prefix (what its
`Stored` messages then report). Every Prepare and Accept a proposer put on
the network is recorded too. `MultiPaxosTrace.tla` then asks TLC for a
behaviour of `MultiPaxos.tla` that produces exactly those acceptor and
learner events in that order, with the proposers' steps in between left to
TLC (constrained to the Prepares and Accepts the core really sent). If
there is none, the core did something the spec does not allow.

`Stored`, `Fetch` and `Chunk` messages themselves are not in the trace: the
spec models a `Stored` by the learner's persist it reports (see
`MultiPaxos.tla`, "Compaction"), and state transfer adds no decision that
the Accepted messages do not already carry.

    python tests/tla/trace_export.py SEED OUT_DIR [PLANTED_BUG ...]
    # writes OUT_DIR/MultiPaxosTraceData.tla
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from paxos_agents.core import Accept, Ballot, Command, Prepare, Settings, Vote
from paxos_agents.core.commands import Value
from paxos_agents.sim import SEPARATE, SimCluster, Violation
from paxos_agents.sim.cluster import Faults

NOOP = '"noop"'
NONE = '"none"'


class TracedCluster(SimCluster):
    """A SimCluster that records acceptor and learner events and proposer messages."""

    def __init__(self, *args, **kwargs) -> None:
        #: (kind, node, message or new point, votes): kind is "promise",
        #: "accept", "compact" (an acceptor's new compaction point) or "store"
        #: (a learner's new durable applied prefix, as the first slot above it).
        self.events: list[tuple[str, str, object, object]] = []
        self.sent: list[object] = []
        self.violation: str | None = None
        self._stored: dict[str, int] = {}
        super().__init__(*args, **kwargs)
        stored = self.checker.stored

        def traced_stored(node_id: str, upto: int) -> None:
            # Called when a learner's persist is durable, before its Stored
            # messages leave: the prefix up to `upto` is on its disk.
            stored(node_id, upto)
            if upto + 1 > self._stored.get(node_id, 0):
                self._stored[node_id] = upto + 1
                self.events.append(("store", node_id, upto + 1, None))

        self.checker.stored = traced_stored

    def _boot(self, node_id: str):
        node = super()._boot(node_id)
        acc = node.acceptor
        if acc is not None:
            on_prepare, on_accept, on_stored = acc.on_prepare, acc.on_accept, acc.on_stored

            def traced_prepare(m, acc=acc, node_id=node_id):
                before = acc.promised
                on_prepare(m)
                if acc.promised != before:  # promised: one Promise event
                    votes = {v.slot: v for v in acc.votes_from(m.first_slot)}
                    self.events.append(("promise", node_id, m, votes))

            def traced_accept(m, acc=acc, node_id=node_id):
                before = (acc.promised, acc.vote_at(m.slot))
                on_accept(m)
                if (acc.promised, acc.vote_at(m.slot)) != before:
                    self.events.append(("accept", node_id, m, None))

            def traced_stored(m, acc=acc, node_id=node_id):
                before = acc.compacted
                on_stored(m)
                if acc.compacted != before:  # deletes the votes below it
                    self.events.append(("compact", node_id, acc.compacted, None))

            acc.on_prepare, acc.on_accept, acc.on_stored = (
                traced_prepare, traced_accept, traced_stored)
        return node

    def send(self, msg) -> None:
        if isinstance(msg, (Prepare, Accept)):
            self.sent.append(msg)
        super().send(msg)


def run(seed: int, ticks: int = 150, commands: int = 6,
        plant: frozenset[str] = frozenset()) -> TracedCluster:
    """One seeded run with faults: drops, duplicates, delays, crashes of any node.

    `plant` puts known bugs back into the core (config.PLANTABLE).
    """
    settings = Settings(heartbeat_ticks=2, election_ticks=10, accept_timeout_ticks=6,
                        retry_cooldown_ticks=20, gap_ticks=6, window=4, batch=3,
                        plant=plant)
    sim = TracedCluster(SEPARATE.membership(), seed, settings)
    rng = random.Random(seed ^ 0x7A1)
    sim.faults = Faults(drop=0.1, duplicate=0.1, max_delay=3)
    proposers = sim.membership.proposers
    submit_at = sorted(rng.randrange(ticks - 40) for _ in range(commands))
    down: dict[str, int] = {}
    try:
        for t in range(ticks):
            while submit_at and submit_at[0] <= t:
                submit_at.pop(0)
                i = len(sim.checker.submitted)
                sim.submit(rng.choice(proposers), Command(f"r{i}", f"c{i}".encode()))
            for node_id in sim.ids:
                if sim.nodes[node_id] is None:
                    if down[node_id] <= t:
                        sim.restart(node_id)
                elif rng.random() < 0.01:
                    sim.crash(node_id)
                    down[node_id] = t + rng.randint(1, 15)
            sim.step()
    except Violation as v:  # a planted bug broke safety: the trace ends here
        sim.violation = str(v)
    return sim


class Names:
    """TLA+ spellings of the core's ballots, values and slots."""

    def __init__(self, sim: TracedCluster) -> None:
        self.proposers = {p: i + 1 for i, p in enumerate(sorted(sim.membership.proposers))}
        self.values: dict[Value, str] = {}
        slots = [m.slot for m in sim.sent if isinstance(m, Accept)]
        slots += [m.first_slot for m in sim.sent if isinstance(m, Prepare)]
        self.num_slots = max(slots, default=0) + 1
        rounds = [m.ballot.round for m in sim.sent]
        self.max_round = max(rounds, default=1)

    def ballot(self, b: Ballot) -> str:
        return f"<<{b.round}, {self.proposers[b.node_id]}>>" if b.round else "<<0, 0>>"

    def value(self, v: Value) -> str:
        if not v:
            return NOOP
        if v not in self.values:
            self.values[v] = f'"v{len(self.values)}"'
        return self.values[v]

    def vote(self, vote: Vote | None) -> str:
        if vote is None:
            return f"[bal |-> <<0, 0>>, val |-> {NONE}]"
        return f"[bal |-> {self.ballot(vote.ballot)}, val |-> {self.value(vote.value)}]"


def to_tla(sim: TracedCluster, module: str = "MultiPaxosTraceData") -> str:
    """The trace as a TLA+ module of definitions MultiPaxosTrace.cfg substitutes."""
    n = Names(sim)
    events = []
    for kind, node, m, votes in sim.events:
        if kind == "promise":
            fn = " @@ ".join(f"{s} :> {n.vote(votes.get(s))}" for s in range(n.num_slots))
            msg = (f'[src |-> "{node}", bal |-> {n.ballot(m.ballot)}, first |-> {m.first_slot}, '
                   f"votes |-> ({fn})]")
        elif kind == "accept":
            msg = (f'[src |-> "{node}", bal |-> {n.ballot(m.ballot)}, slot |-> {m.slot}, '
                   f"val |-> {n.value(m.value)}]")
        else:  # "compact", "store": the new point, the new first slot not stored
            msg = str(m)
        events.append(f'[kind |-> "{kind}", node |-> "{node}", msg |-> {msg}]')
    prepares = {f"[bal |-> {n.ballot(m.ballot)}, first |-> {m.first_slot}]"
                for m in sim.sent if isinstance(m, Prepare)}
    accepts = {f"[bal |-> {n.ballot(m.ballot)}, slot |-> {m.slot}, val |-> {n.value(m.value)}]"
               for m in sim.sent if isinstance(m, Accept)}
    acceptors = ", ".join(f'"{a}"' for a in sim.membership.acceptors)
    learners = ", ".join(f'"{a}"' for a in sim.membership.learners)
    nl = ",\n    "
    return f"""---- MODULE {module} ----
\\* Generated by tests/tla/trace_export.py: one seeded simulator run.
EXTENDS Naturals, TLC
TraceProposers == {{{", ".join(str(i) for i in sorted(n.proposers.values()))}}}
TraceAcceptors == {{{acceptors}}}
TraceLearners == {{{learners}}}
TraceValues == {{{", ".join(sorted(set(n.values.values())))}}}
TraceNoOp == {NOOP}
TraceNone == {NONE}
TraceNumSlots == {n.num_slots}
TraceNumBallots == {n.max_round * len(n.proposers)}
CorePrepares == {{{nl.join(sorted(prepares))}}}
CoreAccepts == {{{nl.join(sorted(accepts))}}}
Trace == <<
    {nl.join(events)}
    >>
====
"""


def main(argv: list[str]) -> int:
    seed, out = int(argv[0]), Path(argv[1])
    sim = run(seed, plant=frozenset(argv[2:]))
    (out / "MultiPaxosTraceData.tla").write_text(to_tla(sim))
    kinds = [e[0] for e in sim.events]
    print(f"seed {seed}: {len(sim.events) - kinds.count('store')} acceptor events "
          f"({kinds.count('compact')} compactions), {kinds.count('store')} learner stores, "
          f"{len(sim.checker.chosen)} slots decided, {sim.crashes} crashes"
          + (f"; stopped by {sim.violation}" if sim.violation else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
