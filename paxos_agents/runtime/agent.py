"""The agent event loop: the core wrapped in a process (raft-rs's shell loop).

Each iteration:

1. wait (epoll) until a socket, the control channel (the supervisor's
   inbox), the next tick or heartbeat is due, then run each ready
   descriptor's handler: peer messages `step` the node, client frames
   become proposals, watches, queries and admin frames (`Clients`);
2. `tick` the node for each tick period that has passed;
3. drain `Ready`: send what needs no persist (it goes out during the
   fsync), persist (one SQLite transaction for everything the iteration
   produced: group commit), then send `send_after_persist`; answer the
   clients watching what was applied; messages to itself are stepped at
   once, after the persist, and drained again. A persist that no other
   process waits for (a learner's applied slots, decisions and request
   index, not a vote, promise or ballot) is written at once but committed
   a little later with the turns that follow (group commit over loop
   turns, persister.py); what depends on it (`Stored` reports) waits for
   that COMMIT. Clients are answered before a learner persists anyway
   (see `_flush`), so this costs them nothing;
4. write every connection once (one send per peer per turn), and a
   heartbeat to the control channel when one is due.

Who reports and steers is behind `Control` (control.py): the supervisor's
pipes (`PipeControl`), or none (`StandaloneControl`, `paxosctl agent`),
where admin frames on client connections steer instead. Both reach the
same methods here (`suspect`, `set_chaos`, `set_membership`,
`reconfigure`). The supervisor is not on the data path: a stopped
supervisor stalls nothing here. The outbox pipe to it is non-blocking, and
a heartbeat that finds it full is skipped (the next one says the same,
newer).

Membership is a versioned record (members.py), and what MEMBERS and
RECONFIG do to it is membership.py's (`MembershipDesk`): a versioned
record is saved in the agent's store before the frame is answered, and a
restarted agent runs the stored record (its spec's membership, the
manifest's, is version 0).

Protocol records (protocolrecords.py): every message sent (handed to the
transport with its frame, recorded there as it is queued or dropped),
every message received (after it is decoded and checked) and every slot
the learner decides go into the ring `protocol` (a message to itself too,
sent and stepped, with no link), of `spec.protocol_records` records (0:
off, and nothing is recorded), stamped with their loop turn's start.

A `StorageError` is never swallowed: an agent that cannot make its state
durable must stop rather than answer.
"""

from __future__ import annotations

import logging
import os
import random
import selectors
import time
from typing import Callable

from ..core.commands import BatchError
from ..core.node import Node
from .clients import Clients
from .control import Control
from .codec import CodecError, decode, encode
from .spec import AgentSpec
from .storage import Storage
from .chaos import ChaosSettings
from .ratelog import clip
from .persister import Persister
from .protocolrecords import RECV, SEND, ProtocolRecords
from .records import Records, event
from .selfview import SelfView, Traffic
from .valuechecks import ValueChecks
from .net import make_net
from .transport import PeerTransport, Transport
from .admission import admission_for, peer_facts
from .membership import MembershipDesk
from ..core.configs import History

log = logging.getLogger("paxos_agents.agent")

#: Ticks caught up at most after a stall (GC pause, a slow fsync).
MAX_CATCH_UP_TICKS = 5
#: Seconds between two progress lines of a learner's catch-up.
CATCHUP_LOG_SECONDS = 1.0


