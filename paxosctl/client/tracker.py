"""The requests of one client as state machines: fed frames and time, no sockets.

In the shape of h11's `_state.py`: everything that moves a request from
one state to another lives here, and the moves are one table
(`TRANSITIONS`). `paxosctl.client.datapath.DataClient` is the I/O shell: it
hands this module what arrives (`add`, `on_slot`, `on_outcomes`,
`on_looked_up`, `on_subscribed`, `learner_lost`, `resend_now`) and the
time (`now`, monotonic seconds, passed in, never read), writes the frames
`take` returns to its sockets, and resolves the futures of what settled.

A request's life (`RequestState`)::

    TO_LOOK_UP --ASKED--> LOOKING_UP --NOT_DECIDED--> QUEUED
         ^                     |  (WATCHING: stays; the answer follows)
         +----LEARNER_LOST-----+
    QUEUED --PROPOSED--> SENT --LEARNER_LOST--> WAITING --PROPOSED--> SENT
    QUEUED --PROPOSED_UNHEARD--> WAITING   (no learner to ask: asked at its resend)
    any of them --SETTLE--> SETTLED        (an answer, a refusal, the deadline, closing)

A request made here starts QUEUED; one whose id the caller brings without
a stamp starts TO_LOOK_UP: a learner is asked first whether it was decided
(then nothing is proposed), and only if not is it proposed, stamped with
the slot the learner vouches for. SENT and WAITING requests are proposed
again every `retry_seconds` (learners apply a request id once, so a resend
decides nothing twice), and at once when a proposer's connection is lost
or the leader changes (`resend_now`). A WAITING request was proposed with
no learner asked for its outcome since (none answered then, or the one
followed was lost): at its next resend the learner is asked (WATCH: its
request index answers by request id, whenever it was decided).

Answers move a batch: the requests of one frame (a SLOT's commands, an
OUTCOMES or LOOKED_UP frame's answers) go through one transition together;
nothing is done per command that a frame could do once. What a request
ends with is built by `paxosctl.client.outcomes`.
"""

from __future__ import annotations

import struct
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import Enum
from itertools import repeat
from typing import Any, Callable, Iterable, Sequence

from paxos_agents.core.commands import BatchError, Value
from paxos_agents.runtime import clientwire as wire
from paxos_agents.runtime import frames

from . import outcomes
from .batch import Member
from .encoding import propose_body
from .outcomes import Result

#: Commands per PROPOSE frame at most.
MAX_BATCH = 1024
#: Bytes of one PROPOSE frame at most: what an agent reads (a longer frame
#: is a protocol error that closes the connection: the commands would be
#: resent into the same wall until their deadline). 1024 values of the
#: largest size (paxos.max_value_bytes, up to 1 MiB) are well over it.
PROPOSE_FRAME_BYTES = frames.MAX_FRAME_BYTES
#: A PROPOSE frame's bytes besides its commands' ids and payloads: the kind
#: byte and the count; and per command: id and payload lengths, the stamp
#: (`paxos_agents.core.commands.Value`'s layout).
_FRAME_HEAD, _PER_COMMAND = 1 + 4, 2 + 4 + 8
#: Seconds new commands wait for the learner's SUBSCRIBED (which stamps them) at most.
STAMP_WAIT_SECONDS = 0.5


class RequestState(Enum):
    """Where one request is; see the module docstring for the moves."""

    #: To be proposed at the next send.
    QUEUED = "queued"
    #: Its id was brought without a stamp: a learner is to be asked (LOOKUP)
    #: whether it was decided, before anything is proposed.
    TO_LOOK_UP = "to look up"
    #: Asked of the learner followed; its answer (or, if decided this
    #: moment, its outcome) is awaited.
    LOOKING_UP = "looking up"
    #: Proposed; the learner followed tells its outcome (it subscribed before
    #: the proposal, or was asked: WATCH). Proposed again at `next_try`.
    SENT = "sent"
    #: Proposed, but no learner was asked for it since: at its next resend
    #: (`next_try`) it is asked (WATCH) and proposed again. Waiting for the learner.
    WAITING = "waiting for the learner"
    #: Answered, refused, timed out or abandoned: its futures are resolved.
    SETTLED = "settled"

    # Members are singletons, so identity is their hash. Enum's own hashes the
    # name in a Python call, and the table is looked up per request on the
    # hot path (each proposal and each answer): this is the C slot.
    __hash__ = object.__hash__


