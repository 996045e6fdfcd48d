"""A node: the roles one agent plays, sharing one state and one outbox.

A proposer, an acceptor or a learner node plays one role; a *replica*
plays all three (the collapsed roles of the 2012 demo's to-do list). The
roles are composed, not inherited, and share the node's outbox and its
knowledge: a replica's proposer learns decisions from its own learner.

A node's durable state is written by its runtime (`Ready.persist`) and
read back through a `DurableLog` (store.py); a node built without one is
its own in-memory store: it applies each `Persist` to its `Record` itself.

A message a node sends to itself (a replica's Prepare to its own
acceptor) comes back out of `ready()` like any other and the runtime
delivers it locally after the persist, as etcd/raft does with a leader's
own vote: a vote must be durable before anyone, its own node included,
acts on it.

The acceptors that form quorums come from the configuration history
(configs.py), not from `membership`: `membership.acceptors` is only epoch
0's set when the node has no stored history yet, and tells whether this
node is an acceptor.
"""

from __future__ import annotations

import random
from typing import Sequence, assert_never

from .acceptor import Acceptor
from .commands import Command, Value
from .committime import CommitTimes
from .settings import Membership, Settings
from .configs import History
from .intake import Conflict
from .learner import Learner
from .messages import (
    Accept,
    Accepted,
    Chunk,
    ClientRequest,
    Decide,
    Fetch,
    Heartbeat,
    Message,
    Nack,
    Prepare,
    Promise,
    Retry,
    Stored,
)
from .outbox import Outbox
from .plants import acceptor_class, learner_class, proposer_class
from .proposer import Phase, Proposer
from .ready import Ready, Record
from .status import ConfigStatus, NodeStatus
from .store import DurableLog


