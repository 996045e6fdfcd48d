"""Planted bugs: known ways to break Paxos, for showing that the checks catch them.

Each is a subclass of a real role that overrides one rule (one hook of
the real class, or of the room that owns the rule: the proposer's
`election_class` or `reconfig_class`, the learner's `tally_class` or
`once_class`);
`Node` uses one only when `Settings.plant` names it (the simulator's and
the tests' `--plant`), through `acceptor_class`,
`proposer_class` and `learner_class`. The real roles carry no planted
branches of their own.

Two planted bugs are about what is on disk rather than a rule, and live
in the simulator's boot (`SimCluster._boot`): "forget-promise" wipes an
acceptor's record, and "reuse-ballot" also forgets a proposer's round.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, TypeVar

from .acceptor import Acceptor
from .configs import Config, History
from .election import Election
from .exactlyonce import ExactlyOnce
from .ids import ZERO_BALLOT, Ballot
from .learner import Learner
from .messages import Accept, Accepted, Chunk, Nack, Prepare, Promise, Stored, Vote
from .outbox import Outbox
from .ready import Record
from .proposer import Phase, Proposer
from .reconfig import Reconfiguration
from .settings import Settings
from .tally import Tally


class AcceptWithoutPromiseAcceptor(Acceptor):
    """The 2012 demo's bug: accept any ballot and never raise the promise."""

    def _may_accept(self, ballot: Ballot) -> bool:
        return True

    def _raise_promise(self, ballot: Ballot) -> None:
        pass


class TruncateEarlyAcceptor(Acceptor):
    """TLA+ mutant TruncateEarly: compact below what *one* learner stored.

    The rule needs every configured learner; this drops votes that some
    learner may still need (and cannot then get from anyone).
    """

    def _point(self) -> int:
        return max(self._stored.values(), default=-1) + 1


class ReuseBallotProposer(Proposer):
    """TLA+ mutant ReuseBallot: a Nack for our ballot counts as a Promise with no votes.

    With "reuse-ballot" the simulator also boots proposers with their
    persisted round forgotten, so a restarted proposer reuses a ballot
    whose refusals it then takes for promises.
    """

    def on_nack(self, m: Nack) -> None:
        if m.ballot != self.ballot or self.phase is Phase.FOLLOWER:
            return
        if m.compacted > self.decisions.compacted:
            self._note_compacted(m.compacted)
        self.stats.nacks += 1
        if self.phase is Phase.CANDIDATE:
            self.on_promise(Promise(src=m.src, dst=m.dst, ballot=m.ballot,
                                    first_slot=self.election.first_slot, votes=()))


class IgnorePromisedValueElection(Election):
    """TLA+ mutant IgnorePromisedValues: a new leader ignores the votes in the
    promises (P2c broken) and proposes its own values or no-ops."""

    def adopted(self, slot: int, config: Config) -> Vote | None:
        return None


class IgnorePromisedValueProposer(Proposer):
    """A proposer whose phase 1 is `IgnorePromisedValueElection`."""

    election_class = IgnorePromisedValueElection


class NaiveHistory(History):
    """A configuration history read naively: a change governs the slot right
    after its own, and config(s) is whatever the latest known change says,
    with no alpha bound on how far ahead anyone proposes or judges."""

    __slots__ = ()

    def knows(self, slot: int) -> bool:
        return True

    def effective_slot(self, decided_at: int) -> int:
        return decided_at + 1


def _naive(history: History) -> History:
    return NaiveHistory(history.alpha, history.configs, history.known)


class NaiveSwapReconfiguration(Reconfiguration):
    """TLA+ mutant NaiveSwap: the new acceptor set takes effect at once.

    A leader with slots in flight when a change is decided (or that has
    not learned it yet) judges those slots by another configuration than
    a proposer that learned it: two majorities that need not intersect.
    """

    def adopt(self, history: History) -> History:
        return _naive(history)


class NaiveSwapProposer(Proposer):
    """A proposer that keeps its history as `NaiveSwapReconfiguration` reads it."""

    reconfig_class = NaiveSwapReconfiguration


class NaiveSwapLearner(Learner):
    """The learner side of NaiveSwap: judges slots by the naive history."""

    def _adopt(self, history: History) -> History:
        return _naive(history)


class CrossBallotTally(Tally):
    """TLA+ mutant CrossBallotLearner: count votes across ballots, as if they were one."""

    def _ballot(self, m: Accepted) -> Ballot:
        return ZERO_BALLOT


class CrossBallotLearner(Learner):
    """A learner whose vote count is `CrossBallotTally`."""

    tally_class = CrossBallotTally


class TrustStamp(ExactlyOnce):
    """The first request index's shortcut: a command whose stamp says it was
    issued after everything applied before this learner started is looked
    up in memory only. A retry stamped newer than its first issue
    (`--issued`, `fresh=True`) of a command applied before a restart is
    then applied a second time (integrity). Memory now holds only the ids
    not yet written (requests.py), so the shortcut misses even more."""

    def __init__(self, settings: Settings, record: Record, *args: Any) -> None:
        self._booted_at = record.applied + 1  # the shortcut's belief: memory has all from here on
        super().__init__(settings, record, *args)

    def applied_before(self, request_ids: list[str], issued: int) -> dict[str, int]:
        if issued + 1 >= self._booted_at:
            known = self.requests.known()
            return {rid: known[rid] for rid in request_ids if rid in known}
        return super().applied_before(request_ids, issued)


class TrustStampLearner(Learner):
    once_class = TrustStamp


# --- what leaves before it is durable (the simulator's crash before persist) ---