class Event(Enum):
    """What moves requests: a frame sent or received, a connection lost."""

    ASKED = "a LOOKUP left for the learner followed"
    NOT_DECIDED = "the learner: not decided up to the stamp it gave"
    WATCHING = "the learner: decided this moment, its outcome follows"
    PROPOSED = "proposed; the learner followed subscribed before, or was asked"
    PROPOSED_UNHEARD = "proposed with no learner to ask"
    LEARNER_LOST = "the learner followed closed, cut, stalled or was left"
    SETTLE = "answered, refused, timed out, or the client or cluster went away"

    __hash__ = object.__hash__  # as RequestState's: `TRANSITIONS[event]` is on the hot path


S = RequestState
# Module names for the hot loops: `RequestState.X` costs an Enum class
# attribute look-up (slow in Python 3.11) per request; a global does not.
_QUEUED, _TO_LOOK_UP, _WAITING, _SETTLED = S.QUEUED, S.TO_LOOK_UP, S.WAITING, S.SETTLED
_LIVE = (S.QUEUED, S.TO_LOOK_UP, S.LOOKING_UP, S.SENT, S.WAITING)

#: The one table of moves: event -> {state before: state after}. A request in
#: a state the event does not name is left as it is (a late or repeated
#: answer, an answer to another client's copy of the id).
TRANSITIONS: dict[Event, dict[RequestState, RequestState]] = {
    Event.ASKED: {S.TO_LOOK_UP: S.LOOKING_UP},
    # A learner asked before the last one was lost may still answer (TO_LOOK_UP).
    Event.NOT_DECIDED: {S.LOOKING_UP: S.QUEUED, S.TO_LOOK_UP: S.QUEUED},
    Event.WATCHING: {S.LOOKING_UP: S.LOOKING_UP, S.TO_LOOK_UP: S.TO_LOOK_UP},
    Event.PROPOSED: {S.QUEUED: S.SENT, S.SENT: S.SENT, S.WAITING: S.SENT},
    Event.PROPOSED_UNHEARD: {S.QUEUED: S.WAITING, S.SENT: S.WAITING, S.WAITING: S.WAITING},
    Event.LEARNER_LOST: {S.QUEUED: S.QUEUED, S.TO_LOOK_UP: S.TO_LOOK_UP,
                         S.LOOKING_UP: S.TO_LOOK_UP, S.SENT: S.WAITING, S.WAITING: S.WAITING},
    Event.SETTLE: {state: S.SETTLED for state in _LIVE},
}

#: The states a request waits in to go out at the next send, whatever its `next_try`.
_OUTBOUND = (S.QUEUED, S.TO_LOOK_UP)
#: The states of a request that left for a proposer (it may be decided).
_PROPOSED = (S.SENT, S.WAITING)


class LearnerLink(Enum):
    """What the learner followed can do now, as `Tracker.take` needs to know."""

    NONE = "none answers"
    CONNECTED = "connected, not subscribed yet: every proposal is asked for (WATCH)"
    SUBSCRIBED = "subscribed: it streams the outcome of every later proposal"


class Request:
    """One request id in flight, and who waits for it: the futures of the
    calls (`propose_async`) and, for a value of a `propose_many` call, its
    `batch` (`paxosctl.client.batch.BatchFuture`) and `index` there.

    A plain slotted class, not a dataclass: one is made per command, and
    its fields are read and written per command on the I/O thread.
    """

    __slots__ = ("request_id", "payload", "issued", "started", "deadline", "state",
                 "next_try", "sent_at", "futures", "batch", "index")

    def __init__(self, request_id: str, payload: bytes, issued: int | None, started: float,
                 deadline: float, state: RequestState = RequestState.QUEUED,
                 batch: Any = None, index: int = 0) -> None:
        self.request_id = request_id
        self.payload = payload
        #: Its stamp (`Command.issued`); None: stamped when first proposed (or by LOOKUP).
        self.issued = issued
        self.started = started
        self.deadline = deadline
        self.state = state
        #: When it is proposed again (SENT, WAITING).
        self.next_try = 0.0
        #: When it was first proposed (the stall rule), None before.
        self.sent_at: float | None = None
        #: The futures of the calls waiting for it (`add` sets the first; a
        #: later call for the same id joins). Empty for a batch's value until then.
        self.futures: list[Future[Any]] = _NO_FUTURES
        #: The `propose_many` call it is a value of (None: none), at `index`.
        self.batch = batch
        self.index = index

    def __repr__(self) -> str:
        return f"Request({self.request_id!r}, {self.state.value})"