class Agent:
    """One agent incarnation: a `Node`, its storage, its endpoint and its control channel."""

    def __init__(
        self,
        spec: AgentSpec,
        control: Control,
        storage: Storage,
        clock: Callable[[], float] = time.monotonic,
        records: Records | None = None,
    ) -> None:
        self.spec = spec
        #: Its recent log lines and events, for INFO frames (queries.py);
        #: `serve` installs them on the logger, a bare Agent keeps them empty.
        self.records = records if records is not None else Records(spec.name)
        self.name = spec.name
        self.control = control
        self._storage = storage
        self._clock = clock
        self.traffic = Traffic()
        #: The membership in force and its changes (membership.py).
        self.membership = MembershipDesk(spec.name, storage, self.traffic)
        stored = self.membership.record
        membership = stored.membership if stored is not None else spec.membership
        record = storage.load()
        if record.configs is None and spec.configs is not None:
            record.configs = spec.configs  # a new member of a reconfigured cluster
        if record.configs is None and membership != spec.membership:
            # Epoch 0 is the spec's (the manifest's) acceptors, not the record's.
            record.configs = History.initial(spec.settings.alpha,
                                             spec.membership.acceptors).to_json()
        self.node = Node(spec.name, membership, spec.settings, record,
                         random.Random(spec.seed), store=storage)
        if self.node.learner is not None:
            learner = self.node.learner
            log.info("exactly-once filter: %s (%d ids)",
                     "loaded the saved one" if learner.once.filter_start == "saved"
                     else f"read every request id: saved one not used ({learner.once.filter_start})",
                     learner.requests.filter.count)
        self._stopping = False
        self._was_leader = False
        self._leader_hint: str | None = None
        self._catchup_logged = (0, 0.0)  # (slots installed, when) at the last progress line
        self._selector = selectors.DefaultSelector()
        control.attach(self._selector, self)
        members = frozenset(membership.proposers) | frozenset(membership.acceptors) \
            | frozenset(membership.learners)
        run_dir = spec.run_dir or os.path.join(os.path.dirname(spec.state_path), "run")
        # The incarnation is the store's own counter (main.py counted this start).
        self.transport: PeerTransport = Transport(
            name=spec.name, incarnation=storage.incarnation, cluster_id=spec.cluster_id,
            run_dir=run_dir, members=members, selector=self._selector,
            on_message=self._on_message, on_client=self._on_client_frame,
            welcome=self._welcome, clock=clock, limits=spec.limits, net=make_net(spec, run_dir),
            store=storage, admission=admission_for(spec, storage),
            facts=lambda peer: peer_facts(self.node, spec.membership, peer))
        #: Its protocol records (INFO op "protocol"); `_protocol` is None when off.
        self.protocol = ProtocolRecords(spec.name, storage.incarnation, spec.protocol_records,
                                        clock)
        self._protocol = self.transport.protocol = self.protocol.active
        #: Its writes, at once or grouped over turns, and what waits for them.
        self.persister = Persister(storage, clock, self.transport.flush)
        self.membership.attach(self.node, self.transport)
        #: A new store not admitted yet (node.admitted() once it is: the loop looks).
        self._unadmitted = not self.transport.greeter.admitted
        self.clients = Clients(self.node, storage, self.transport, spec.max_value_bytes,
                               steering=self, asked=self)
        #: Values checked on arrival (valuechecks.py; None: an acceptor alone,
        #: which only stores and forwards them, undecoded).
        self.values = (ValueChecks(learns=self.node.learner is not None)
                       if self.node.learner is not None or self.node.proposer is not None
                       else None)
        self.view = SelfView(spec, self.node, storage, self.transport, control, self.clients,
                             self.persister, self.traffic, clock)

    def stop(self, *_: object) -> None:
        """Finish the current iteration (its persist included), then return from `run`."""
        self._stopping = True

    def run(self) -> None:
        """Serve until stopped or until the control channel's other end goes
        away (the supervisor's inbox at EOF)."""
        control = self.control
        control.signals(self.stop)
        tick = self.spec.tick_seconds
        beat = self.spec.heartbeat_seconds
        now = self._clock()
        next_tick = now + tick
        next_beat = now  # report at once: the supervisor waits for it
        select = self._selector.select
        transport = self.transport
        try:
            while not self._stopping and not control.gone:
                due = min(next_tick, next_beat)
                delayed = transport.next_due()
                if delayed is not None:
                    due = min(due, delayed)
                commit_due = self.persister.due()
                if commit_due is not None:
                    due = min(due, commit_due)
                timeout = due - self._clock()
                events = select(timeout if timeout > 0 else 0)
                # What arrives and is decided in this turn, as of its start
                # (the commit-duration histogram, the protocol records' times;
                # one clock read per turn).
                turn = self._clock()
                self.node.set_time(turn)
                if self._protocol is not None:
                    self._protocol.now = turn
                for key, mask in events:
                    key.data(mask)
                now = self._clock()
                ticks = 0
                if self._unadmitted and transport.greeter.admitted:
                    self._unadmitted = False
                    self.node.admitted()  # what it said while not admitted went nowhere
                while now >= next_tick:
                    if ticks < MAX_CATCH_UP_TICKS:
                        self.node.tick()
                        ticks += 1
                        next_tick += tick
                    else:
                        next_tick = now + tick
                self._flush()
                self._queue_messages(self.persister.commit_if_due(now), [])
                if self.node.is_leader != self._was_leader:
                    # Tell the supervisor at once (status, metrics, the death hint).
                    self._was_leader = self.node.is_leader
                    next_beat = now
                    self._log_leadership()
                self._note_leader()
                transport.flush()
                if now >= next_beat:
                    control.heartbeat(self.heartbeat(), transport.connected_peers())
                    next_beat = now + beat
                    self._log_catchup(now)
                control.flush()
            if self.node.learner is not None:
                self.node.learner.save_filter()  # a clean stop: the next start reads no key
            self._flush()
            self._commit()
            transport.flush()
            log.info("stopped")
        finally:
            transport.close()

    # ---------------------------------------------------------------- input

    def suspect(self, name: str) -> None:
        """A SUSPECT: `name`'s process died (a failure-detector hint)."""
        self.node.suspect(name)

    def set_chaos(self, settings: ChaosSettings) -> None:
        """A CHAOS: the faults to inject into what this agent sends, from now on."""
        self.transport.chaos.set(settings)

    def set_membership(self, body: dict) -> str | None:
        """A MEMBERS: `MembershipDesk.set_membership`."""
        return self.membership.set_membership(body)

    def reconfigure(self, body: dict) -> str | None:
        """A RECONFIG: `MembershipDesk.reconfigure`."""
        return self.membership.reconfigure(body)

    @property
    def members_version(self) -> int:
        """The version of the membership in force (0: the spec's)."""
        return self.membership.version

    def _on_message(self, sender: str, frame: bytes) -> None:
        """A protocol message from peer `sender` (named by the connection's handshake)."""
        try:
            msg = decode(frame)
        except CodecError as e:
            self.traffic.malformed += 1
            self.transport.rlog.warning("malformed", "dropped a malformed message from %s: %s",
                                        sender, clip(str(e), 200))
            return
        if msg.src != sender or msg.dst != self.name:
            self.traffic.malformed += 1
            self.transport.rlog.warning("misaddressed", "dropped a %s from %s that says it is "
                                        "from %s to %s", type(msg).__name__, sender,
                                        clip(msg.src), clip(msg.dst))
            return
        if self.values is not None:
            try:
                self.values.check(msg)
            except BatchError as e:
                # A learner would fail applying it, a proposer re-proposing
                # it: only a misbehaving peer sends one, so it goes no further.
                self.traffic.malformed += 1
                self.transport.rlog.warning("bad-value", "dropped a %s from %s holding a value "
                                            "that is not a batch: %s", type(msg).__name__,
                                            sender, clip(str(e), 200))
                return
        self.traffic.received[type(msg).__name__] += 1
        protocol = self._protocol
        if protocol is not None:
            conn = self.transport.receiving
            if conn is not None:
                protocol.record(RECV, msg, sender, conn.peer_incarnation, conn.generation,
                                conn.frames)
        self.node.step(msg)

    def _on_client_frame(self, conn, frame: bytes | None) -> None:
        self.clients.on_frame(conn, frame)

    def _welcome(self) -> dict:
        return self.view.welcome(self.membership.version, self.membership.record)

    def own_view(self) -> dict:
        """`SelfView.own_view`: for `paxosctl describe` asked of this agent (queries.py)."""
        return self.view.own_view(self.membership.version, self.membership.record)

    def heartbeat(self) -> dict:
        """`SelfView.heartbeat`: this incarnation's report, as a HEARTBEAT carries it."""
        return self.view.heartbeat()

    @property
    def incarnation(self) -> int:
        """This start's number: the store's start counter (main.py counted it)."""
        return self.transport.incarnation

    # --------------------------------------------------------------- output

    def _flush(self) -> None:
        """Drain `Ready` until the node has nothing more: send, persist, send."""
        node = self.node
        name = self.name
        while True:
            ready = node.ready()
            if not ready:
                return
            local: list = []
            self._queue_messages(ready.send, local)
            if ready.applied or ready.persist.applied is not None:
                # Before this learner's own persist: the decision is already
                # durable at a majority of acceptors, and every learner derives
                # the same position from it, so the answer stands even if this
                # learner crashes before its copy is on disk. Slots installed
                # from a peer (state transfer) are announced too (`upto`).
                self.clients.applied(ready.applied, ready.persist.decisions,
                                     upto=ready.persist.applied)
            if self._protocol is not None and ready.persist.decisions:
                decided = self._protocol.decided
                for slot, _ in ready.persist.decisions:
                    decided(slot)
            persist, after = ready.persist, ready.send_after_persist
            # What we step ourselves must see its persist done: never held.
            # StorageError: stop, never send what depended on the persist.
            sendable = self.persister.persist(
                persist, after, may_wait=not any(m.dst == name for m in after))
            self._queue_messages(sendable, local)
            if local and persist:
                node.set_time(self._clock())  # our own votes count as of the persist's end
            protocol = self._protocol
            for msg in local:
                if protocol is not None:  # no link: it never left this process
                    protocol.record(RECV, msg, name, self.incarnation)
                node.step(msg)  # our own messages, after the persist like any other

    def _commit(self) -> None:
        """COMMIT what was written and waits (group commit), then send what depended on it."""
        self._queue_messages(self.persister.commit(), [])  # nothing to ourselves is held

    def _queue_messages(self, messages: list, local: list) -> None:
        name = self.name
        send = self.transport.send
        sent = self.traffic.sent
        protocol = self._protocol
        for msg in messages:
            if msg.dst == name:
                local.append(msg)
                if protocol is not None:  # a replica's proposer to its own acceptor...
                    protocol.record(SEND, msg, name)
            else:
                sent[type(msg).__name__] += 1
                if protocol is None:
                    send(msg.dst, encode(msg))
                else:
                    send(msg.dst, encode(msg), msg)  # recorded as it is queued

    def _log_leadership(self) -> None:
        proposer = self.node.proposer
        if self._was_leader:
            ballot = proposer.ballot
            log.info("leading with ballot %d.%s", ballot.round, ballot.node_id)
        else:
            log.info("no longer leading (leader now: %s)", proposer.leader or "unknown")

    def _note_leader(self) -> None:
        """Tell this proposer's clients when the leader it knows of changes."""
        proposer = self.node.proposer
        if proposer is None:
            return
        leader = self.name if self.node.is_leader else proposer.leader
        if leader != self._leader_hint:
            log.info("leader now: %s", leader or "none known", extra=event("leader_seen"))
            self._leader_hint = leader
            self.clients.leader_changed(leader)

    def _log_catchup(self, now: float) -> None:
        """A progress line, at most once a second, while a learner copies from peers."""
        learner = self.node.learner
        if learner is None or learner.installed == self._catchup_logged[0]:
            return
        if now - self._catchup_logged[1] < CATCHUP_LOG_SECONDS:
            return
        log.info("catching up from peer learners: %d slots copied, applied up to slot %d, "
                 "%d to go", learner.installed, learner.decided_up_to, learner.catchup_remaining)
        self._catchup_logged = (learner.installed, now)
