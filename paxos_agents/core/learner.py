"""The learner: finds out which value each slot decided and applies them in order.

A value is chosen when a majority of acceptors accepted it under one
ballot (Paxos Made Simple, section 2.3). Votes are counted per ballot:
three acceptors that accepted in three different ballots decided nothing.
The count is a `Tally` (tally.py).

Commands are applied in slot order with no gap, and each request id once:
a command decided again in a later slot (a client retry, a re-proposal
after a leader change) is reported with the slot where it was first
decided and not applied again.

A learner cannot tell on its own that it missed the *last* slots (the
2012 demo's to-do list). The leader's heartbeat announces the highest slot
it proposed, and the other learners announce how far their log is durable
(`Stored`). A slot below that which stays undecided for `gap_ticks` is
copied from a learner that has it (`Fetch`/`Chunk`: state transfer, as
Raft's InstallSnapshot), or, if no learner has it, asked of the proposers
with a Retry. The missing slots, the leader a learner follows and its
Retries are a `Gaps` (gaps.py); its peers and state transfer a `Peers`
(peers.py); which commands of a slot are applied, answered with an
earlier slot or refused as expired, and the request index behind it, an
`ExactlyOnce` (exactlyonce.py).

Memory does not grow with the log. The decided log and the request index
(request id -> first slot) are on disk (`DurableLog`); memory holds the
decided slots not yet applied, votes being counted, the request ids not
yet written and a filter of the keys of those that are (requests.py).
`Stored` reports let acceptors compact (see `Acceptor.on_stored`).

Retention (`Settings.retain_slots` = R > 0). A learner deletes decisions
and index entries more than R slots below its applied prefix, so when it
applies slot t its index holds every request id first decided in
[t - R, t). A command carries `issued`: no decision of its request id can
be at or below that slot. If `issued + 1 >= t - R`, the index tells for
sure whether the request id was decided before; otherwise it cannot, and
the command is refused as *expired* (never applied; the Raft thesis's
expired client sessions, section 6.3). The rule depends only on t, R and
the command, so every learner makes the same choice and their logs agree.
The stamp is the client's word, so it decides only expiry: whether an id
was applied before is always asked of the index (requests.py), so a stamp
newer than the truth cannot get a retained command applied twice.

Reconfiguration (configs.py). Slot s is judged by config(s): a vote from
an acceptor that is not a member of config(s) is ignored, and s is
decided when a majority of config(s) voted in one ballot. config(s) is
known once every slot <= s - alpha was applied here (`history`, fed in
apply order); votes for slots further on are kept and judged when it
is. The history is persisted whenever it gains a change, in the same
`Ready` as the applied prefix that decided it, so a restarted learner's
stored history holds every change up to its applied prefix, however far
retention deleted the log. A learner whose log restarts above a change's
slot (state transfer) takes the history from the chunk, and peers'
`Stored` reports carry theirs too.
"""

from __future__ import annotations

from typing import Callable

from .commands import Value
from .settings import Membership, Settings
from .configs import Config, History
from .exactlyonce import ExactlyOnce
from .gaps import Gaps
from .messages import Accepted, Chunk, Decide, Fetch, Heartbeat, Stored
from .outbox import Outbox
from .peers import Peers
from .ready import AppliedSlot, LogEntry, Record, log_entries
from .store import DurableLog
from .tally import Tally

#: How many slots past the first missing one a tick looks at for retries.
RETRY_SCAN_SLOTS = 1024
#: Election timeouts a peer may leave our Fetches unanswered before what it
#: reported stored is asked of the proposers (`Peers.forget_silent`): a chunk
#: comes back within a few ticks; a peer that stopped never answers.
FETCH_PATIENCE = 2
#: Retention deletes in steps of an eighth of the window, at most this many slots.
RETAIN_STEP = 256

__all__ = ["Learner", "LogEntry", "log_entries"]