#: A request's futures before any call's joins: shared, never appended to
#: (a future joins by replacing the list: `Tracker.add`).
_NO_FUTURES: list[Future[Any]] = []

#: Requests to resolve, and with what: `resolve` sets their futures and fills
#: their batches (outside any lock).
Settled = list[tuple[Request, Result]]


@dataclass(slots=True)
class Outgoing:
    """What `Tracker.take` has to send: frames for the learner followed (LOOKUP,
    then WATCH) and for the proposer chosen (PROPOSE), and what settled."""

    to_learner: list[bytes] = field(default_factory=list)
    to_proposer: list[bytes] = field(default_factory=list)
    settled: Settled = field(default_factory=list)


def resolve(settled: Settled) -> None:
    """Resolve each request's waiters with its result: its futures (a
    `Decision`, or the error they raise), and its place in its batch (the
    batch's future resolves when its last value settles).

    A request settles once, so none of its futures is resolved yet
    (`Future.done()` takes a lock: not asked). A batch's values are
    written here, one store each, not through a call per value."""
    finished = []
    for request, result in settled:
        batch = request.batch
        if batch is not None:
            batch.results[request.index] = result
            batch.left -= 1
            if not batch.left:
                finished.append(batch)
        futures = request.futures
        if futures:
            if isinstance(result, Exception):
                for future in futures:
                    future.set_exception(result)
            else:
                for future in futures:
                    future.set_result(result)
    for batch in finished:
        batch.finish()


