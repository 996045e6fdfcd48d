"""A deterministic cluster of core nodes over a fake, faulty network.

Everything random comes from the seed (`random.Random(seed)`, and one
generator of its own per optional fault): the same seed replays the same
run exactly. Time is a tick counter. A crashed node keeps only its
`Record` (what it persisted); what it had not persisted, and the
messages it had not sent, are gone. A node may also crash in the middle
of handing over a `Ready` (`Faults`), where the runtime may: after its
persist, before sending; or during it, with what needs no persist sent.

With a `SimRecorder` (`recorder=`), every message sent and received and
every slot a learner decides is recorded as an agent records it
(recording.py), for `paxos_agents.trace`.

Scripted scenarios drive it by hand (`submit`, `run`, `crash`,
`crash_in_next_persist`, `restart`,
`isolate`, `partition`, `heal`, `hold`, `release`, `reconfigure`);
`faults.run_seed` drives it at random.

Reconfiguration: `spares` are acceptor nodes that start outside every
configuration (a pool of fresh names); `reconfigure` proposes a new
acceptor set through a proposer, as an operator would.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

from ..core.commands import Command
from ..core.settings import Membership, Settings
from ..core.configs import Config, ConfigError, History
from ..core.ids import ZERO_BALLOT
from ..core.messages import Message
from ..core.node import Node
from ..core.ready import Ready, Record
from .checks import Checker
from .recording import SimRecorder


@dataclass(slots=True)
class Faults:
    """Network fault rates in force (all zero: a perfect network)."""

    drop: float = 0.0
    duplicate: float = 0.0
    max_delay: int = 0
    #: Chance that a node crashes right after persisting, before sending.
    crash_after_persist: float = 0.0
    #: Chance that a node crashes during its persist: what needs no persist
    #: (`Ready.send`) has left, some or all of it, and the clients were
    #: answered, but nothing of the persist is durable (see `_drain`).
    crash_before_persist: float = 0.0


class SimCluster:
    """Core nodes, their durable records, and the network between them."""

    def __init__(
        self,
        membership: Membership,
        seed: int,
        settings: Settings | None = None,
        spares: tuple[str, ...] = (),
        recorder: SimRecorder | None = None,
    ) -> None:
        """`membership.acceptors` are epoch 0's; `spares` are more acceptor nodes,
        up and empty, that only a reconfiguration brings in. `recorder`, if
        given, records what every node sends, receives and decides."""
        self.recorder = recorder
        #: Each node's boot count (its incarnation in the records).
        self.boots: dict[str, int] = defaultdict(int)
        self.settings = settings or Settings()
        #: Epoch 0 (every node's disk starts with it: see `Record.configs`).
        self.initial = History.initial(self.settings.alpha, membership.acceptors)
        self.spares = spares
        #: Who plays which role: spares are acceptors too.
        self.membership = Membership(membership.proposers, membership.acceptors + spares,
                                     membership.learners)
        self.rng = random.Random(seed)
        #: The crash-before-persist fault's own generator: turning it on
        #: leaves the network's draws (and so every other fault) as they were.
        self.persist_rng = random.Random(seed ^ 0xD15C)
        self.ids = tuple(dict.fromkeys(
            (*membership.proposers, *self.membership.acceptors, *membership.learners)))
        self.checker = Checker(membership.learners, membership.acceptors, self.settings.alpha)
        self.records: dict[str, Record] = {n: self._fresh_disk() for n in self.ids}
        self.nodes: dict[str, Node | None] = {n: self._boot(n) for n in self.ids}
        self.now = 0
        self.faults = Faults()
        #: Messages due at a tick, each with its record link (None: not recorded).
        self._queue: dict[int, list[tuple[Message, list | None]]] = defaultdict(list)
        self._groups: dict[str, int] | None = None
        self._held: list[tuple[Message, list | None]] = []
        self._hold: Callable[[Message], bool] | None = None
        #: Nodes that crash during their next persist (`crash_in_next_persist`).
        self._doomed: set[str] = set()
        self.delivered = 0
        self.crashes = 0
        #: Crashes during a persist (`Faults.crash_before_persist`), counted in `crashes` too.
        self.crashes_in_persist = 0
        self.wipes = 0

    # ---------------------------------------------------------------- nodes

    def _fresh_disk(self) -> Record:
        return Record(configs=self.initial.to_json())

    def _boot(self, node_id: str) -> Node:
        plant = self.settings.plant
        roles = self.membership.roles(node_id)
        if "forget-promise" in plant and "acceptor" in roles:
            # The acceptor's disk forgets its promise and votes (what a lost
            # or rolled-back file does); a replica keeps its learner's log.
            disk = self.records[node_id]
            disk.promised, disk.votes, disk.compacted, disk.floor = ZERO_BALLOT, {}, 0, -1
        record = self.records[node_id].copy()
        self.boots[node_id] += 1
        if "reuse-ballot" in plant and "proposer" in roles:
            record.round = 0
        # The durable record is the node's store: it reads votes, decisions
        # and its request index back from "disk", as SqliteStorage serves them.
        node = Node(node_id, self.membership, self.settings, record,
                    random.Random(self.rng.getrandbits(64)), store=self.records[node_id])
        return node

    def crash(self, node_id: str) -> None:
        """Stop `node_id` at once; it keeps only its persisted record."""
        if self.nodes[node_id] is not None:
            self.nodes[node_id] = None
            self.crashes += 1

    def wipe(self, node_id: str) -> None:
        """Crash `node_id` and lose its disk (a learner only: it copies its log
        back from a peer; an acceptor that forgot its votes breaks Paxos)."""
        if "learner" not in self.membership.roles(node_id) or len(self.membership.roles(node_id)) > 1:
            raise ValueError(f"only a learner-only node may lose its disk, not {node_id}")
        self.crash(node_id)
        self.records[node_id] = self._fresh_disk()
        self.wipes += 1

    def restart(self, node_id: str) -> None:
        """Start a crashed node again from its persisted record."""
        if self.nodes[node_id] is None:
            self.nodes[node_id] = self._boot(node_id)

    def up(self) -> list[str]:
        return [n for n, node in self.nodes.items() if node is not None]

    def reconfigure(self, proposer: str, acceptors: tuple[str, ...]) -> bool:
        """Propose `acceptors` as the next epoch through `proposer` (if it is up).
        False if it is down or refuses (a change pending, or one not decided yet)."""
        node = self.nodes[proposer]
        if node is None:
            return False
        try:
            command = node.propose_config(acceptors)
        except ConfigError:
            return False
        self.checker.submit(command.request_id, command.payload)
        self._drain(proposer, node)
        return True

    def history(self) -> History:
        """The configurations the decided log has chosen so far (the checker's)."""
        return self.checker.history

    def in_force(self) -> Config:
        """The latest configuration every learner has stored every slot before."""
        stored = min((self.checker.stored_upto.get(n, -1) for n in self.checker.learners),
                     default=-1)
        return self.checker.history.in_force(stored)

    # -------------------------------------------------------------- network

    def partition(self, *groups: set[str] | list[str]) -> None:
        """Only nodes in the same group can talk; unlisted nodes form one more group."""
        self._groups = {}
        for i, group in enumerate(groups):
            for node_id in group:
                self._groups[node_id] = i
        for node_id in self.ids:
            self._groups.setdefault(node_id, len(groups))

    def isolate(self, node_id: str) -> None:
        self.partition([node_id])

    def heal(self) -> None:
        self._groups = None

    def hold(self, predicate: Callable[[Message], bool] | None) -> None:
        """Keep back every message matching `predicate` until `release`."""
        self._hold = predicate

    def release(self, predicate: Callable[[Message], bool] = lambda m: True) -> None:
        """Deliver held messages matching `predicate` on the next tick."""
        keep = []
        for item in self._held:
            (self._queue[self.now + 1].append if predicate(item[0]) else keep.append)(item)
        self._held = keep

    def _connected(self, a: str, b: str) -> bool:
        return self._groups is None or self._groups[a] == self._groups[b]

    def send(self, msg: Message) -> None:
        """Put `msg` on the network, subject to the faults in force."""
        recorder = self.recorder
        if msg.src == msg.dst:
            # Loopback inside one process: no network, delivered next tick.
            link = recorder and recorder.sent(msg, self.boots[msg.src], self.now)
            self._queue[self.now + 1].append((msg, link))
            return
        f = self.faults
        rng = self.rng
        if f.drop and rng.random() < f.drop:
            if recorder:
                recorder.sent(msg, self.boots[msg.src], self.now, dropped="network")
            return
        link = recorder and recorder.sent(msg, self.boots[msg.src], self.now)
        delay = 1 + (rng.randrange(f.max_delay + 1) if f.max_delay else 0)
        self._queue[self.now + delay].append((msg, link))
        if f.duplicate and rng.random() < f.duplicate:
            self._queue[self.now + delay + rng.randrange(3)].append((msg, link))

    # ---------------------------------------------------------------- time

    def submit(self, node_id: str, command: Command) -> None:
        """A client hands `command` to proposer `node_id` (lost if it is down)."""
        self.checker.submit(command.request_id, command.payload)
        node = self.nodes[node_id]
        if node is not None:
            node.propose(command)
            self._drain(node_id, node)

    def step(self) -> None:
        """One tick: deliver what is due (shuffled), tick every node, drain."""
        self.now += 1
        due = self._queue.pop(self.now, None)
        if due:
            if len(due) > 1:
                self.rng.shuffle(due)
            nodes = self.nodes
            recorder = self.recorder
            for item in due:
                msg = item[0]
                node = nodes.get(msg.dst)
                if node is None or not self._connected(msg.src, msg.dst):
                    continue
                if self._hold is not None and self._hold(msg):
                    self._held.append(item)
                    continue
                self.delivered += 1
                if recorder:
                    recorder.received(msg, item[1], self.boots[msg.dst], self.now)
                node.step(msg)
        for node_id, node in self.nodes.items():
            if node is not None:
                node.tick()
                self._drain(node_id, node)

    def run(self, ticks: int, until: Callable[[], bool] | None = None) -> bool:
        """Step up to `ticks` times; stop early (returning True) once `until()` holds."""
        for _ in range(ticks):
            if until is not None and until():
                return True
            self.step()
        return until is not None and until()

    def _drain(self, node_id: str, node: Node) -> None:
        """Hand `node`'s `Ready` to the "runtime": as runtime/agent.py does per
        loop turn, `send` leaves and clients are answered before the persist,
        `send_after_persist` only after it. Without a crash between them the
        order is not observable, so the usual path persists first (its draws
        replay as before); `Faults.crash_before_persist` is that crash."""
        ready = node.ready()
        if not ready:
            return
        persist = ready.persist
        if persist and node_id in self._doomed:
            self._doomed.discard(node_id)
            self._crash_in_persist(node_id, ready, share=1.0)
            return
        if (persist and self.faults.crash_before_persist
                and self.persist_rng.random() < self.faults.crash_before_persist):
            self._crash_in_persist(node_id, ready, share=self.persist_rng.random())
            return
        if persist:
            self.records[node_id].apply(persist)
        checker = self.checker
        for vote in persist.votes:
            checker.voted(node_id, vote)
        for slot, value in persist.decisions:
            checker.decided(node_id, slot, value)
        self._record_decisions(node_id, persist.decisions)
        logged = ready.logged + [e for applied in ready.applied for e in applied.log()]
        if logged:
            checker.logged(node_id, sorted(logged, key=lambda e: e.slot))
        if persist.applied is not None:
            checker.stored(node_id, persist.applied)
        if persist.compacted is not None:
            checker.compacted(node_id, persist.compacted)
        if (self.faults.crash_after_persist
                and self.rng.random() < self.faults.crash_after_persist):
            self.crash(node_id)  # durable, but nothing sent or reported
            return
        for msg in ready.send_after_persist:
            self.send(msg)
        for msg in ready.send:
            self.send(msg)
        for applied in ready.applied:
            for event in applied.commands():
                checker.applied(node_id, event)

    def _record_decisions(self, node_id: str, decisions) -> None:
        """A learner's newly decided slots, as its `decided` records."""
        if self.recorder:
            for slot, _ in decisions:
                self.recorder.decided(node_id, self.boots[node_id], slot, self.now)

    def crash_in_next_persist(self, node_id: str) -> None:
        """Make `node_id` crash during its next persist (see `_crash_in_persist`),
        with every message that needs no persist sent."""
        self._doomed.add(node_id)

    def _crash_in_persist(self, node_id: str, ready: Ready, share: float) -> None:
        """`node_id` dies during the persist of `ready`.

        What the runtime did before `storage.save` happened: the messages
        that need no persist went out (the transport flushes them during the
        fsync; each made it with probability `share`; messages to itself are
        stepped only after the persist and are lost), and the clients watching what
        was applied were answered. Nothing of `ready.persist` is durable,
        and nothing of `send_after_persist` left. The checker hears what
        anyone outside could see (decisions and answers), never the votes,
        the stored prefix or the compaction of the lost persist.
        """
        rng = self.persist_rng
        for msg in ready.send:
            if msg.dst != node_id and (share >= 1.0 or rng.random() < share):
                self.send(msg)
        checker = self.checker
        for slot, value in ready.persist.decisions:
            checker.decided(node_id, slot, value)
        self._record_decisions(node_id, ready.persist.decisions)
        logged = ready.logged + [e for applied in ready.applied for e in applied.log()]
        if logged:
            checker.logged(node_id, sorted(logged, key=lambda e: e.slot))
        for applied in ready.applied:
            for event in applied.commands():
                checker.applied(node_id, event)
        self.crash(node_id)
        self.crashes_in_persist += 1

    # -------------------------------------------------------------- queries

    def learners(self) -> list[Node]:
        return [n for n in (self.nodes[i] for i in self.membership.learners) if n is not None]

    def leader(self) -> str | None:
        """The proposer that believes it leads with the highest ballot, if any."""
        best = None
        for node_id in self.membership.proposers:
            node = self.nodes[node_id]
            if node is not None and node.is_leader:
                if best is None or node.proposer.ballot > self.nodes[best].proposer.ballot:
                    best = node_id
        return best

    def applied_everywhere(self, request_ids) -> bool:
        """True when every learner is up and has applied every one of `request_ids`."""
        learners = [self.nodes[i] for i in self.membership.learners]
        if any(n is None for n in learners):
            return False
        request_ids = list(request_ids)
        for node in learners:
            known = node.learner.first_slot
            if not all(rid in known for rid in request_ids):
                return False
        return True
