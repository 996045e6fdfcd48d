"""A node: the roles one agent plays, sharing one state and one outbox.

A proposer, an acceptor or a learner node plays one role; a *replica*
plays all three (the collapsed roles of the 2012 demo's to-do list). The
roles are composed, not inherited, and share the node's outbox and its
knowledge: a replica's proposer learns decisions from its own learner.

A message a node sends to itself (a replica's Prepare to its own
acceptor) comes back out of `ready()` like any other and the runtime
delivers it locally after the persist, as etcd/raft does with a leader's
own vote: a vote must be durable before anyone, its own node included,
acts on it.
"""

from __future__ import annotations

import random
from typing import assert_never

from .acceptor import Acceptor
from .commands import Command
from .config import Membership, Settings
from .learner import Learner
from .messages import (
    Accept,
    Accepted,
    ClientRequest,
    Decide,
    Heartbeat,
    Message,
    Nack,
    Prepare,
    Promise,
    Retry,
)
from .outbox import Outbox
from .proposer import Phase, Proposer
from .ready import Ready, Record


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
    ) -> None:
        settings = settings or Settings()
        record = record if record is not None else Record()
        self.node_id = node_id
        self.membership = membership
        self.settings = settings
        self.roles = membership.roles(node_id)
        if not self.roles:
            raise ValueError(f"{node_id!r} is not a member of the cluster")
        self._out = Outbox()
        self.acceptor = (
            Acceptor(node_id, membership.learners, record, self._out,
                     accept_without_promise="accept-without-promise" in settings.plant)
            if "acceptor" in self.roles else None
        )
        self.proposer = (
            Proposer(node_id, membership, settings, record, self._out,
                     rng or random.Random(node_id))
            if "proposer" in self.roles else None
        )
        self.learner = (
            Learner(node_id, membership, settings, record, self._out,
                    on_decided=self.proposer.learn if self.proposer else None)
            if "learner" in self.roles else None
        )
        if self.proposer is not None and self.learner is not None:
            for slot, value in self.learner.decided.items():
                self.proposer.learn(slot, value)
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

    def suspect(self, node_id: str) -> None:
        """A hint that `node_id` is down (e.g. its process died): see Proposer.suspect."""
        if self.proposer:
            self.proposer.suspect(node_id)

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
        return self._out.drain()

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
            out["inflight"] = len(p.inflight)
            out["pending"] = len(p.pending)
        if self.acceptor:
            out["prepares_rejected"] = self.acceptor.prepares_rejected
            out["accepts_rejected"] = self.acceptor.accepts_rejected
            out["promised_round"] = self.acceptor.promised.round
        if self.learner:
            out["decided_up_to"] = self.learner.decided_up_to
            out["decided"] = len(self.learner.decided)
            out["retries_sent"] = self.learner.retries_sent
        return out