class Learner:
    """One learner's state: votes seen, decided slots not yet applied, the applied prefix."""

    #: The vote count's class (a subclass may count votes otherwise).
    tally_class: type[Tally] = Tally
    #: The exactly-once rule's class (a subclass may judge duplicates otherwise).
    once_class: type[ExactlyOnce] = ExactlyOnce

    def __init__(
        self,
        node_id: str,
        membership: Membership,
        settings: Settings,
        record: Record,
        out: Outbox,
        store: DurableLog,
        on_decided: Callable[[int, Value], None] | None = None,
        history: History | None = None,
    ) -> None:
        self.node_id = node_id
        #: Called for every slot decided here (a replica's proposer listens).
        self._on_decided = on_decided
        self.membership = membership
        self.settings = settings
        self._out = out
        self._store = store
        #: The votes of undecided slots, per ballot.
        self.tally = self.tally_class()
        #: Every slot below this is decided and applied (and durable once drained).
        self.next_apply = record.applied + 1
        #: The first slot of the retained log (older ones were deleted or never copied).
        self.log_start = record.log_start
        #: slot -> decided value, for decided slots not yet applied (>= next_apply).
        self._tail: dict[int, Value] = {
            s: v for s, v in record.decisions.items() if s >= self.next_apply}
        #: The configurations, fed in apply order. A stored history holds every
        #: change up to the applied prefix (see the module doc), so it is fed
        #: at least that far.
        self.history: History = self._adopt(
            history or History.initial(settings.alpha, membership.acceptors)
        ).with_known(self.next_apply)
        #: Each command's outcome, and the request index behind it.
        self.once = self.once_class(settings, record, store, out)
        #: request id -> first slot (the runtime's lookups read it).
        self.requests = self.once.requests
        #: Highest slot known to exist (decided here, announced by a leader or a peer).
        self.highest_known = max(self.next_apply - 1, max(self._tail, default=-1))
        self._now = 0
        #: The other learners: their progress, our reports, state transfer.
        self.peers = Peers(node_id, membership, settings, out, store)
        #: The slots we miss, the leader we follow, the Retries we sent.
        self.gaps = Gaps(node_id, out, settings, membership)
        #: Slots copied from peers (state transfer) by this incarnation.
        self.installed = 0
        self.decided_count = 0
        # Decisions persisted above the applied prefix may continue it.
        self._apply()

    # ----------------------------------------------------------- queries

    @property
    def decided_up_to(self) -> int:
        """Highest slot up to which every slot is decided and applied (-1 for none)."""
        return self.next_apply - 1

    @property
    def retries_sent(self) -> int:
        """Retries sent to proposers by this incarnation."""
        return self.gaps.retries_sent

    @property
    def catchup_remaining(self) -> int:
        """Slots that peers have stored and this learner has not applied yet."""
        return max(0, self.peers.highest - self.decided_up_to)

    def is_decided(self, slot: int) -> bool:
        return slot < self.next_apply or slot in self._tail

    def unapplied(self) -> list[tuple[int, Value]]:
        """The decided slots above the applied prefix and their values, in slot order."""
        return sorted(self._tail.items())

    def _snapshot(self) -> tuple[dict[int, Value], dict[str, int]]:
        """All retained decisions (durable and not yet) and the request index (tests, checks)."""
        piece = self._store.read_log(0, 1 << 62)
        decisions = {**dict(piece.decisions), **self._out.decisions, **self._tail}
        rids = {c.request_id for v in decisions.values() for c in v}
        firsts = {**self._store.first_slots(rids), **self.requests.known()}
        return decisions, {r: s for r, s in firsts.items() if r in rids}

    @property
    def decided(self) -> dict[int, Value]:
        """Every retained decided slot and its value: a snapshot read from the store (tests)."""
        return self._snapshot()[0]

    @property
    def log(self) -> list[LogEntry]:
        """The retained applied log: a snapshot read from the store (tests, checks)."""
        decisions, firsts = self._snapshot()
        applied = sorted((s, v) for s, v in decisions.items() if s < self.next_apply)
        return log_entries(applied, firsts)

    @property
    def first_slot(self) -> dict[str, int]:
        """request id -> slot where it was first decided, in the retained log (tests)."""
        return self._snapshot()[1]

    # ---------------------------------------------------------- messages

    def on_accepted(self, m: Accepted) -> None:
        """Count a vote; decide the slot when a majority of config(slot) voted
        in one ballot. A non-member's vote is ignored; while config(slot) is
        not known the vote waits in the tally."""
        if self.is_decided(m.slot):
            return
        value = self.tally.vote(m, self.history.config_for(m.slot))
        if value is not None:
            self._decide(m.slot, value)

    def _adopt(self, history: History) -> History:
        """The history this learner keeps (a subclass may read it otherwise)."""
        return history

    def _set_history(self, history: History) -> None:
        """Adopt `history` (fed further, or merged from a peer): persist it if it
        holds a new change, and judge the votes of slots whose config it reveals."""
        old = self.history
        if history is old:
            return
        self.history = history
        if len(history.configs) != len(old.configs):
            self._out.note_history(history)
        limit = old.known + old.alpha
        if history.known + history.alpha > limit and self.tally:
            for slot, value in self.tally.decidable(history, limit):
                if not self.is_decided(slot):
                    self._decide(slot, value)

    @property
    def stored_by_all(self) -> int:
        """The lowest applied prefix of all learners, this one included (-1: unknown)."""
        others = [n for n in self.membership.learners if n != self.node_id]
        stored = self.peers.stored
        if any(n not in stored for n in others):
            return -1
        return min([self.next_apply - 1, *(stored[n] for n in others)])

    def pending_change(self) -> Config | None:
        """The latest configuration if it is decided but not yet in force."""
        latest = self.history.latest
        return None if self.history.in_force(self.stored_by_all) is latest else latest

    def on_decide(self, m: Decide) -> None:
        """A proposer tells us a decision (the answer to a Retry)."""
        if not self.is_decided(m.slot):
            self._decide(m.slot, m.value)

    def on_heartbeat(self, m: Heartbeat) -> None:
        """Follow the leader, and learn how far the log reaches."""
        self.gaps.follow(m, self._now)
        if m.highest_slot > self.highest_known:
            self.highest_known = m.highest_slot

    def set_membership(self, membership: Membership) -> None:
        """New proposers and learners (`Node.set_membership`): retries go to,
        and state transfer comes from, the current members only."""
        self.membership = membership
        self.peers.set_membership(membership)
        self.gaps.set_membership(membership)

    def on_stored(self, m: Stored) -> None:
        """A peer learner's log is durable up to `m.upto`: a source for state transfer."""
        if m.upto > self.highest_known and m.src in self.membership.learners:
            self.highest_known = m.upto
        if (m.history is not None and m.src in self.membership.learners
                and m.history.known > self.history.known):
            self._set_history(self.history.merged(self._adopt(m.history)))
        if (self.peers.on_stored(m, self.next_apply - 1, self._now)
                and self._now - self.peers.fetch_at >= self.settings.gap_ticks):
            self.peers.fetch(self.next_apply, self._now)

    def on_fetch(self, m: Fetch) -> None:
        """Serve a peer's state transfer: one chunk of our applied log from `m.first_slot`."""
        self.peers.serve(m, self.history)

    def on_chunk(self, m: Chunk) -> None:
        """Install a piece of a peer's applied log, then ask for the next one.

        The outcomes (applied, duplicate of an earlier slot, expired) are
        the peer's, taken as they are: applied again here they could differ
        where the peer's index reached further back than ours, and the logs
        would diverge. A chunk that starts above the slot we asked for, when
        that slot is still our next one, means the peer no longer retains
        what we miss: our log restarts there. (A chunk that answers an older
        Fetch, from further on, is only a piece we cannot use yet.)
        """
        self.peers.answered()
        if m.history is not None and m.history.known > self.history.known:
            self._set_history(self.history.merged(self._adopt(m.history)))
        if not m.decisions:
            return
        if m.asked <= self.next_apply < m.first_slot:
            if self.history.known < m.first_slot:
                return  # we would not know the changes decided below it: wait for one that says
            # Our log restarts at the peer's first retained slot; the persist
            # deletes whatever we kept below it.
            self.next_apply = self.log_start = m.first_slot
            self._out.log_start = m.first_slot
            self.requests.forget_below(m.first_slot)
            for slot in [s for s in self._tail if s < m.first_slot]:
                del self._tail[slot]
        firsts = dict(m.first_slots)
        out = self._out
        installed = 0
        history = self.history
        for slot, value in m.decisions:
            if slot < self.next_apply:
                continue
            if slot > self.next_apply:
                break
            history = history.fed(slot, value)
            out.decisions[slot] = value
            self._tail.pop(slot, None)
            self.gaps.found(slot)
            self.decided_count += 1
            self.once.install(slot, value, firsts)
            if self._on_decided is not None:
                self._on_decided(slot, value)
            self.next_apply = slot + 1
            installed += 1
        self._set_history(history)
        if installed:
            self.installed += installed
            self.highest_known = max(self.highest_known, self.next_apply - 1)
            out.applied_upto = self.next_apply - 1
            self._apply()
            self.peers.fetch(self.next_apply, self._now)

    # -------------------------------------------------------------- time

    def tick(self) -> None:
        """Report what is durable; copy or ask for what has been missing for `gap_ticks`."""
        self._now += 1
        self.peers.report(self.next_apply - 1, self._now, self.history)
        if self.highest_known < self.next_apply:
            return
        gap = self.settings.gap_ticks
        # A peer that answers no Fetch for a few election timeouts is down, or
        # cut off: what it reported stored is asked of the proposers instead.
        self.peers.forget_silent(self._now, FETCH_PATIENCE * self.settings.election_ticks)
        if (self.gaps.missing_for(self.next_apply, self._now) >= gap
                and self._now - self.peers.fetch_at >= gap):
            self.peers.fetch(self.next_apply, self._now)
        # What no peer learner has stored is asked of the proposers.
        first = max(self.next_apply, self.peers.highest + 1)
        self.gaps.ask(first, min(self.highest_known, first + RETRY_SCAN_SLOTS), self._now,
                      self._tail)

    # ------------------------------------------------------------ apply

    def _decide(self, slot: int, value: Value) -> None:
        self._tail[slot] = value
        self._out.decisions[slot] = value
        self.decided_count += 1
        self.tally.forget(slot)
        self.gaps.found(slot)
        if slot > self.highest_known:
            self.highest_known = slot
        if self._on_decided is not None:
            self._on_decided(slot, value)
        if slot == self.next_apply:
            self._apply()

    def _may_apply(self, slot: int) -> bool:
        """Whether this learner can classify `slot`'s commands itself.

        A learner whose log was restarted by a state transfer at
        `log_start` has no index below it: until it reaches
        `log_start + R` it installs what its peers applied instead.
        """
        retain = self.settings.retain_slots
        return not retain or self.log_start == 0 or slot >= self.log_start + retain

    def _apply(self) -> None:
        """Apply the decided slots that follow the applied prefix, in order,
        reporting each (`AppliedSlot`)."""
        tail = self._tail
        start = self.next_apply
        out = self._out
        once = self.once
        retain = self.settings.retain_slots
        history = self.history
        while self.next_apply in tail and self._may_apply(self.next_apply):
            slot = self.next_apply
            value = tail.pop(slot)
            history = history.fed(slot, value)
            out.applied.append(AppliedSlot(slot, value, tuple(once.apply(slot, value))))
            self.next_apply += 1
        if self.next_apply != start:
            self._set_history(history)
            out.applied_upto = self.next_apply - 1
            step = min(RETAIN_STEP, max(1, retain // 8))
            if retain and self.next_apply - retain - self.log_start >= step:
                self.log_start = self.next_apply - retain
                out.log_start = self.log_start
                self.requests.forget_below(self.log_start)
        once.save_filter_if_due(self._filter_covers())

    def save_filter(self) -> None:
        """Hand the id filter out to be saved with the next `Ready` if ids were
        added since it last was (an agent's clean stop: its next start then
        reads no key at all)."""
        self.once.save_filter(self._filter_covers())

    def _filter_covers(self) -> int:
        """The slot a filter saved now covers: the applied prefix."""
        return self.next_apply - 1

    def drained(self) -> None:
        """`Node.ready()` handed our outbox to the runtime, which persists it
        before the next step: what was applied so far may now be looked up
        on disk (written; committed later, see runtime/persister.py)."""
        self.requests.drained()
        self.gaps.found_below(self.next_apply)  # slots below can no longer be missing

