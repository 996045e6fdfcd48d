"""Commands straight to the proposers, answers straight from a learner.

`DataClient` is the data path of `paxosctl.Client` (and of `paxosctl
propose`, `decided`, `bench`): it reads `run/endpoints.json`
(paxosctl.endpoints), connects to every proposer and to one learner
(paxos_agents.runtime.transport's handshake), and never involves the
supervisor, so a stopped supervisor stops no command.

How one proposal goes:

1. `propose_async` makes the future (and the request id, if the caller
   gave none, before anything is sent) and queues the command for the
   I/O thread, which owns every socket;
   (`propose_many_async` makes one future for many commands, their ids
   together, and queues them all at once: `paxosctl.client.batch`);
2. the I/O thread WATCHes the request id at its learner, then sends the
   command to the proposer it believes leads (commands queued together
   go in one frame, cut at an agent's frame limit: batching below the API);
3. the learner answers with the position where the request id was first
   decided (paxos_agents.runtime.clientwire) and the digest of that
   first value, and the future resolves to a `Decision`, or to
   `RequestIdConflict` if the request id was decided with another value.

A command without an answer is sent again every `retry_seconds` (to the
leader a proposer named since, or another proposer), and at once when its
proposer's connection is lost; learners apply a request id once, so
resending never decides it twice. At its deadline it fails with
`ProposalTimeout` (exit 124: it may still be decided).

A learner can be alive and answering yet learn nothing: cut off from the
other agents (a partition acts between agents, not between a client and
an agent), it streams no slot again. So when the learner followed has
streamed no slot for `STALL_RETRIES` resend period(s) while a command sent
that long ago waits, the client follows another learner (the one it left
is tried last from then on) and asks it for every command in flight
(WATCH: its request index answers by request id, whenever it was
decided). A command is answered once, by whichever learner tells first.
A reader following the log (`streamed`) moves the same way when the
learner streams no slot for a stall period: what it has read is a
position, so the next learner goes on from it, nothing twice or missed.

A learner that cuts the connection (CUT: this client fell behind reading
past the bound on its unsent output) is left like one that closed it,
and tried last from then on; its reason goes to `on_cut`, if set.

This module is the I/O shell: the thread handoff, the sockets and
reconnects, the choice of learner and the stall rule. Which frames a
request needs and what each answer does to it is `paxosctl.client.tracker`'s
(fed frames and time, no sockets); what a request ends with is
`paxosctl.client.outcomes`'.
"""

from __future__ import annotations

import logging
from collections import Counter
import json
import os
import random
import selectors
import threading
import time
from concurrent.futures import Future
from itertools import repeat
from typing import Any, Callable, Iterable

from paxos_agents.runtime import clientwire as wire
from paxos_agents.runtime import frames
from paxos_agents.runtime.transport import CLIENT, hello

from ..endpoints import Endpoints
from .dialling import Dialler
from .batch import BatchFuture
from .checks import check_proposal, check_timeout, check_value, check_values
from .ids import RequestIds
from .reads import Reads, running_future
from .following import Endpoint, Learners
from ..errors import ConnectionLost, Expired, NotRunning
from .results import Decision, json_value, retry_hint
from .tracker import LearnerLink, Request, RequestState, Settled, Tracker, resolve

#: A certificate refused on a connection to an agent is one line here (the
#: CLI has no handler: Python's last resort prints it on stderr).
log = logging.getLogger("paxosctl.client")

