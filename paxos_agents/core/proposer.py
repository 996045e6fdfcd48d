"""The proposer: leader election, phase 1 once, then phase 2 per slot.

Multi-Paxos as in Paxos Made Simple, section 3. A proposer that hears no
leader for `election_ticks` (plus seeded jitter, so contenders do not
collide forever) picks a ballot above every one it has seen and runs
phase 1 for *every* slot from its first undecided one. With a majority of
promises it becomes leader: it re-proposes, per slot, the value of the
highest ballot any promise reported (section 2.2, P2c), fills the holes
with no-ops, and from then on runs only phase 2, keeping up to `window`
slots in flight with up to `batch` commands each. A nack or a heartbeat
with a higher ballot deposes it.

Ballot reuse: a proposer persists its highest round before its Prepare
goes out (`Persist.round`, Paxos Made Simple section 2.5) and starts above
it after a restart. Safety depends on that. Fresh Prepares under a reused
ballot are refused (acceptors promise only strictly higher ballots), but a
Promise sent to the old incarnation and still in flight (delayed, or
duplicated) would complete the new incarnation's phase 1 under the reused
ballot: the TLA+ mutant `LoseRound` in tests/tla finds exactly that.

Reconfiguration (configs.py, the alpha approach). Slot s belongs to
config(s), known once every decision below s - alpha + 1 is known
(`history`, fed with decided values in slot order). So:

- a leader sends Accept for s only to config(s), only while
  s < known + alpha (the alpha bound; `window` bounds the slots in
  flight too), and counts only config(s)'s members for s;
- phase 1 needs a majority of each configuration governing a slot >= its
  first slot (promises.py), and adopts per slot only votes reported by
  config(s)'s members;
- a leader that learns a new configuration (decided at i, governing from
  i + alpha) prepares its new members under the same ballot and proposes
  nothing from i + alpha on until a majority of them promised; if they do
  not within `election_ticks`, it runs phase 1 again under a new ballot;
- it fills slots up to i + alpha - 1 (with commands, else no-ops) at once,
  so the change takes effect promptly on an idle cluster.

A proposer that missed decisions (a follower hears only heartbeats) learns
the history from the learners' `Stored` reports, and runs phase 1 from the
first slot its history has not fed, so phase 1 itself feeds the rest.

The bookkeeping for all this (the history, whom this ballot asked, the
learners' reports, config commands) is a `Reconfiguration` (reconfig.py)
that the proposer composes; this module keeps the rules' order.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterable

from .commands import NOOP, Command, Value
from .config import Membership, Settings
from .configs import Config, History, is_config_request
from .ids import ZERO_BALLOT, Ballot
from .messages import (
    Accept,
    Accepted,
    ClientRequest,
    Decide,
    Heartbeat,
    Nack,
    Promise,
    Retry,
    Stored,
    Vote,
)
from .outbox import Outbox
from .promises import Promises
from .ready import Record
from .reconfig import Reconfiguration


#: The decided prefix is persisted when it grew by this many slots.
FLOOR_EVERY = 1024
#: Decided values kept in memory below the decided prefix (to answer Retries
#: with a Decide); older ones are forgotten, so memory does not grow with the log.
KEEP_DECIDED = 64
#: A batch's encoding (commands.py, "Batch layout"): a u32 count, then per
#: command a u16 id length, a u32 payload length and an i64 stamp.
_BATCH_HEAD = 4
_PER_COMMAND = 2 + 4 + 8


class Phase(str, Enum):
    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(slots=True)
class InFlight:
    """A slot in phase 2: the value proposed, its configuration, and the
    members of it that accepted."""

    value: Value
    sent_at: int
    config: Config
    accepted: set[str] = field(default_factory=set)


@dataclass(slots=True)
class ProposerStats:
    """Counters a runtime exports as metrics."""

    elections: int = 0
    leader_changes: int = 0
    proposals: int = 0
    decisions: int = 0
    nacks: int = 0
    forwarded: int = 0
    retries_requested: int = 0
    retries_performed: int = 0
    retries_suppressed: int = 0
    accept_resends: int = 0
    retries_compacted: int = 0
    config_refused: int = 0
    alpha_waits: int = 0


class Proposer:
    """One proposer's state. Only the leader proposes; followers forward."""

    def __init__(
        self,
        node_id: str,
        membership: Membership,
        settings: Settings,
        record: Record,
        out: Outbox,
        rng: random.Random,
        history: History | None = None,
    ) -> None:
        self.node_id = node_id
        self.membership = membership
        self.settings = settings
        self._out = out
        self._rng = rng
        self.stats = ProposerStats()
        self.phase = Phase.FOLLOWER
        #: Highest round this proposer has used (persisted before use).
        self.round = record.round
        self.ballot: Ballot = ZERO_BALLOT
        #: Highest ballot seen from any leader or nack: the one to beat.
        self.leader_ballot: Ballot = ZERO_BALLOT
        self.leader: str | None = None
        self.now = 0
        self._leader_heard = 0
        self._deadline = self._election_deadline(first=True)
        self._next_heartbeat = 0
        # Phase 1 state.
        self._first_slot = 0
        self._promises = Promises(0)
        #: As leader: every slot below this must be filled (no-ops if nothing else).
        self._must_fill = 0
        # Phase 2 state (leader only).
        self.next_slot = 0
        self.inflight: dict[int, InFlight] = {}
        self.pending: deque[Command] = deque()
        self._outstanding: set[str] = set()
        # Knowledge of decisions: values known, and the gap-free prefix.
        self.chosen: dict[int, Value] = {}
        self.decided_up_to = record.floor
        self._persisted_floor = record.floor
        #: slot -> the last value this proposer proposed there, in any ballot.
        self.remembered: dict[int, Value] = {}
        self._retried_at: dict[int, int] = {}
        #: The lowest slot a learner asked for that our phase 1 does not cover.
        self._retry_floor: int | None = None
        self._reelected_at = -(10**9)
        #: The highest compaction point an acceptor told us: every slot below
        #: it is decided and stored by every learner (see Acceptor.on_stored).
        self.compacted = 0
        #: `chosen` holds no values below this slot any more.
        self._forgotten_below = 0
        #: The configurations, phase 1 across them, the learners' reports.
        self.reconfig = Reconfiguration(
            node_id, out, history or History.initial(settings.alpha, membership.acceptors),
            adopt=self._adopt)

    @property
    def history(self) -> History:
        """The configurations, fed with decisions in slot order (configs.py)."""
        return self.reconfig.history

    @history.setter
    def history(self, history: History) -> None:
        self.reconfig.history = history

    # ----------------------------------------------------------------- time

    def tick(self) -> None:
        """Advance one tick: heartbeat and resend as leader, else maybe run."""
        self.now += 1
        if self.phase is Phase.LEADER:
            if self.now >= self._next_heartbeat:
                self._heartbeat()
            self._resend_stale_accepts()
            waiting_since = self.reconfig.waiting_since
            if (waiting_since is not None
                    and self.now - waiting_since >= self.settings.election_ticks):
                # New members did not promise (lost, or compacted past our
                # first slot): LEADER -> CANDIDATE under a new ballot.
                self._start_election(self._first_undecided())
                return
            self.propose_pending()
            return
        if self.now >= self._deadline:
            # FOLLOWER -> CANDIDATE: no leader heard for election_ticks + jitter.
            # CANDIDATE -> CANDIDATE: phase 1 did not finish in time.
            self._start_election(self._first_undecided())
        elif self.pending:
            self._forward_pending()

    def _election_deadline(self, first: bool = False) -> int:
        ticks = self.settings.election_ticks
        if first:
            # At start-up nobody leads yet: run soon, still jittered apart.
            return self.now + 1 + self._rng.randrange(ticks)
        return self.now + ticks + self._rng.randrange(ticks + 1)

    # ------------------------------------------------------------ elections

    def _first_undecided(self) -> int:
        """Where phase 1 starts: our first undecided slot, or lower if a learner
        asked. If we do not know that slot's configuration (we heard of
        decisions, not their values), the first slot our history has not fed:
        phase 1 then decides those slots again, and their values feed it."""
        first = self.decided_up_to + 1
        if not self.history.knows(first):
            first = self.history.known
        if self._retry_floor is not None:
            first = min(first, self._retry_floor)
        # Never below the compaction point: acceptors refuse it (nothing there to recover).
        return max(first, self.compacted)

    def _start_election(self, first_slot: int) -> None:
        if not self.history.knows(first_slot):
            # The acceptors compacted past what our history has fed: we do not
            # know whom to ask. Wait for a learner's Stored (it carries the history).
            self.stats.alpha_waits += 1
            if self.phase is not Phase.FOLLOWER:
                self._step_down(leader=None)
            self._deadline = self._election_deadline()
            return
        # Pick a round above every ballot seen, persist it, then Prepare.
        self.round = max(self.round, self.leader_ballot.round, self.ballot.round) + 1
        self._out.round = self.round
        self.ballot = Ballot(self.round, self.node_id)
        if self.phase is Phase.LEADER:
            self._requeue_inflight()
        self.phase = Phase.CANDIDATE
        self.stats.elections += 1
        self._first_slot = first_slot
        self._retry_floor = None  # this phase 1 covers it
        self._promises = Promises(first_slot)
        self.reconfig.new_ballot()
        self._deadline = self._election_deadline()
        self._prepare_missing()

    def _prepare_missing(self) -> None:
        """Send this ballot's Prepare to the members of every known configuration
        from our first slot that were not asked yet."""
        self.reconfig.prepare_missing(self.ballot, self._first_slot, self.now,
                                      leader=self.phase is Phase.LEADER)

    def _prepared(self) -> bool:
        """Whether a majority of each known configuration from our first slot promised."""
        return self.reconfig.prepared(self._promises, self._first_slot)

    def on_promise(self, m: Promise) -> None:
        """Phase 1b: collect promises for our ballot; a majority of each
        configuration makes a candidate leader (and lets a leader use a new one)."""
        if m.compacted > self.compacted:
            # A new member's promise may carry a point above our first slot
            # (seed 6435 --reconfig), even above slots we have in flight.
            self._note_compacted(m.compacted)
        if self.phase is Phase.FOLLOWER or m.ballot != self.ballot:
            return
        self._promises.add(m)
        if self.phase is Phase.CANDIDATE:
            if self._prepared():
                self._become_leader()
        elif self._prepared():
            self.reconfig.stop_waiting()  # every new member we need promised

    def _become_leader(self) -> None:
        # CANDIDATE -> LEADER: a majority of each configuration promised
        # self.ballot for every slot >= first_slot. Per slot, the value of the
        # highest ballot its configuration's members reported must be proposed
        # again (P2c); slots nobody reported are free (propose_pending fills).
        self.phase = Phase.LEADER
        self.leader = self.node_id
        self.leader_ballot = self.ballot
        self.stats.leader_changes += 1
        self.inflight = {}
        self.next_slot = max(self._first_slot, self.compacted)
        # Fill the holes below the highest slot reported, and the run-up to a
        # change decided but not yet governing (the leader before us may not have).
        self._must_fill = max(self._promises.highest_reported + 1, self.history.latest.first_slot)
        self._heartbeat()
        self.propose_pending()

    def _adopted(self, slot: int, config: Config) -> Vote | None:
        """The vote to propose again in `slot`: the highest ballot reported by config(slot)."""
        return self._promises.highest(slot, config)

    def on_nack(self, m: Nack) -> None:
        """An acceptor promised a higher ballot: stop, back off, let it lead.

        A Nack that only says our Prepare or Accept was below the acceptor's
        compaction point moves us above it instead: those slots are decided.
        """
        if m.ballot != self.ballot or self.phase is Phase.FOLLOWER:
            return
        if m.compacted > self.compacted or (
                self.inflight and min(self.inflight) < m.compacted):
            self._note_compacted(m.compacted)
        if m.promised <= m.ballot:
            # Refused for compaction only. CANDIDATE -> CANDIDATE: a phase 1
            # that started below the point can never finish; run it again
            # from above the point (a new ballot, as every phase 1 needs).
            if self.phase is Phase.CANDIDATE and self._first_slot < self.compacted:
                self._start_election(self._first_undecided())
            return
        self.stats.nacks += 1
        if m.promised > self.leader_ballot:
            self.leader_ballot = m.promised
        self._step_down(leader=None)

    def suspect(self, node_id: str) -> None:
        """A failure detector outside the protocol says `node_id` is down.

        If it is the leader we follow, run for leader soon (within a tick
        or two, still jittered) instead of waiting out the election
        timeout. Only liveness depends on this hint: acting on a wrong
        one costs an election, never safety.
        """
        if self.phase is Phase.FOLLOWER and self.leader == node_id and node_id != self.node_id:
            self.leader = None
            self._deadline = min(self._deadline, self.now + 1 + self._rng.randrange(3))

    def on_heartbeat(self, m: Heartbeat) -> None:
        """A leader is alive; follow it if its ballot is the highest seen."""
        if m.ballot < self.leader_ballot:
            return
        self.leader_ballot = m.ballot
        self._leader_heard = self.now
        if m.decided_up_to > self.decided_up_to:
            # Decided below there: no need to run phase 1 for those slots.
            self.decided_up_to = m.decided_up_to
            self._note_floor()
        if m.src == self.node_id:
            return
        if self.phase is not Phase.FOLLOWER and m.ballot > self.ballot:
            self._step_down(leader=m.src)
        else:
            self.leader = m.src
            self._deadline = self._election_deadline()
        self._forward_pending()

    def _step_down(self, leader: str | None) -> None:
        # LEADER/CANDIDATE -> FOLLOWER: someone holds a higher ballot.
        if self.phase is Phase.LEADER:
            self._requeue_inflight()
        self.phase = Phase.FOLLOWER
        self.leader = leader
        self._promises = Promises(0)
        self.reconfig.stop_waiting()
        self._deadline = self._election_deadline()
        self._forward_pending()

    def _requeue_inflight(self) -> None:
        # Commands in undecided slots may be lost with our ballot; queue them
        # again. If they were decided after all, learners apply them once.
        # They are still outstanding, so they go straight back to pending.
        for slot in sorted(self.inflight, reverse=True):
            self.pending.extendleft(reversed(self.inflight[slot].value))
        self.inflight = {}

    # ------------------------------------------------------- client commands

    def on_request(self, m: ClientRequest) -> None:
        """Propose a command as leader, else forward it to the leader."""
        command = m.command
        if command.request_id in self._outstanding:
            return  # already queued or in flight here
        if is_config_request(command.request_id) and m.src not in self.membership.proposers:
            self.stats.config_refused += 1  # reserved: only propose_config makes one
            return
        if self.phase is not Phase.LEADER and m.src in self.membership.proposers:
            # Forwarded once already: hold it rather than bounce it around.
            self._queue_commands((command,))
            return
        if self.phase is not Phase.LEADER and self._leader_alive():
            self.stats.forwarded += 1
            self._out.now.append(ClientRequest(src=self.node_id, dst=self.leader, command=command))
            return
        self._queue_commands((command,))  # proposed by propose_pending(), at ready()

    def on_client_commands(self, commands: tuple[Command, ...]) -> None:
        """Commands straight from a client, as `on_request` treats each one:
        queued to propose as leader, else forwarded to the leader (or held
        until one is known). One call per batch a client sent. A command with
        a request id reserved for config commands is dropped."""
        if any(is_config_request(c.request_id) for c in commands):
            kept = tuple(c for c in commands if not is_config_request(c.request_id))
            self.stats.config_refused += len(commands) - len(kept)
            commands = kept
        if self.phase is not Phase.LEADER and self._leader_alive():
            fresh = [c for c in commands if c.request_id not in self._outstanding]
            self.stats.forwarded += len(fresh)
            for command in fresh:
                self._out.now.append(
                    ClientRequest(src=self.node_id, dst=self.leader, command=command))
            return
        self._queue_commands(commands)  # proposed by propose_pending(), at ready()

    def is_outstanding(self, request_id: str) -> bool:
        """Whether `request_id` is queued or in flight here, not seen decided."""
        return request_id in self._outstanding

    def _leader_alive(self) -> bool:
        return (
            self.leader is not None
            and self.leader != self.node_id
            and self.now - self._leader_heard <= self.settings.election_ticks
        )

    def _forward_pending(self) -> None:
        if self.phase is Phase.LEADER or not self._leader_alive() or not self.pending:
            return
        while self.pending:
            command = self.pending.popleft()
            self._outstanding.discard(command.request_id)
            self.stats.forwarded += 1
            self._out.now.append(ClientRequest(src=self.node_id, dst=self.leader, command=command))

    def _queue_commands(self, commands: Iterable[Command], *, front: bool = False) -> None:
        commands = list(commands)
        rids = [c.request_id for c in commands]
        outstanding = self._outstanding
        if outstanding.isdisjoint(rids) and len(set(rids)) == len(rids):
            fresh = commands  # the usual case, in a few C-level passes
            outstanding.update(rids)
        else:
            fresh = []
            for command in commands:
                if command.request_id not in outstanding:
                    outstanding.add(command.request_id)
                    fresh.append(command)
        if front:
            self.pending.extendleft(reversed(fresh))
        else:
            self.pending.extend(fresh)

    def propose_pending(self) -> None:
        """As leader, put pending commands into new slots while the window allows.

        `Node.ready()` calls this, so the commands that arrived during one
        batch of steps share slots, up to `batch` each: a lone command goes
        out at once, a burst is batched (adaptive batching, as in
        Paxos Made Live's batching of requests).
        """
        if self.phase is not Phase.LEADER:
            return
        batch = self.settings.batch
        window = self.settings.window
        history = self.history
        # No-ops fill holes and the run-up to a new configuration only when
        # nothing is in flight (an idle cluster): under load commands fill
        # those slots, and a window of no-ops costs as much as a window of
        # commands (bench/reconfig.py: throughput during a change 0.46 of
        # steady with no-ops at once).
        idle = not self.inflight
        while len(self.inflight) < window:
            slot = self.next_slot
            if slot in self.chosen:
                self.next_slot += 1
                continue
            config = history.config_for(slot)
            if config is None:
                # The alpha bound: config(slot) depends on a decision we do not know yet.
                if self.pending:
                    self.stats.alpha_waits += 1
                return
            if not self.reconfig.usable(config, self._promises, self.ballot, self._first_slot,
                                        self.now):
                return  # a new configuration: its members promise first
            vote = self._adopted(slot, config)
            if vote is not None:
                value = vote.value
            elif self.pending:
                # Encoded once, here; the commands stay cached for requeues and learn().
                value = Value.of(self._next_batch(batch))
                self.stats.proposals += 1
            elif slot < self._must_fill and idle:
                value = NOOP  # a hole, or the run-up to a new configuration
            else:
                return
            lost = self.remembered.get(slot)
            if lost and lost != value:
                # Our earlier proposal in this slot did not survive; propose
                # its commands again (learners apply a request id once).
                self._queue_commands(lost, front=True)
            self.next_slot += 1
            self._send_accept(slot, value, config)

    def _next_batch(self, batch: int) -> list[Command]:
        """The commands of a new slot, taken from the front of `pending`: up
        to `batch` of them, while the slot's encoded value stays within
        `settings.slot_bytes` (`Value`'s layout: a 4-byte count, then per
        command 14 bytes, its request id's UTF-8 and its payload). The
        first is always taken, so a command larger than the budget goes
        alone in its slot: every slot fits in one frame (see Settings)."""
        pending = self.pending
        budget = self.settings.slot_bytes - _BATCH_HEAD
        count = min(batch, len(pending))
        taken = []
        for _ in range(count):
            command = pending[0]
            size = _PER_COMMAND + len(command.payload) + len(command.request_id.encode())
            if taken and size > budget:
                break
            budget -= size
            taken.append(pending.popleft())
        return taken

    # --------------------------------------------------------------- phase 2

    def _send_accept(self, slot: int, value: Value, config: Config) -> None:
        self.inflight[slot] = InFlight(value, self.now, config)
        self.remembered[slot] = value
        for acceptor in config.acceptors:
            self._out.now.append(
                Accept(src=self.node_id, dst=acceptor, ballot=self.ballot, slot=slot, value=value)
            )

    def _resend_stale_accepts(self) -> None:
        # Lost Accepts or Accepteds would stall a slot forever (the 2012
        # demo's bug); resend to the acceptors that have not answered.
        timeout = self.settings.accept_timeout_ticks
        for slot, flight in self.inflight.items():
            if self.now - flight.sent_at < timeout:
                continue
            flight.sent_at = self.now
            self.stats.accept_resends += 1
            for acceptor in flight.config.acceptors:
                if acceptor not in flight.accepted:
                    self._out.now.append(Accept(src=self.node_id, dst=acceptor,
                                                ballot=self.ballot, slot=slot, value=flight.value))

    def on_accepted(self, m: Accepted) -> None:
        """Phase 2b at the leader: a majority for our ballot decides the slot."""
        if self.phase is not Phase.LEADER or m.ballot != self.ballot:
            return
        flight = self.inflight.get(m.slot)
        if flight is None or m.src not in flight.config.acceptors:
            return  # a non-member's vote never counts for this slot
        flight.accepted.add(m.src)
        if len(flight.accepted) >= flight.config.majority:
            del self.inflight[m.slot]
            self.learn(m.slot, flight.value)  # the freed window is used at ready()

    def learn(self, slot: int, value: Value) -> None:
        """Record that `slot` decided `value` (from our own count, a Decide, or our learner)."""
        if slot in self.chosen:
            return
        self.chosen[slot] = value
        self.stats.decisions += 1
        self._outstanding.difference_update([c.request_id for c in value.commands])
        flight = self.inflight.pop(slot, None)
        if flight is not None and flight.value != value:
            # Another leader's value won this slot: ours must go in another.
            lost = [c for c in flight.value if c.request_id in self._outstanding]
            self.pending.extendleft(reversed(lost))
        while self.decided_up_to + 1 in self.chosen:
            self.decided_up_to += 1
        if self.history.known in self.chosen:
            self._set_history(self.reconfig.feed(self.chosen))
        self._note_floor()
        self._forget_decided()

    def _adopt(self, history: History) -> History:
        """The history this proposer keeps (a subclass may read it otherwise)."""
        return history

    def _set_history(self, history: History) -> None:
        added = self.reconfig.set_history(history)  # a change decided: persisted
        if not added or self.phase is Phase.FOLLOWER:
            return
        # New configurations govern slots >= their first slot: prepare their
        # members (propose_pending waits for a majority of them) and, as
        # leader, fill the slots before the change so it takes effect soon.
        self._prepare_missing()
        for config in added:
            self._must_fill = max(self._must_fill, config.first_slot)

    def on_stored(self, m: Stored) -> None:
        """A learner's log is durable up to `m.upto`; its history may tell us more."""
        if m.src not in self.membership.learners:
            return
        self.reconfig.note_stored(m.src, m.upto)
        if m.history is not None and m.history.known > self.history.known:
            self._set_history(self.reconfig.merged(m.history))

    @property
    def stored_by_all(self) -> int:
        """The lowest slot up to which every learner reported its log durable (-1: unknown)."""
        return self.reconfig.stored_by_all(self.membership.learners)

    def pending_change(self) -> Config | None:
        """The latest configuration if it is decided but not yet in force (see configs.py)."""
        return self.reconfig.pending_change(self.membership.learners)

    def propose_config(self, acceptors: tuple[str, ...]) -> Command:
        """Propose "the next epoch has `acceptors`" (forwarded to the leader if
        we do not lead). Returns the config command.

        Raises `ConfigError` (see `Reconfiguration.config_command`): an empty
        set or a repeated name, a change pending, or one proposed here not
        decided yet.
        """
        command = self.reconfig.config_command(tuple(acceptors), self.membership.learners,
                                               self._outstanding, issued=self.decided_up_to)
        if self.phase is not Phase.LEADER and self._leader_alive():
            self._out.now.append(ClientRequest(src=self.node_id, dst=self.leader, command=command))
        else:
            self._queue_commands((command,), front=True)
        return command

    def _note_floor(self) -> None:
        # Persist the decided prefix now and then (not each slot: it is only
        # an optimisation), so a restarted leader's phase 1 starts near it.
        if self.decided_up_to - self._persisted_floor >= FLOOR_EVERY:
            self._persisted_floor = self.decided_up_to
            self._out.floor = self.decided_up_to
            self._out.note_history(self.history)

    def on_decide(self, m: Decide) -> None:
        self.learn(m.slot, m.value)

    def _note_compacted(self, point: int) -> None:
        """Slots below `point` are decided and stored by every learner."""
        self.compacted = point = max(point, self.compacted)
        if self.decided_up_to < point - 1:
            self.decided_up_to = point - 1
            while self.decided_up_to + 1 in self.chosen:
                self.decided_up_to += 1
            self._note_floor()
        if self.phase is Phase.LEADER:
            # Our slots below the point were decided, maybe not with our
            # values: queue those commands again (learners apply a request id once).
            for slot in sorted(s for s in self.inflight if s < point):
                flight = self.inflight.pop(slot)
                self.pending.extendleft(reversed(
                    [c for c in flight.value if c.request_id in self._outstanding]))
            if self.next_slot < point:
                self.next_slot = point
        self._forget_decided()

    def _forget_decided(self) -> None:
        # Forget decided values well below the decided prefix: a learner
        # that misses one copies it from a peer learner, or (if none has it)
        # gets it through a new phase 1 (see on_retry).
        below = self.decided_up_to + 1 - KEEP_DECIDED
        if below - self._forgotten_below < KEEP_DECIDED:
            return
        for table in (self.chosen, self.remembered, self._retried_at):
            for slot in [s for s in table if s < below]:
                del table[slot]
        self._forgotten_below = below

    def _heartbeat(self) -> None:
        self._next_heartbeat = self.now + self.settings.heartbeat_ticks
        highest = max(self.next_slot - 1, max(self.chosen, default=-1))
        targets = dict.fromkeys((*self.membership.proposers, *self.membership.learners))
        targets.pop(self.node_id, None)
        for dst in targets:
            self._out.now.append(Heartbeat(src=self.node_id, dst=dst, ballot=self.ballot,
                                           highest_slot=highest, decided_up_to=self.decided_up_to))

    # ----------------------------------------------------------------- retry

    def on_retry(self, m: Retry) -> None:
        """A learner misses `m.slot`: re-send the decision, or decide it again.

        A given slot is retried at most once per `retry_cooldown_ticks`;
        re-upping the ballot more often could keep it from ever being
        decided. A retry that needs phase 1 proposes what phase 1 reports,
        else what we remember proposing there, else a no-op; never None.
        """
        slot = m.slot
        self.stats.retries_requested += 1
        if slot < self.compacted:
            # Every learner stored it: the asking learner copies it from a
            # peer (state transfer); a new ballot here is refused by the
            # acceptors and could only do harm.
            self.stats.retries_compacted += 1
            return
        value = self.chosen.get(slot)
        if value is not None:
            self._out.now.append(Decide(src=self.node_id, dst=m.src, slot=slot, value=value))
            return
        if self.phase is not Phase.LEADER and self._leader_alive():
            self._out.now.append(Retry(src=m.src, dst=self.leader, slot=slot))
            return
        last = self._retried_at.get(slot)
        if last is not None and self.now - last < self.settings.retry_cooldown_ticks:
            self.stats.retries_suppressed += 1
            return
        self._retried_at[slot] = self.now
        self.stats.retries_performed += 1
        forgotten = slot < self._forgotten_below  # decided, value no longer in memory
        if self.phase is Phase.LEADER and slot >= self._first_slot and not forgotten:
            flight = self.inflight.get(slot)
            if flight is not None:
                flight.sent_at = -self.settings.accept_timeout_ticks  # resend now
                self._resend_stale_accepts()
                return
            # Phase 1 covered this slot and found it empty: fill it and any
            # slots before it with no-ops (an older leader announced them).
            self._must_fill = max(self._must_fill, slot + 1)
            return
        # Below our phase 1 (or no phase 1 at all): a new ballot is needed.
        # One phase 1 covers every slot from its first, so it starts from the
        # lowest slot asked for, and a leader (deposing nobody but itself)
        # runs one at most once per cooldown: a lagging learner asks for many
        # slots at once, and an election per slot would be a storm.
        self._retry_floor = slot if self._retry_floor is None else min(self._retry_floor, slot)
        if self.phase is not Phase.LEADER:
            # A follower runs for leader only when its election timer says so
            # (jittered, backing off after nacks); its phase 1 then starts
            # from _retry_floor. Running at every retry would duel forever.
            return
        if self.now - self._reelected_at < self.settings.retry_cooldown_ticks:
            return
        self._reelected_at = self.now
        self._start_election(self._first_undecided())