class Node:
    """One agent's protocol state. Feed it messages and ticks; drain `ready()`.

    Not thread-safe. The only inputs are `step`, `propose` and `tick`; the
    only output is `ready()`. It reads no clock, no global randomness and
    does no I/O, so the simulator and the agent processes run the same code.
    """

    def __init__(
        self,
        node_id: str,
        membership: Membership,
        settings: Settings | None = None,
        record: Record | None = None,
        rng: random.Random | None = None,
        store: DurableLog | None = None,
    ) -> None:
        """`record` is what the store's `load()` returned; `store` reads the rest.

        Without `store`, `record` itself is the store: `ready()` applies each
        `Persist` to it (tests, and anything that keeps state only in memory).
        """
        settings = settings or Settings()
        record = record if record is not None else Record()
        self._own_record = record if store is None else None
        store = store if store is not None else record
        self.node_id = node_id
        self.membership = membership
        self.settings = settings
        self.roles = membership.roles(node_id)
        if not self.roles:
            raise ValueError(f"{node_id!r} is not a member of the cluster")
        self._out = Outbox()
        history = None
        if self.roles & {"proposer", "learner"}:
            if record.configs is not None:
                history = History.from_json(record.configs)
                self._out.history_known = history.known
            else:
                # Epoch 0 is written with the first change (or the proposer's
                # floor); until then the membership's acceptors are epoch 0,
                # so a runtime that changes them must seed `Record.configs`.
                history = History.initial(settings.alpha, membership.acceptors)
        self.acceptor: Acceptor | None = (
            acceptor_class(settings.plant)(node_id, membership.learners, record, self._out, store)
            if "acceptor" in self.roles else None
        )
        self.proposer: Proposer | None = (
            proposer_class(settings.plant)(node_id, membership, settings, record, self._out,
                                           rng or random.Random(node_id), history)
            if "proposer" in self.roles else None
        )
        self.learner: Learner | None = (
            learner_class(settings.plant)(node_id, membership, settings, record, self._out, store,
                                          on_decided=self.proposer.learn if self.proposer else None,
                                          history=history)
            if "learner" in self.roles else None
        )
        if self.proposer is not None and self.learner is not None:
            # A replica's proposer starts from what its own learner applied.
            self.proposer.catch_up(self.learner.decided_up_to, self.learner.history,
                                   self.learner.unapplied())
        #: Messages this node could not handle (wrong role): counted, dropped.
        self.dropped = 0

    # ---------------------------------------------------------------- inputs

    def step(self, msg: Message) -> None:
        """Handle one message addressed to this node."""
        a, p, l = self.acceptor, self.proposer, self.learner
        match msg:
            case Prepare():
                if a: a.on_prepare(msg)
                else: self.dropped += 1
            case Accept():
                if a: a.on_accept(msg)
                else: self.dropped += 1
            case Promise():
                if p: p.on_promise(msg)
                else: self.dropped += 1
            case Nack():
                if p: p.on_nack(msg)
                else: self.dropped += 1
            case Accepted():
                if p: p.on_accepted(msg)
                if l: l.on_accepted(msg)
                if not (p or l): self.dropped += 1
            case Decide():
                if p: p.on_decide(msg)
                if l: l.on_decide(msg)
                if not (p or l): self.dropped += 1
            case Heartbeat():
                if p: p.on_heartbeat(msg)
                if l: l.on_heartbeat(msg)
                if not (p or l): self.dropped += 1
            case Retry():
                if p: p.on_retry(msg)
                else: self.dropped += 1
            case Stored():
                if a: a.on_stored(msg)
                if l: l.on_stored(msg)
                if p: p.on_stored(msg)
            case Fetch():
                if l: l.on_fetch(msg)
                else: self.dropped += 1
            case Chunk():
                if l: l.on_chunk(msg)
                else: self.dropped += 1
            case ClientRequest():
                if p: p.on_request(msg)
                else: self.dropped += 1
            case _:
                assert_never(msg)

    def propose(self, command: Command, client: str = "client") -> None:
        """A client submits `command` here (a proposer: proposes or forwards it)."""
        if self.proposer is None:
            raise ValueError(f"{self.node_id} is not a proposer")
        self.proposer.on_request(ClientRequest(src=client, dst=self.node_id, command=command))

    def propose_batch(self, commands: Value | Sequence[Command]) -> list[Conflict]:
        """A client submits several commands at once, a `Value` as its PROPOSE
        frame carried them (or a sequence of commands, encoded here; see
        `Proposer.on_client_commands`).

        Returns the commands refused, each with the one outstanding here
        under its request id with another payload (see intake.py); the others
        are proposed, forwarded to the leader, or dropped as repeats. The
        refusal is the answer to this call, not part of `ready()`: the caller
        holds the client that sent the batch, and only it needs the answer.
        """
        if self.proposer is None:
            raise ValueError(f"{self.node_id} is not a proposer")
        batch = commands if isinstance(commands, Value) else Value.of(commands)
        return self.proposer.on_client_commands(batch)

    def propose_config(self, acceptors: tuple[str, ...] | list[str]) -> Command:
        """Propose that the next epoch's acceptors be `acceptors` (a proposer only).

        The change is a command decided like any other; decided in slot i it
        governs slots >= i + alpha, and it is *in force* once every learner
        stored every slot below that (`configuration().pending` is None
        again). Returns the config command (its request id is reserved).
        Raises `ConfigError` (a ValueError) for an empty set, repeated
        names, or while a change is pending; ValueError on a non-proposer.
        """
        if self.proposer is None:
            raise ValueError(f"{self.node_id} is not a proposer")
        return self.proposer.propose_config(tuple(acceptors))

    def status(self) -> NodeStatus:
        """Who this node believes leads, its ballot, its applied prefix and its
        configurations, as one value (the runtime's heartbeat reads this)."""
        p, le = self.proposer, self.learner
        return NodeStatus(leading=p is not None and p.phase is Phase.LEADER,
                          ballot=p.ballot if p is not None else None,
                          leader=p.leader if p is not None else None,
                          decided_up_to=le.decided_up_to if le is not None else None,
                          config=self.configuration())

    def configuration(self) -> ConfigStatus | None:
        """The configurations as this node knows them, for status and metrics
        (None on an acceptor-only node: acceptors need not know them)."""
        role = self.learner if self.learner is not None else self.proposer
        if role is None:
            return None
        history = role.history
        return ConfigStatus(epoch=history.latest.epoch,
                            in_force=history.in_force(role.stored_by_all),
                            pending=role.pending_change(), alpha=history.alpha,
                            known=history.known, history=history)

    def suspect(self, node_id: str) -> None:
        """A hint that `node_id` is down (e.g. its process died): see Proposer.suspect."""
        if self.proposer:
            self.proposer.suspect(node_id)

    def set_membership(self, membership: Membership) -> None:
        """Adopt a new set of proposers and learners, live (`paxosctl apply`).

        This node's own roles must stay as they are (ValueError otherwise).
        `membership.acceptors` may differ but changes nothing: quorums come
        from the configuration history, changed only by `propose_config`.
        Agreement does not depend on who proposes or learns. What changes:

        - acceptors send Accepted to, and compact below what is stored by,
          the new learners only (a removed learner no longer holds the
          compaction point back; an added one holds it where it is until it
          reports, and starts empty, copying from a peer learner);
        - a leader heartbeats the new proposers and learners; a follower
          forwards to its leader as before (SUSPECT says when it is gone);
        - learners report to, fetch from and retry at the new members.
        """
        if membership.roles(self.node_id) != self.roles:
            raise ValueError(f"{self.node_id}'s roles cannot change while it runs")
        self.membership = membership
        if self.acceptor is not None:
            self.acceptor.set_learners(membership.learners)
        if self.proposer is not None:
            self.proposer.membership = membership
            leader = self.proposer.leader
            if leader is not None and leader not in membership.proposers:
                self.proposer.suspect(leader)  # removed: run soon rather than wait it out
        if self.learner is not None:
            self.learner.set_membership(membership)

    def admitted(self) -> None:
        """The runtime admitted this node's new store (runtime/admission.py):
        until now nothing it sent left. A learner reports its log again at
        the next tick, so a peer learner ahead of it answers and the state
        transfer starts at once, rather than after its next scheduled report
        (ten `stored_ticks`), by when Retries to the proposers may have
        fetched the log slot by slot."""
        if self.learner is not None:
            self.learner.peers.report_again()

    def set_time(self, seconds: float) -> None:
        """The runtime's monotonic clock reads `seconds` (once per loop turn).

        Only for timing (the commit-duration histogram: committime.py):
        commands that arrive and slots decided from now on are stamped with
        it. Nothing the protocol decides depends on it; ticks are its time.
        """
        if self.proposer is not None:
            self.proposer.commit_times.now = seconds

    @property
    def commit_times(self) -> CommitTimes | None:
        """A proposer's commit-duration histogram (committime.py); None without a proposer."""
        return self.proposer.commit_times if self.proposer is not None else None

    def tick(self) -> None:
        """One unit of time passed."""
        if self.proposer:
            self.proposer.tick()
        if self.learner:
            self.learner.tick()

    def ready(self) -> Ready:
        """Drain everything produced since the last call.

        The caller must make `persist` durable before it sends
        `send_after_persist`; see ready.py.
        """
        if self.proposer is not None:
            self.proposer.propose_pending()
        ready = self._out.drain()
        if self._own_record is not None and ready.persist:
            self._own_record.apply(ready.persist)
        if self.learner is not None:
            self.learner.drained()
        return ready

    # ------------------------------------------------------------- queries

    @property
    def is_leader(self) -> bool:
        return self.proposer is not None and self.proposer.phase is Phase.LEADER

    def stats(self) -> dict[str, int]:
        """Counters and gauges for metrics and `status`."""
        out: dict[str, int] = {"dropped": self.dropped}
        if self.proposer:
            p = self.proposer
            out.update({f"proposer_{k}": getattr(p.stats, k) for k in p.stats.__slots__})
            out["ballot_round"] = p.ballot.round
            out["is_leader"] = int(p.phase is Phase.LEADER)
            out["inflight"] = len(p.pipeline.inflight)
            out["pending"] = len(p.intake.pending)
        if self.acceptor:
            out["prepares_rejected"] = self.acceptor.prepares_rejected
            out["accepts_rejected"] = self.acceptor.accepts_rejected
            out["promised_round"] = self.acceptor.promised.round
            out["compacted"] = self.acceptor.compacted
            out["compacted_refusals"] = self.acceptor.compacted_refusals
        if self.learner:
            le = self.learner
            out["decided_up_to"] = le.decided_up_to
            out["decided"] = le.decided_count
            out["retries_sent"] = le.retries_sent
            out["log_start"] = le.log_start
            out["fetches_sent"] = le.peers.fetches_sent
            out["chunks_served"] = le.peers.chunks_served
            out["installed"] = le.installed
            out["catchup_remaining"] = le.catchup_remaining
            out["expired"] = le.once.expired
            out["applied_commands"] = le.once.applied_commands
            out["id_filter_saves"] = le.once.filters_saved
        status = self.configuration()
        if status is not None:
            out["config_epoch"] = status.epoch
            out["config_in_force_epoch"] = status.in_force.epoch
            out["config_pending_slot"] = status.pending.first_slot if status.pending else -1
        return out