#: How often the I/O thread looks at deadlines and retries with nothing else to do.
TICK_SECONDS = 0.05
#: Seconds between reconnect attempts to an endpoint that is down.
RECONNECT_SECONDS = 0.1
#: Seconds a learner may take to answer a new connection before another is tried.
LEARNER_WAIT_SECONDS = 1.0
#: Resend periods (`Endpoints.retry_seconds`) the learner followed may stream no
#: slot while a command sent that long ago waits, before another learner is
#: followed. One: the resend period already allows for an election (it is four
#: election timeouts, at least 1 s: paxosctl.endpoints), so a learner that
#: streams nothing for one of them is cut off, or nothing at all is decided
#: (then moving costs one connection per stall and changes no outcome). Two
#: kept a client whose learner's host was cut off without answers for 3 s
#: (bench/hosts.py), past issue 22's election timeout + 2 s.
STALL_RETRIES = 1
#: A new request's first state (module names: an Enum class attribute costs a
#: look-up per call). A request id the caller brings without a stamp is looked up.
_QUEUED, _TO_LOOK_UP = RequestState.QUEUED, RequestState.TO_LOOK_UP
class DataClient:
    """Proposals and reads on the data path of one running cluster. Thread-safe.

    Raises `NotRunning` at construction if no proposer or no learner can
    be reached (then nothing was sent).
    """

    def __init__(self, endpoints: Endpoints, *, cluster_file: str = "",
                 on_cut: Callable[[str, str], None] | None = None) -> None:
        self.endpoints = endpoints
        #: Called (on the I/O thread) with (learner, reason) when a learner cuts
        #: this client off (CUT); the client follows another one meanwhile.
        self.on_cut = on_cut
        self._cluster_file = cluster_file or endpoints.cluster
        #: Makes this client's request ids (its own prefix: paxosctl.client.ids).
        self.ids = RequestIds()
        #: Opens the connections: Unix sockets or TCP + TLS (paxosctl.client.dialling).
        self._dialler = Dialler(endpoints)
        #: TLS connections that failed their handshake or identity check,
        #: by `identity.REASONS` counter name, and the last one's line.
        self.refusals: Counter[str] = Counter()
        self.last_refusal = ""
        self._warned: set[tuple[str, str]] = set()
        self._thread: threading.Thread | None = None
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._proposers = [Endpoint(n) for n in endpoints.proposers]
        learners = list(endpoints.learners)
        random.shuffle(learners)  # spread clients over the learners
        self._started = time.monotonic()
        #: Which learner answers this client, and the stall rule (paxosctl.client.following).
        self._learners = Learners(learners, now=self._started,
                                  stall_seconds=STALL_RETRIES * endpoints.retry_seconds)
        #: Every agent this client may talk to (the learners' order aside).
        self._endpoints = self._proposers + list(self._learners)
        self._lock = threading.Lock()  # _new, _new_batches, _woken, _closed
        #: `propose_async` calls not handed to the tracker yet: (request, future).
        self._new: list[tuple[Request, Future[Decision]]] = []
        #: `propose_many_async` calls not handed to the tracker yet: their requests.
        self._new_batches: list[list[Request]] = []
        self._woken = False  # a wake-up is on its way to the I/O thread
        self._closed = False
        self._leader: str | None = None
        #: Log queries and stream readers (paxosctl.client.reads).
        self._reads = Reads(f"the connection to {self._cluster_file} is closed")
        #: The requests in flight, as state machines (paxosctl.client.tracker): this
        #: class only carries their frames and resolves their futures.
        self._tracker = Tracker(retry_seconds=endpoints.retry_seconds,
                                retain_slots=endpoints.retain_slots, started=self._started)
        self._next_scan = 0.0
        for endpoint in self._proposers:
            self._connect(endpoint, self._started)
        self._connect_learner(self._started)
        if self._learners.followed() is None or not any(p.conn for p in self._proposers):
            self._close_all()
            missing = "learner" if self._learners.followed() is None else "proposer"
            raise NotRunning(f"no {missing} of the cluster for {self._cluster_file} answers",
                             hint=self.last_refusal or "see: paxosctl status")
        self._thread = threading.Thread(target=self._run, name="paxosctl-data", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- API

    def propose_async(self, value: bytes | str, *, request_id: str | None = None, timeout: float,
                      issued: int | None = None, fresh: bool = False) -> Future[Decision]:
        """Queue `value` under `request_id`; the future resolves to a `Decision` or raises.

        Without a `request_id` a fresh one is made (this client's `ids`), as
        `Client.propose_async` does.

        `fresh`: the caller made `request_id` for this call (it was never
        sent before), so the command is stamped with a slot decided now.
        Otherwise `issued` is the stamp of the request's first issue (see
        `paxos_agents.core.commands.Command`), as a previous try reported
        it; without it the learner is asked first whether the request id
        was decided (a retry is then answered without proposing anything).

        Raises `UsageError` (exit 2) at once for arguments `check_proposal`
        refuses (a value over the cluster's max_value_bytes included), and
        `NotRunning` (exit 1) if the client is closed; nothing is sent then.
        """
        if request_id is None:
            # The usual call: an id of this client's maker, so only the value
            # and the stamp need checking.
            request_id, fresh = self.ids.one(), True
            payload = (check_value(value, self.endpoints.max_value_bytes) if issued is None
                       else check_proposal(value, request_id, issued,
                                           self.endpoints.max_value_bytes))
        else:
            payload = check_proposal(value, request_id, issued, self.endpoints.max_value_bytes)
        timeout = check_timeout(timeout)
        future = running_future(Decision)
        now = time.monotonic()
        pending = Request(request_id, payload, issued, now, now + timeout,
                          _QUEUED if fresh or issued is not None else _TO_LOOK_UP)
        with self._lock:
            if self._closed:
                raise NotRunning(f"the connection to {self._cluster_file} is closed")
            self._new.append((pending, future))
            # One wake-up per batch, not per command: the I/O thread takes all
            # of `_new` when it wakes (a system call per command would cost
            # more than the rest of the command's client-side work).
            wake = not self._woken
            self._woken = True
        if wake:
            self._wake()
        return future

    def propose_many_async(self, values: Iterable[bytes | str], *,
                           timeout: float) -> BatchFuture:
        """Queue every value of `values`, each under a fresh request id; one
        future resolves to one `Proposed` per value, in order (a `Decision`,
        or the typed error `propose_async`'s future would raise), once each
        is decided or failed. `timeout` is each value's own deadline: at it,
        only the values still unanswered fail (`ProposalTimeout`, retryable
        by id). Neither atomic nor ordered in the log: each value is decided
        (or not) on its own, wherever its command lands.

        Every value is checked first (`check_proposal`): one bad value
        raises `UsageError` (exit 2) and none is sent; `NotRunning` (exit 1)
        if the client is closed. The ids are made together (the clock read
        once), and the requests reach the I/O thread in one step, which
        puts them in as few PROPOSE frames as the frame limits allow
        (`paxosctl.client.tracker`).
        """
        values = list(values)
        payloads = check_values(values, self.endpoints.max_value_bytes)
        timeout = check_timeout(timeout)
        request_ids = self.ids.batch(len(values))  # the ids are this client's own
        batch = BatchFuture(request_ids, payloads)
        if not values:
            return batch
        now = time.monotonic()
        n = len(values)
        # One Request per value (its place: the batch and its index), made by
        # a C-level map over the columns.
        requests = list(map(Request, request_ids, payloads, repeat(None, n), repeat(now, n),
                            repeat(now + timeout, n), repeat(_QUEUED, n), repeat(batch, n),
                            range(n)))
        with self._lock:
            if self._closed:
                raise NotRunning(f"the connection to {self._cluster_file} is closed")
            self._new_batches.append(requests)
            wake = not self._woken
            self._woken = True
        if wake:
            self._wake()
        return batch

    @property
    def following(self) -> str | None:
        """The learner whose answers this client follows now (None: none
        answers); a snapshot, for diagnostics (it may change at any time)."""
        learner = self._learners.followed()
        return learner.name if learner is not None else None

    def stamp(self, request_id: str) -> int | None:
        """The stamp `request_id` was (or will be) proposed with, if known."""
        return self._tracker.stamp(request_id)

    @property
    def applied(self) -> int:
        """The highest slot known decided (a snapshot): new commands are stamped with it."""
        return self._tracker.applied

    def query_decided(self, start: int | None, limit: int) -> Future[dict[str, Any]]:
        """Ask the learner for one page of the applied log from slot `start`
        (None: the first retained) of about `limit` entries; the future
        resolves to its reply (`paxos_agents.runtime.clients`: entries with
        base64 values, decided_up_to, log_start; or error and code), or
        raises `ConnectionLost` if the learner's connection is lost first.
        Parse it with `paxosctl.client.decidedlog.LogCursor`."""
        future = self._reads.query(start, limit)
        self._wake()
        return future

    def read_page(self, start: int | None, limit: int) -> Future[Any]:
        """Ask the learner for one page of the applied log from slot `start`
        (None: the first retained) of about `limit` entries, in the binary
        format (PAGE). The future resolves to a `clientwire.Page` (whole
        slots as stored; `paxosctl.client.decidedlog` decodes them), or to an error
        reply dict (as `query_decided`'s), or raises `ConnectionLost` if the
        learner's connection is lost first."""
        future = self._reads.page(start, limit)
        self._wake()
        return future

    def streamed(self, slot: int) -> Future[int]:
        """A future that resolves (to the highest slot streamed) once the
        learner has streamed slot `slot` or a later one: a slot it applied,
        whose page a `decided` query now returns. It raises `NotRunning`
        when the client closes or the cluster goes away first."""
        return self._reads.streamed(slot)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    # --------------------------------------------------------- connections

    def __enter__(self) -> "DataClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self, endpoint: Endpoint, now: float) -> None:
        """Open a connection to `endpoint` and send its HELLO, without waiting:
        the WELCOME comes through the I/O loop. Unix sockets connect at once
        or fail at once, and a TLS connection connects and shakes hands in
        the loop (`dialling`), so this never blocks; an agent that is stopped
        (SIGSTOP) takes the connection and answers nothing, and what is
        sent to it waits for its deadline like any unanswered command."""
        endpoint.retry_at = now + RECONNECT_SECONDS
        conn = self._dialler.dial(endpoint.name,
                                  lookup_now=threading.current_thread() is not self._thread)
        if conn is None:
            return
        sock = conn.sock
        conn.peer = endpoint.name
        conn.queue(hello(self.endpoints.cluster_id, CLIENT, 0, endpoint.name))
        if endpoint in self._learners:
            conn.queue(wire.SUBSCRIBE)
            self._learners.learned(now)  # a new learner gets a whole stall period
        endpoint.conn = conn
        endpoint.info = {}
        endpoint.connected_at = now
        self._selector.register(sock, selectors.EVENT_READ, endpoint)

    def _connect_learner(self, now: float) -> None:
        """Connect to one learner (the first that takes it): answers come from it."""
        for endpoint in self._learners.to_try(now):
            self._connect(endpoint, now)
            if endpoint.conn is not None:
                return

    def _welcomed(self, endpoint: Endpoint, info: dict[str, Any]) -> None:
        endpoint.info = info
        endpoint.conn.greeted = True
        if "applied" in info:
            self._tracker.saw_applied(int(info["applied"]))
        if info.get("leader"):
            self._leader = info["leader"]

    def _waits(self, since: float) -> bool:
        """A reader waits for the next slot (`streamed`), or a command
        proposed at `since` or before is unanswered: the stall rule's
        "something waits" (paxosctl.client.following)."""
        return self._reads.waiting() or self._tracker.proposed_by(since)

    def _leave_learner(self, learner: Endpoint) -> None:
        """Follow another learner; `learner` is tried last from now on. What
        is in flight is asked of the next one (`_lost`): each command is
        settled once, by the first answer, and resending decides nothing twice."""
        self._learners.demote(learner)
        self._lost(learner, f"streamed no slot for {self._learners.stall_seconds:g}s while "
                            "commands or readers waited")

    def _target(self) -> Endpoint | None:
        """The proposer to send to: the leader if we are connected to it, else
        one that answered, else any we are connected to."""
        up = [p for p in self._proposers if p.conn is not None]
        for p in up:
            if p.name == self._leader:
                return p
        greeted = [p for p in up if p.conn.greeted]
        return (greeted or up or [None])[0]

    def _lost(self, endpoint: Endpoint, why: str = "closed the connection") -> None:
        """Close `endpoint`'s connection and send what waited on it elsewhere.
        `why`: what the learner did, for the queries it leaves unanswered."""
        conn = endpoint.conn
        if conn is None:
            return
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.close()
        endpoint.conn = None
        now = time.monotonic()
        self._next_scan = now  # resend at once what was waiting on it
        if endpoint in self._learners:
            self._tracker.learner_lost(now)  # another learner answers now: ask it for all
            self._reads.learner_lost(f"the learner {endpoint.name} {why}")
        else:
            if self._leader == endpoint.name:
                self._leader = None
            self._tracker.resend_now(now)  # it may never have arrived: send it elsewhere
        if not any(e.conn for e in self._endpoints):
            secure = self._dialler.secure
            for other in self._endpoints:
                # A TCP connect fails later, not here: over TLS each endpoint
                # is retried at its pace, or a dead cluster would be redialled
                # in a loop, once per failed connect.
                if not secure or now >= other.retry_at:
                    self._connect(other, now)
            # A host name still looked up (TLS) is no answer yet: the
            # deadlines say, not this.
            if not any(e.conn for e in self._endpoints) and not self._dialler.pending():
                self._cluster_gone()

    def _cluster_gone(self) -> None:
        """Every agent's connection is lost and none takes a new one (the
        cluster stopped, or its supervisor died and took the agents along):
        nothing will answer, so say so now rather than at the deadline."""
        resolve(self._tracker.cluster_gone(self._cluster_file))
        self._reads.gone(f"the cluster for {self._cluster_file} went away")

    # ------------------------------------------------------------- I/O loop

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except OSError:
            pass

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    closed = self._closed
                if closed:
                    break
                for key, _ in self._selector.select(TICK_SECONDS):
                    if key.data is None:
                        try:
                            while os.read(self._wake_r, 4096):
                                pass
                        except BlockingIOError:
                            pass
                        continue
                    endpoint: Endpoint = key.data
                    got = endpoint.conn.read() if endpoint.conn is not None else None
                    if got is None:
                        self._note_refusal(endpoint)
                        self._lost(endpoint)
                        continue
                    for frame in got:
                        if endpoint.conn is None:
                            break  # lost meanwhile (a REFUSE)
                        self._on_frame(endpoint, frame)
                self._turn(time.monotonic())
        finally:
            self._close_all()

    def _turn(self, now: float) -> None:
        with self._lock:
            new, self._new = self._new, []
            batches, self._new_batches = self._new_batches, []
            self._woken = False
        tracker = self._tracker
        settled: Settled = []
        if new:
            settled += tracker.add(new)
        for requests in batches:
            settled += tracker.add_batch(requests)
        due = now >= self._next_scan
        if due:
            # Retries, deadlines and reconnects: a few times a second, not every turn.
            self._next_scan = now + TICK_SECONDS
            for endpoint in self._proposers:
                if endpoint.conn is None and now >= endpoint.retry_at:
                    self._connect(endpoint, now)
            learner = self._learners.followed()
            if (learner is not None and not learner.conn.greeted
                    and now - learner.connected_at > LEARNER_WAIT_SECONDS):
                # It took the connection and says nothing (stopped, or stuck): another one.
                self._lost(learner)
                learner.retry_at = now + 10 * LEARNER_WAIT_SECONDS
            elif learner is not None and self._learners.stalled(now, self._waits):
                self._leave_learner(learner)
            self._connect_learner(now)
            settled += tracker.expire(now)
        learner = self._learners.followed()
        # With no learner (none connected yet, or one just lost), the queries
        # wait for the next one, dialled at the next scan, one learner wait at most.
        self._reads.route(learner.conn if learner is not None else None, now, LEARNER_WAIT_SECONDS)
        if due or tracker.outbound:
            target = self._target()
            link = (LearnerLink.NONE if learner is None
                    else LearnerLink.SUBSCRIBED if learner.info.get("subscribed")
                    else LearnerLink.CONNECTED)
            out = tracker.take(now, learner=link, proposer=target is not None, due=due)
            if learner is not None:
                for frame in out.to_learner:
                    learner.conn.queue(frame)
            if target is not None:
                for frame in out.to_proposer:
                    target.conn.queue(frame)
            settled += out.settled
        if settled:
            resolve(settled)
        for endpoint in self._endpoints:
            conn = endpoint.conn
            if conn is not None and (conn.has_output or conn.watching_write):
                try:
                    done = conn.write()
                except OSError:
                    self._note_refusal(endpoint)
                    self._lost(endpoint)
                    continue
                if done == conn.watching_write:  # watch writability only while it waits to write
                    self._watch_write(endpoint, not done)

    def _watch_write(self, endpoint: Endpoint, on: bool) -> None:
        conn = endpoint.conn
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if on else 0)
        try:
            self._selector.modify(conn.sock, events, endpoint)
            conn.watching_write = on
        except (KeyError, ValueError):
            pass

    def _note_refusal(self, endpoint: Endpoint) -> None:
        """Count and keep the one line of a TLS handshake or identity check
        that failed on `endpoint`'s connection (an impostor, a certificate
        the agent refused); nothing if it failed otherwise."""
        conn = endpoint.conn
        failure = conn.failure if conn is not None else None
        if failure is None:
            return
        from paxos_agents.runtime.identity import REASONS

        reason, line = failure
        self.refusals[REASONS[reason][0]] += 1
        self.last_refusal = f"{endpoint.name}: {line}"
        if (endpoint.name, reason) not in self._warned:  # once per agent and reason, not per retry
            self._warned.add((endpoint.name, reason))
            log.warning("refused the TLS connection to %s", self.last_refusal)

    def _on_frame(self, endpoint: Endpoint, frame: bytes) -> None:
        kind = frame[:1]
        if not endpoint.conn.greeted:
            if kind == frames.WELCOME:
                self._welcomed(endpoint, json.loads(frame[1:]))
            else:  # REFUSE: another cluster's, or another paxosctl
                self._lost(endpoint)
            return
        if kind == wire.SLOT:
            self._learners.learned(time.monotonic())
            slot, skipped, data = wire.decode_slot(frame[1:])
            settled = self._tracker.on_slot(slot, skipped, data)
            self._reads.reached(slot)
            resolve(settled)
        elif kind == wire.OUTCOMES:
            resolve(self._tracker.on_outcomes(wire.decode_outcomes(frame[1:])))
        elif kind == wire.LOOKED_UP:
            resolve(self._tracker.on_looked_up(*wire.decode_looked_up(frame[1:])))
        elif kind == wire.SUBSCRIBED:
            self._learners.learned(time.monotonic())
            endpoint.info["subscribed"] = True
            subscribed = wire.decode_subscribed(frame[1:])
            self._tracker.on_subscribed(subscribed)
            self._reads.reached(subscribed)
        elif kind == wire.LEADER:
            leader = frame[1:].decode() or None
            if leader != self._leader and leader is not None:
                self._leader = leader
                # What the old leader (or a follower forwarding to it) took may
                # be lost with it: send it to the new one now, not at the next
                # retry (learners apply a request id once).
                now = time.monotonic()
                self._tracker.resend_now(now)
                self._next_scan = now
        elif kind == wire.PAGED:
            page = wire.decode_page(frame[1:])
            self._reads.answer(page.query_id, page)
        elif kind == wire.REPLY:
            reply = json.loads(frame[1:])
            self._reads.answer(reply.get("id"), reply)
        elif kind == wire.CUT:
            self._cut(endpoint, frame[1:])

    def _cut(self, endpoint: Endpoint, body: bytes) -> None:
        """The learner cut this client off (it closes the connection next):
        leave it as at EOF, try it last from now on, and say why (`on_cut`)."""
        try:
            info = json.loads(body)
            reason = str(info.get("reason") or "no reason given") if isinstance(info, dict) \
                else "no reason given"
        except ValueError:
            reason = "no reason given"
        reason = reason[:200]
        if endpoint in self._learners:
            self._learners.demote(endpoint)
        self._lost(endpoint, f"cut the connection: {reason}")
        if self.on_cut is not None:
            self.on_cut(endpoint.name, reason)

    def _close_all(self) -> None:
        for endpoint in self._endpoints:
            if endpoint.conn is not None:
                try:
                    self._selector.unregister(endpoint.conn.sock)
                except (KeyError, ValueError):
                    pass
                endpoint.conn.close()
                endpoint.conn = None
        resolve(self._tracker.close())
        with self._lock:
            self._closed = True
            new, self._new = self._new, []
            batches, self._new_batches = self._new_batches, []
        for request, future in new:
            request.futures = [future]
        unsent = [request for request, _ in new] + [r for requests in batches for r in requests]
        # An error each: one raised from many futures would gather their tracebacks.
        resolve([(request, NotRunning("the client closed before this was sent"))
                 for request in unsent])
        self._reads.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._selector.close()


__all__ = ["DataClient", "Decision", "Expired", "ConnectionLost", "json_value", "retry_hint"]
