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

The proposer is built of rooms, one per phase of its life (in the shape of
etcd-io/raft's becomeX/stepX), each owning its state behind its methods:

- `Election` (election.py): phase 1: ballot and round, first slot, whom
  this ballot asked, the promises, a majority of every configuration;
- `Pipeline` (pipeline.py): phase 2: the slots in flight, their resends,
  the slots that must be filled, what we proposed in each slot;
- `Intake` (intake.py): commands queued to propose or forwarded to the
  leader (`route`), the request-id table of the commands outstanding here
  (a repeat with another payload is a `Conflict`), requeues;
- `Decisions` (decided.py): the values known decided, the decided prefix
  and its persisted floor, the compaction point, where phase 1 starts;
- `Reconfiguration` (reconfig.py): the configuration history, the
  learners' reports, config commands;
- `Heartbeats` (heartbeats.py): when a leader next heartbeats, and whom;
- `Retries` (retries.py): a learner's Retry answered (the decision sent
  again, or the Retry forwarded to the leader) and how often one may cost
  work; `on_retry` decides again what it cannot answer.

Each room sends into the node's outbox and counts into `stats`; none reads
another's state: what one needs of another (the history, the leader to
forward to) is passed in its calls.

`Proposer` itself keeps the role state machine (FOLLOWER, CANDIDATE,
LEADER: `_start_election`, `_become_leader`, `_step_down`), its election
timer, when it heartbeats (the heartbeat's content is the rooms' state),
and the order in which the rules call the rooms.
"""

from __future__ import annotations

import random
from enum import Enum

from .commands import NOOP, Command, Value, is_noop
from .committime import CommitTimes
from .settings import Membership, Settings
from .configs import Config, History
from .decided import Decisions
from .election import Election
from .heartbeats import Heartbeats
from .ids import ZERO_BALLOT, Ballot
from .intake import Conflict, Intake
from .messages import Accepted, ClientRequest, Decide, Heartbeat, Nack, Promise, Retry, Stored
from .outbox import Outbox
from .pipeline import Pipeline
from .ready import Record
from .reconfig import Reconfiguration
from .retries import Retries
from .stats import ProposerStats

__all__ = ["Phase", "Proposer", "ProposerStats"]


class Phase(str, Enum):
    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"


class Proposer:
    """One proposer's role state machine over its rooms. Only the leader proposes;
    followers forward."""

    #: The rooms; a subclass may swap one for a deliberately broken one
    #: (the known bugs the simulator must catch).
    election_class: type[Election] = Election
    reconfig_class: type[Reconfiguration] = Reconfiguration

    def __init__(self, node_id: str, membership: Membership, settings: Settings, record: Record,
                 out: Outbox, rng: random.Random, history: History | None = None) -> None:
        self.node_id = node_id
        self.membership = membership
        self.settings = settings
        self._out = out
        self._rng = rng
        self.stats = ProposerStats()
        self.phase = Phase.FOLLOWER
        #: Highest ballot seen from any leader or nack: the one to beat.
        self.leader_ballot: Ballot = ZERO_BALLOT
        self.leader: str | None = None
        self.now = 0
        self._leader_heard = 0
        self._deadline = self._election_deadline(first=True)
        self.election = self.election_class(node_id, out, record.round)
        #: The runtime's clock reading, and the commit-duration histogram (committime.py).
        self.commit_times = CommitTimes()
        self.pipeline = Pipeline(node_id, out, self.commit_times)
        self.intake = Intake(node_id, out, self.stats, self.commit_times)
        self.decisions = Decisions(out, record.floor)
        self.heartbeats = Heartbeats(node_id, out, settings.heartbeat_ticks)
        self.retries = Retries(node_id, out, settings.retry_cooldown_ticks, self.stats)
        self.reconfig = self.reconfig_class(
            out, history or History.initial(settings.alpha, membership.acceptors))

    # ------------------------------------------------- what others read of the rooms

    @property
    def history(self) -> History:
        """The configurations, fed with decisions in slot order (configs.py)."""
        return self.reconfig.history

    @property
    def ballot(self) -> Ballot:
        """Our current ballot (ZERO_BALLOT before our first phase 1)."""
        return self.election.ballot

    @property
    def decided_up_to(self) -> int:
        """Every slot up to this one is decided."""
        return self.decisions.decided_up_to

    def catch_up(self, decided_up_to: int, history: History,
                 decisions: list[tuple[int, Value]]) -> None:
        """Start from what a replica's own learner applied: its decided prefix,
        its history and the decided values it holds above that."""
        self.decisions.decided_up_to = max(self.decisions.decided_up_to, decided_up_to)
        self.reconfig.history = self.reconfig.history.merged(history)
        for slot, value in decisions:
            self.learn(slot, value)

    # ----------------------------------------------------------------- time

    def tick(self) -> None:
        """Advance one tick: heartbeat and resend as leader, else maybe run."""
        self.now += 1
        if self.phase is Phase.LEADER:
            if self.heartbeats.due(self.now):
                self._heartbeat()
            self._resend_stale_accepts()
            waiting_since = self.election.waiting_since
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
        elif self.intake.pending:
            self._forward_pending()

    def _election_deadline(self, first: bool = False) -> int:
        ticks = self.settings.election_ticks
        if first:
            # At start-up nobody leads yet: run soon, still jittered apart.
            return self.now + 1 + self._rng.randrange(ticks)
        return self.now + ticks + self._rng.randrange(ticks + 1)

    def _forward_target(self) -> str | None:
        """The leader to hand commands and retries to: not us, heard from
        within `election_ticks`. None: we lead, or know no live leader (then
        we queue, and run for leader when our timer says so)."""
        leader = self.leader
        if (self.phase is not Phase.LEADER and leader is not None and leader != self.node_id
                and self.now - self._leader_heard <= self.settings.election_ticks):
            return leader
        return None

    # ------------------------------------------------------------ elections

    def _first_undecided(self) -> int:
        """Where phase 1 starts (see `Decisions.first_undecided`)."""
        return self.decisions.first_undecided(self.history, self.retries.floor)

    def _start_election(self, first_slot: int) -> None:
        if not self.history.knows(first_slot):
            # The acceptors compacted past what our history has fed: we do not
            # know whom to ask. Wait for a learner's Stored (it carries the history).
            self.stats.alpha_waits += 1
            if self.phase is not Phase.FOLLOWER:
                self._step_down(leader=None)
            self._deadline = self._election_deadline()
            return
        # A round above every ballot seen, persisted before the Prepares leave.
        self.election.start(first_slot, self.leader_ballot)
        if self.phase is Phase.LEADER:
            self._requeue_inflight()
        self.phase = Phase.CANDIDATE
        self.stats.elections += 1
        self.retries.floor = None  # this phase 1 covers it
        self._deadline = self._election_deadline()
        self.election.prepare_missing(self.history, self.now, leader=False)

    def on_promise(self, m: Promise) -> None:
        """Phase 1b: collect promises for our ballot; a majority of each
        configuration makes a candidate leader (and lets a leader use a new one)."""
        if m.compacted > self.decisions.compacted:
            # A new member's promise may carry a point above our first slot
            # (seed 6435 --reconfig), even above slots we have in flight.
            self._note_compacted(m.compacted)
        if self.phase is Phase.FOLLOWER or m.ballot != self.election.ballot:
            return
        self.election.add(m)
        if not self.election.prepared(self.history):
            return
        if self.phase is Phase.CANDIDATE:
            self._become_leader()
        else:
            self.election.waiting_since = None  # every new member we need promised

    def _become_leader(self) -> None:
        # CANDIDATE -> LEADER: a majority of each configuration promised our
        # ballot for every slot >= first_slot. Per slot, the value of the
        # highest ballot its configuration's members reported must be proposed
        # again (P2c); slots nobody reported are free (propose_pending fills).
        election = self.election
        self.phase = Phase.LEADER
        self.leader = self.node_id
        self.leader_ballot = election.ballot
        self.stats.leader_changes += 1
        # Fill the holes below the highest slot reported, and the run-up to a
        # change decided but not yet governing (the leader before us may not have).
        self.pipeline.restart(max(election.first_slot, self.decisions.compacted),
                              fill_below=max(election.promises.highest_reported + 1,
                                             self.history.latest.first_slot))
        self._heartbeat()
        self.propose_pending()

    def on_nack(self, m: Nack) -> None:
        """An acceptor promised a higher ballot: stop, back off, let it lead.

        A Nack that only says our Prepare or Accept was below the acceptor's
        compaction point moves us above it instead: those slots are decided.
        """
        if m.ballot != self.election.ballot or self.phase is Phase.FOLLOWER:
            return
        inflight = self.pipeline.inflight
        if m.compacted > self.decisions.compacted or (inflight and min(inflight) < m.compacted):
            self._note_compacted(m.compacted)
        if m.promised <= m.ballot:
            # Refused for compaction only. CANDIDATE -> CANDIDATE: a phase 1
            # that started below the point can never finish; run it again
            # from above the point (a new ballot, as every phase 1 needs).
            if (self.phase is Phase.CANDIDATE
                    and self.election.first_slot < self.decisions.compacted):
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
        # Decided below there: no need to run phase 1 for those slots.
        self.decisions.decided_below(m.decided_up_to, self.history)
        if m.src == self.node_id:
            return
        if self.phase is not Phase.FOLLOWER and m.ballot > self.election.ballot:
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
        self.election.stand_down()
        self._deadline = self._election_deadline()
        self._forward_pending()

    def _requeue_inflight(self) -> None:
        # Commands in undecided slots may be lost with our ballot; queue them
        # again, the lowest slot's first. If they were decided after all,
        # learners apply them once.
        pipeline = self.pipeline
        self.intake.requeue(pipeline.withdraw(sorted(pipeline.inflight, reverse=True)),
                            only_outstanding=False)

    def _heartbeat(self) -> None:
        highest = max(self.pipeline.next_slot - 1, max(self.decisions.chosen, default=-1))
        self.heartbeats.send(self.now, self.membership, self.election.ballot, highest,
                             self.decisions.decided_up_to)

    # ------------------------------------------------------- client commands

    def on_request(self, m: ClientRequest) -> None:
        """A command from a client or a proposer: propose it as leader, else
        forward it to the leader (see `Intake.receive`)."""
        self.intake.receive(m, self._forward_target(), self.membership.proposers)

    def on_client_commands(self, batch: Value) -> list[Conflict]:
        """A batch of commands straight from a client, as `on_request` treats
        each one (one call per batch a client sent; see `Intake.from_client`).
        Returns those refused: their request id is outstanding here with another payload."""
        return self.intake.from_client(batch, self._forward_target())  # proposed at ready()

    def _forward_pending(self) -> None:
        leader = self._forward_target()
        if leader is not None:
            self.intake.forward_pending(leader)

    def propose_config(self, acceptors: tuple[str, ...]) -> Command:
        """Propose "the next epoch has `acceptors`" (forwarded to the leader if
        we do not lead). Returns the config command.

        Raises `ConfigError` (see `Reconfiguration.config_command`): an empty
        set or a repeated name, a change pending, or one proposed here not
        decided yet.
        """
        command = self.reconfig.config_command(
            tuple(acceptors), self.membership.learners, self.intake.outstanding,
            issued=self.decisions.decided_up_to)
        self.intake.route(Value.of((command,)), self._forward_target(), front=True)
        return command

    # --------------------------------------------------------------- phase 2

    def propose_pending(self) -> None:
        """As leader, put pending commands into new slots while the window allows.

        `Node.ready()` calls this, so the commands that arrived during one
        batch of steps share slots, up to `batch` each: a lone command goes
        out at once, a burst is batched (adaptive batching, as in
        Paxos Made Live's batching of requests).
        """
        if self.phase is not Phase.LEADER:
            return
        settings, history = self.settings, self.history
        pipeline, intake, election = self.pipeline, self.intake, self.election
        chosen, pending, inflight = self.decisions.chosen, intake.pending, pipeline.inflight
        # No-ops fill holes and the run-up to a new configuration only when
        # nothing is in flight (an idle cluster): under load commands fill
        # those slots, and a window of no-ops costs as much as a window of
        # commands (bench/reconfig.py: throughput during a change 0.46 of
        # steady with no-ops at once).
        idle = not inflight
        while len(inflight) < settings.window:
            slot = pipeline.next_slot
            if slot in chosen:
                pipeline.next_slot += 1
                continue
            config = history.config_for(slot)
            if config is None:
                # The alpha bound: config(slot) depends on a decision we do not know yet.
                if pending:
                    self.stats.alpha_waits += 1
                return
            if not election.usable(config, history, self.now):
                return  # a new configuration: its members promise first
            vote = election.adopted(slot, config)
            arrived: float | None = None  # when the slot's oldest command arrived here
            if vote is not None:
                value = vote.value
                if not is_noop(value):
                    arrived = self.commit_times.now  # phase 1 reported it: it arrives here now
            elif pending:
                # Slices of the batches clients sent, joined: no work per command.
                value, arrived = intake.next_batch(settings.batch, settings.slot_bytes)
                self.stats.proposals += 1
            elif slot < pipeline.fill_below and idle:
                value = NOOP  # a hole, or the run-up to a new configuration
            else:
                return
            lost = pipeline.remembered.get(slot)
            if lost and lost != value:
                # Our earlier proposal in this slot did not survive; propose
                # its commands again (learners apply a request id once).
                intake.queue(lost, front=True)
            pipeline.next_slot += 1
            pipeline.send(slot, value, config, election.ballot, self.now, arrived)

    def _resend_stale_accepts(self) -> None:
        self.stats.accept_resends += self.pipeline.resend_stale(
            self.election.ballot, self.now, self.settings.accept_timeout_ticks)

    def on_accepted(self, m: Accepted) -> None:
        """Phase 2b at the leader: a majority for our ballot decides the slot."""
        if self.phase is not Phase.LEADER or m.ballot != self.election.ballot:
            return
        value = self.pipeline.on_accepted(m)
        if value is not None:
            self.learn(m.slot, value)  # the freed window is used at ready()

    # ------------------------------------------------------------ decisions

    def learn(self, slot: int, value: Value) -> None:
        """Record that `slot` decided `value` (from our own count, a Decide, or our learner)."""
        decisions = self.decisions
        if not decisions.learn(slot, value):
            return
        self.stats.decisions += 1
        self.intake.decided(value)
        # Another leader's value may have won a slot of ours: ours goes in another.
        self.intake.requeue(self.pipeline.settle(slot, value))
        history = self.history
        if history.known in decisions.chosen:
            self._set_history(self.reconfig.feed(decisions.chosen))
        decisions.note_floor(self.history)
        self._forget_decided()

    def on_decide(self, m: Decide) -> None:
        self.learn(m.slot, m.value)

    def _set_history(self, history: History) -> None:
        added = self.reconfig.set_history(history)  # a change decided: persisted
        if not added or self.phase is Phase.FOLLOWER:
            return
        # New configurations govern slots >= their first slot: prepare their
        # members (propose_pending waits for a majority of them) and, as
        # leader, fill the slots before the change so it takes effect soon.
        self.election.prepare_missing(self.history, self.now,
                                      leader=self.phase is Phase.LEADER)
        for config in added:
            self.pipeline.fill_up_to(config.first_slot)

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

    def _note_compacted(self, point: int) -> None:
        """Slots below `point` are decided and stored by every learner."""
        self.decisions.note_compacted(point, self.history)
        if self.phase is Phase.LEADER:
            # Our slots below the point were decided, maybe not with our
            # values: queue those commands again (learners apply a request id once).
            self.intake.requeue(self.pipeline.skip_below(self.decisions.compacted))
        self._forget_decided()

    def _forget_decided(self) -> None:
        # Forget decided values well below the decided prefix: a learner
        # that misses one copies it from a peer learner, or (if none has it)
        # gets it through a new phase 1 (see on_retry).
        below = self.decisions.forget()
        if below is not None:
            self.pipeline.forget_below(below)
            self.retries.forget_below(below)

    # ----------------------------------------------------------------- retry

    def on_retry(self, m: Retry) -> None:
        """A learner misses `m.slot`: re-send the decision, or decide it again.

        A given slot is retried at most once per `retry_cooldown_ticks`;
        re-upping the ballot more often could keep it from ever being
        decided. A retry that needs phase 1 proposes what phase 1 reports,
        else what we remember proposing there, else a no-op; never None.
        """
        slot = m.slot
        if not self.retries.answer(m, self.decisions.compacted, self.decisions.chosen,
                                   self._forward_target(), self.now):
            return  # answered, or retried too recently (see `Retries.answer`)
        forgotten = slot < self.decisions.forgotten_below  # decided, value no longer in memory
        if self.phase is Phase.LEADER and slot >= self.election.first_slot and not forgotten:
            if self.pipeline.resend_soon(slot, self.settings.accept_timeout_ticks):
                self._resend_stale_accepts()
                return
            # Phase 1 covered this slot and found it empty: fill it and any
            # slots before it with no-ops (an older leader announced them).
            self.pipeline.fill_up_to(slot + 1)
            return
        # Below our phase 1 (or no phase 1 at all): a new ballot is needed,
        # from the lowest slot asked for.
        self.retries.ask_from(slot)
        if self.phase is not Phase.LEADER:
            # A follower runs for leader only when its election timer says so
            # (jittered, backing off after nacks); its phase 1 then starts
            # from the retry floor. Running at every retry would duel forever.
            return
        if self.retries.may_reelect(self.now):
            self._start_election(self._first_undecided())