class Tracker:
    """The requests in flight of one client, by request id. Not thread-safe:
    one thread (the client's I/O thread) feeds it."""

    def __init__(self, *, retry_seconds: float, retain_slots: int, started: float) -> None:
        self.retry_seconds = retry_seconds
        self.retain_slots = retain_slots
        self.started = started
        #: The highest slot known decided: stamps new commands (`Command.issued`).
        self.applied = -1
        self._live: dict[str, Request] = {}
        #: The QUEUED and TO_LOOK_UP requests, in arrival order (settled ones
        #: are skipped when taken).
        self._outbound: list[Request] = []

    # ------------------------------------------------------------- reading

    def __len__(self) -> int:
        return len(self._live)

    @property
    def outbound(self) -> bool:
        """Requests wait for the next `take` whatever the time (QUEUED, TO_LOOK_UP)."""
        return bool(self._outbound)

    def get(self, request_id: str) -> Request | None:
        """The live request `request_id`, if any."""
        return self._live.get(request_id)

    def stamp(self, request_id: str) -> int | None:
        """The stamp `request_id` was (or will be) proposed with, if known."""
        request = self._live.get(request_id)
        return request.issued if request is not None else None

    def proposed_by(self, when: float) -> bool:
        """Some request first proposed at or before `when` is still unanswered."""
        return any(r.sent_at is not None and r.sent_at <= when for r in self._live.values())

    # ------------------------------------------------------------ feeding

    def add(self, calls: Iterable[tuple[Request, Future[Any]]]) -> Settled:
        """New calls, each a request (QUEUED, or TO_LOOK_UP) and its future. A
        second call for an id in flight with the same value waits for the
        same answer (until the later of the two deadlines); with another
        value it fails at once."""
        live = self._live
        outbound = self._outbound
        settled: Settled = []
        for request, future in calls:
            known = live.get(request.request_id)
            if known is None:
                request.futures = [future]
                live[request.request_id] = request
                outbound.append(request)
            else:
                self._join(known, request, future, settled)
        return settled

    def add_batch(self, requests: list[Request]) -> Settled:
        """The values of one `propose_many` call (QUEUED; their waiter is their
        batch), in order. Their ids are fresh (this client's maker), so none
        is in flight: checked, and entered, in C-level passes over the
        batch; should one be in flight all the same, it is joined as `add`
        joins a second call."""
        live = self._live
        if live.keys().isdisjoint([r.request_id for r in requests]):
            live.update([(r.request_id, r) for r in requests])
            self._outbound += requests
            return []
        settled: Settled = []
        for request in requests:
            known = live.get(request.request_id)
            if known is None:
                live[request.request_id] = request
                self._outbound.append(request)
            else:
                self._join(known, request, None, settled)
        return settled

    @staticmethod
    def _join(known: Request, request: Request, future: Future[Any] | None,
              settled: Settled) -> None:
        """A call for `known`'s id, in flight: it waits for the same answer if
        it has the same value, else it fails at once (`settled`)."""
        if future is not None:
            request.futures = [future]
        if known.payload != request.payload:
            settled.append((request, outcomes.conflicting_call(request.request_id)))
            return
        if request.futures:
            known.futures = known.futures + request.futures  # never the shared empty list
        if request.batch is not None:
            # The same value under the same id: the batch's place settles with it.
            if known.batch is None:
                known.batch, known.index = request.batch, request.index
            else:  # two batches under one id (a caller's own ids reused): rare
                known.futures = known.futures + [Member(request.batch, request.index)]
        known.deadline = max(known.deadline, request.deadline)

    def take(self, now: float, *, learner: LearnerLink, proposer: bool,
             due: bool = True) -> Outgoing:
        """What to send now: the QUEUED and TO_LOOK_UP requests, and (`due`)
        the proposed ones whose `next_try` has come. `proposer`: one is
        connected to send to. Nothing leaves while the learner followed has
        not subscribed, for up to STAMP_WAIT_SECONDS after the start: its
        SUBSCRIBED gives the stamp new commands are proposed with.

        Without a learner, what is to be looked up waits for one; the rest
        is proposed all the same (asked for at its resend, once one answers).
        """
        out = Outgoing()
        outbound = self._outbound
        propose = [r for r in outbound if r.state is _QUEUED]
        # Most calls are made here (QUEUED): skip the second pass when all are.
        ask = ([r for r in outbound if r.state is _TO_LOOK_UP]
               if len(propose) < len(outbound) else [])
        if due:
            propose += [r for r in self._live.values()
                        if r.state in _PROPOSED and r.next_try <= now]
        if not propose and not ask:
            self._outbound = []
            return out
        if learner is LearnerLink.CONNECTED and now - self.started < STAMP_WAIT_SECONDS:
            self._outbound = [r for r in outbound if r.state in _OUTBOUND]
            return out
        keep: list[Request] = []
        if ask and learner is LearnerLink.NONE:
            keep = ask
        elif ask:
            for i in range(0, len(ask), wire.MAX_IDS_PER_FRAME):  # the learner's limit
                out.to_learner += self._encode(ask[i:i + wire.MAX_IDS_PER_FRAME], wire.LOOKUP,
                                               _ids_body, out.settled)
            self._move([r for r in ask if r.state is _TO_LOOK_UP], Event.ASKED)
        if propose and not proposer:
            keep += [r for r in propose if r.state is _QUEUED]
        elif propose:
            self._propose(propose, learner, now, out)
        self._outbound = keep
        return out

    def _propose(self, batch: list[Request], learner: LearnerLink, now: float,
                 out: Outgoing) -> None:
        """PROPOSE `batch`, asking the learner (WATCH) for those whose outcome
        it would not stream: all while it has not subscribed, else the WAITING."""
        stamp = self.applied  # a slot applied, with none undecided below it, seen by now
        retry = now + self.retry_seconds
        heard = learner is not LearnerLink.NONE
        watch = (batch if learner is LearnerLink.CONNECTED
                 else [r for r in batch if r.state is _WAITING] if heard else [])
        # The whole batch through one transition (to SENT or WAITING, never
        # back to the outbound queue, so `_move`'s bookkeeping is not needed),
        # in the pass that stamps it: one pass per request, not two.
        moves = TRANSITIONS[Event.PROPOSED if heard else Event.PROPOSED_UNHEARD]
        for r in batch:
            if r.issued is None:
                r.issued = stamp  # a slot decided before this request was first proposed
            if r.sent_at is None:
                r.sent_at = now
            r.next_try = retry
            r.state = moves[r.state]
        refused = len(out.settled)
        proposals = []
        for chunk in _frame_chunks(batch):
            proposals += self._encode(chunk, wire.PROPOSE, _propose_body, out.settled)
        if len(out.settled) > refused:  # settled by `_encode`: nothing of them left
            watch = [r for r in watch if r.state is not _SETTLED]
        for i in range(0, len(watch), wire.MAX_IDS_PER_FRAME):  # the learner's limit
            out.to_learner.append(wire.WATCH + _ids_body(watch[i:i + wire.MAX_IDS_PER_FRAME]))
        out.to_proposer += proposals

    def _encode(self, batch: list[Request], kind: bytes,
                encode: Callable[[list[Request]], bytes], settled: Settled) -> list[bytes]:
        """`kind + encode(batch)`, as a list of one frame (none if `batch` is empty).

        `check_proposal` lets through only what encodes, so this never
        fails; if it does (a gap in that check), the I/O thread must not
        die with it: each request is then encoded alone, and one that
        cannot be settles with `outcomes.refused` (to `settled`), and only it.
        """
        if not batch:
            return []
        try:
            return [kind + encode(batch)]
        except (BatchError, ValueError, TypeError, OverflowError, struct.error):
            pass
        good, bad = [], []
        for r in batch:
            try:
                encode([r])
            except (BatchError, ValueError, TypeError, OverflowError, struct.error) as error:
                bad.append(r)
                settled.append((r, outcomes.refused(r.request_id, error)))
            else:
                good.append(r)
        self._settle(bad)
        return [kind + encode(good)] if good else []

    def on_subscribed(self, slot: int) -> None:
        """SUBSCRIBED: the learner streams every slot after `slot`, which it applied."""
        if slot > self.applied:
            self.applied = slot

    def saw_applied(self, slot: int) -> None:
        """`slot` is known applied (a WELCOME's `applied`): a stamp for new commands."""
        if slot > self.applied:
            self.applied = slot

    def on_slot(self, slot: int, skipped: dict[int, wire.Skipped], data: bytes) -> Settled:
        """A slot the learner applied (SLOT): settle the requests in it.

        A command of the slot listed in `skipped` was not applied there: its
        request id was decided earlier (or refused), and the request's
        outcome is that first position (or the refusal), not this slot.
        """
        if slot > self.applied:
            self.applied = slot
        live = self._live
        if not live or not data:
            return []
        value = Value.from_bytes(data)
        # The slot's id column (no Command objects) looked up and removed in
        # one C-level pass; the first answer in a frame wins (an id twice in
        # it is found once).
        hits: list[Request | None] = list(map(live.pop, value.request_ids(), repeat(None)))
        if None not in hits:  # every command of the slot is this client's
            found = hits
            indexes: Sequence[int] = range(len(hits))
        else:
            indexes = [i for i, r in enumerate(hits) if r is not None]
            if not indexes:
                return []
            found = [hits[i] for i in indexes]
        settle = TRANSITIONS[Event.SETTLE]
        for request in found:
            request.state = settle[request.state]
        # What each ends with, built for the slot at once (one clock read).
        results = outcomes.in_slot(slot, value, indexes, found, skipped, self.retain_slots)
        return list(zip(found, results))

    def on_outcomes(self, answers: Iterable[wire.Outcome]) -> Settled:
        """OUTCOMES (answers to WATCH, or a proposer's refusals): settle them."""
        live = self._live
        settle = TRANSITIONS[Event.SETTLE]
        settled: Settled = []
        for outcome in answers:
            self._decided_at(outcome)
            request = live.pop(outcome.request_id, None)  # the first answer in a frame wins
            if request is not None:
                request.state = settle[request.state]
                settled.append((request, self._answer(request, outcome)))
        return settled

    def on_looked_up(self, stamp: int, answers: Iterable[wire.Outcome]) -> Settled:
        """LOOKED_UP: per id, not decided up to `stamp` (propose it now, stamped
        so), decided this moment (its outcome follows), or decided before
        (settled: the first position, nothing proposed)."""
        undecided, watching = [], []
        settled: Settled = []
        asked = TRANSITIONS[Event.NOT_DECIDED]
        for outcome in answers:
            request = self._live.get(outcome.request_id)
            if request is None or request.state not in asked:
                continue
            if outcome.status == wire.UNKNOWN:
                if request.issued is None:
                    request.issued = stamp
                undecided.append(request)
            elif outcome.status == wire.WATCHING:
                watching.append(request)
            else:
                self._decided_at(outcome)
                self._settle([request])
                settled.append((request, self._answer(request, outcome)))
        self._move(undecided, Event.NOT_DECIDED)
        self._move(watching, Event.WATCHING)
        return settled

    def learner_lost(self, now: float) -> None:
        """The learner followed is gone (closed, cut, stalled, or left): another
        one answers from now on, so ask it for everything in flight, now."""
        for request in self._live.values():
            request.next_try = now
        self._move(list(self._live.values()), Event.LEARNER_LOST)

    def resend_now(self, now: float) -> None:
        """A proposer's connection was lost, or another leads: what it took may
        be lost with it, so propose everything in flight again now, not at
        the next retry."""
        for request in self._live.values():
            request.next_try = now

    def expire(self, now: float) -> Settled:
        """Settle the requests whose deadline has come (`ProposalTimeout`)."""
        late = [r for r in self._live.values() if now >= r.deadline]
        self._settle(late)
        return [(r, outcomes.timed_out(r.request_id, r.issued)) for r in late]

    def close(self) -> Settled:
        """The client closes: settle everything in flight (`ConnectionLost`)."""
        left = list(self._live.values())
        self._settle(left)
        return [(r, outcomes.closed(r.request_id, r.issued)) for r in left]

    def cluster_gone(self, cluster_file: str) -> Settled:
        """No agent answers or takes a connection: settle everything in flight."""
        left = list(self._live.values())
        settled: Settled = [(r, outcomes.cluster_gone(
            r.request_id, r.issued, r.state in _PROPOSED, cluster_file)) for r in left]
        self._settle(left)
        return settled

    # -------------------------------------------------------- transitions

    def _answer(self, request: Request, outcome: wire.Outcome) -> Result:
        return outcomes.answered(outcome, request.payload, request.issued, request.started,
                                 self.retain_slots)

    def _decided_at(self, outcome: wire.Outcome) -> None:
        if outcome.status == wire.DECIDED and outcome.slot > self.applied:
            self.applied = outcome.slot

    def _move(self, batch: list[Request], event: Event) -> None:
        """Move every request of `batch` through `event` (one table look-up per
        request, none per event). A request that lands in QUEUED or
        TO_LOOK_UP from elsewhere joins the outbound queue."""
        if not batch:
            return
        moves = TRANSITIONS[event]
        outbound = self._outbound
        for request in batch:
            before = request.state
            after = moves.get(before, before)
            request.state = after
            if after in _OUTBOUND and before not in _OUTBOUND:
                outbound.append(request)

    def _settle(self, batch: list[Request]) -> None:
        """SETTLE `batch`: forget them (their futures are the caller's to resolve)."""
        live = self._live
        moves = TRANSITIONS[Event.SETTLE]
        for request in batch:
            request.state = moves.get(request.state, request.state)
            if live.get(request.request_id) is request:
                del live[request.request_id]