def _send_early(out: Outbox, node_id: str, kinds: tuple[type, ...]) -> None:
    """Move this node's `kinds` messages from `send_after_persist` to `send`:
    the runtime then sends them before (during) the persist they announce."""
    early = [m for m in out.send_after_persist if isinstance(m, kinds) and m.src == node_id]
    if early:
        out.send_after_persist = [m for m in out.send_after_persist if m not in early]
        out.send.extend(early)


class SendBeforePersistAcceptor(Acceptor):
    """Paxos Made Simple, section 2.5, broken: Promise and Accepted leave with
    the messages that need no persist, before the promise or vote they
    announce is durable. An acceptor that crashes in between has promised
    or voted, for everyone else, and forgot it."""

    def on_prepare(self, m: Prepare) -> None:
        super().on_prepare(m)
        _send_early(self._out, self.node_id, (Promise,))

    def on_accept(self, m: Accept) -> None:
        super().on_accept(m)
        _send_early(self._out, self.node_id, (Accepted,))


class StoredBeforePersistLearner(Learner):
    """A learner's `Stored` report leaves before the applied prefix it
    reports is durable. Acceptors compact on it; a learner that crashes
    before its persist restarts below the compaction point, and the votes
    it needs may be gone."""

    def tick(self) -> None:
        super().tick()
        _send_early(self._out, self.node_id, (Stored,))

    def on_stored(self, m: Stored) -> None:
        super().on_stored(m)
        _send_early(self._out, self.node_id, (Stored,))


# --- retention: expiry, the index's floor, state transfer of outcomes ----------


class LenientExpiry(ExactlyOnce):
    """Expiry judged one slot too late: a command stamped `issued` is judged
    by the index when `issued + 2 >= t - R` instead of `issued + 1`. Its
    request id may then have been decided in slot t - R - 1, which the
    index no longer holds: a retry is applied a second time."""

    def expired_at(self, issued: int, slot: int) -> bool:
        retain = self.settings.retain_slots
        return bool(retain) and issued + 2 < slot - retain


class LenientExpiryLearner(Learner):
    once_class = LenientExpiry


class IgnoreIndexFloorLearner(Learner):
    """A learner whose log a state transfer restarted at `log_start` judges
    duplicates itself at once, though its index holds nothing below
    `log_start` (the real one installs its peers' outcomes until
    `log_start + R`): a retry first decided below the floor is applied
    again here and not at its peers."""

    def _may_apply(self, slot: int) -> bool:
        return True


class ValuesOnlyTransferLearner(Learner):
    """State transfer of values without their outcomes: a chunk's commands are
    classified by what this learner knows (its index, the chunk so far)
    instead of taken as the peer applied them. A command the peer answered
    as a duplicate of a slot below our log, or refused as expired, is
    applied here: the logs diverge."""

    def on_chunk(self, m: Chunk) -> None:
        known = self.requests.lookup([c.request_id for _, value in m.decisions for c in value])
        firsts: dict[str, int] = {}
        for slot, value in m.decisions:
            for command in value:
                rid = command.request_id
                firsts.setdefault(rid, known.get(rid, slot))
        super().on_chunk(replace(m, first_slots=tuple(firsts.items())))


class FilterAheadLearner(Learner):
    """A saved id filter that claims one slot more than it holds: a restart
    adds the keys of the slots after the claimed one only, so the ids first
    applied in the slot after the applied prefix (the one claimed, not yet
    in the filter) are ruled out as new by the restarted learner, and a retry of
    one of them is applied a second time (requests.py, issue 24)."""

    def _filter_covers(self) -> int:
        return self.next_apply


#: planted bug -> the acceptor class that carries it.
ACCEPTORS: Mapping[str, type[Acceptor]] = {
    "accept-without-promise": AcceptWithoutPromiseAcceptor,
    "truncate-early": TruncateEarlyAcceptor,
    "send-before-persist": SendBeforePersistAcceptor,
}

#: planted bug -> the proposer class that carries it.
PROPOSERS: Mapping[str, type[Proposer]] = {
    "reuse-ballot": ReuseBallotProposer,
    "ignore-promised-value": IgnorePromisedValueProposer,
    "naive-swap": NaiveSwapProposer,
}

#: planted bug -> the learner class that carries it.
LEARNERS: Mapping[str, type[Learner]] = {
    "cross-ballot-learner": CrossBallotLearner,
    "naive-swap": NaiveSwapLearner,
    "trust-stamp": TrustStampLearner,
    "stored-before-persist": StoredBeforePersistLearner,
    "lenient-expiry": LenientExpiryLearner,
    "ignore-index-floor": IgnoreIndexFloorLearner,
    "values-only-transfer": ValuesOnlyTransferLearner,
    "filter-ahead": FilterAheadLearner,
}

R = TypeVar("R")


def _choose(role: str, table: Mapping[str, type[R]], real: type[R], plant: frozenset[str]) -> type[R]:
    chosen = [cls for bug, cls in table.items() if bug in plant]
    if len(chosen) > 1:
        raise ValueError(f"at most one planted {role} bug at a time, got {sorted(plant)}")
    return chosen[0] if chosen else real


def acceptor_class(plant: frozenset[str]) -> type[Acceptor]:
    """The acceptor class for the planted bugs in `plant` (the real one if none)."""
    return _choose("acceptor", ACCEPTORS, Acceptor, plant)


def proposer_class(plant: frozenset[str]) -> type[Proposer]:
    """The proposer class for the planted bugs in `plant` (the real one if none)."""
    return _choose("proposer", PROPOSERS, Proposer, plant)


def learner_class(plant: frozenset[str]) -> type[Learner]:
    """The learner class for the planted bugs in `plant` (the real one if none)."""
    return _choose("learner", LEARNERS, Learner, plant)