def _frame_chunks(batch: list[Request]) -> list[list[Request]]:
    """`batch` cut into PROPOSE frames' worth, in order: `MAX_BATCH` commands
    at most each, and a frame of at most `PROPOSE_FRAME_BYTES` (a command
    alone in its frame is never over it: values are capped far below)."""
    budget = PROPOSE_FRAME_BYTES - _FRAME_HEAD
    n = len(batch)
    # The usual case (small values) in one C-speed sum: even ids of the
    # largest size leave every MAX_BATCH chunk under the budget.
    if (sum(map(len, [r.payload for r in batch]))
            + min(n, MAX_BATCH) * (_PER_COMMAND + wire.MAX_REQUEST_ID_BYTES) <= budget):
        return [batch[i:i + MAX_BATCH] for i in range(0, n, MAX_BATCH)]
    chunks: list[list[Request]] = []
    start = size = 0
    for i, r in enumerate(batch):
        cost = _PER_COMMAND + len(r.request_id.encode()) + len(r.payload)
        if i > start and (i - start == MAX_BATCH or size + cost > budget):
            chunks.append(batch[start:i])
            start, size = i, 0
        size += cost
    chunks.append(batch[start:])
    return chunks


def _propose_body(batch: list[Request]) -> bytes:
    """A PROPOSE body of `batch`'s commands, from their columns (`encoding`)."""
    return propose_body([r.request_id for r in batch], [r.payload for r in batch],
                        [r.issued for r in batch])  # type: ignore[misc]  # stamped by now


def _ids_body(batch: list[Request]) -> bytes:
    """A WATCH or LOOKUP body of `batch`'s request ids."""
    return wire.encode_ids(r.request_id for r in batch)
