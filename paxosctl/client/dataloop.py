"""The data path's I/O thread: the sockets to the proposers and a learner.

`DataLoop` is what `paxosctl.client.datapath.DataClient` runs on its one
I/O thread, which owns every socket. It takes the proposals the callers
handed over (`paxosctl.client.handoff`), gives them to the request tracker
(`paxosctl.client.tracker`: which frames a request needs and what each
answer does to it, fed frames and time, no sockets), sends the frames it
asks for (WATCH to the learner followed, PROPOSE to the proposer believed
to lead, commands queued together in one frame), reads the answers and
resolves the futures. Around that: connecting and reconnecting, the
choice of learner and the stall rule (`paxosctl.client.following`), a
learner's CUT, the TLS refusals, and the log queries' routing
(`paxosctl.client.reads`).

A command without an answer is sent again every `retry_seconds` (to the
leader a proposer named since, or another proposer), and at once when its
proposer's connection is lost; learners apply a request id once, so
resending never decides it twice.

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
"""

from __future__ import annotations

import json
import random
import time
from typing import Any, Callable

from paxos_agents.runtime import clientwire as wire
from paxos_agents.runtime import frames

from ..endpoints import Endpoints
from ..errors import NotRunning
from .following import Endpoint, Learners
from .handoff import Handoff
from .links import Links
from .reads import Reads
from .tracker import LearnerLink, Settled, Tracker, resolve

#: How often the I/O thread looks at deadlines and retries with nothing else to do.
TICK_SECONDS = 0.05
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


class DataLoop:
    """The I/O side of one `DataClient`: every socket, on one thread (`run`).

    Connects to every proposer and one learner at construction (on the
    caller's thread, before `run` starts) and raises `NotRunning`, with
    everything closed, if no proposer or no learner can be reached.
    `tracker` and `reads` are also read by the callers' threads: the
    tracker's `stamp` and `applied` as snapshots, `reads` (thread-safe) to
    queue queries.
    """

    def __init__(self, endpoints: Endpoints, cluster_file: str, handoff: Handoff) -> None:
        self._cluster_file = cluster_file
        self._handoff = handoff
        #: Called (on the I/O thread) with (learner, reason) when a learner cuts
        #: this client off (CUT); the client follows another one meanwhile.
        self.on_cut: Callable[[str, str], None] | None = None
        learners = list(endpoints.learners)
        random.shuffle(learners)  # spread clients over the learners
        started = time.monotonic()
        #: Which learner answers this client, and the stall rule (paxosctl.client.following).
        self._learners = Learners(learners, now=started,
                                  stall_seconds=STALL_RETRIES * endpoints.retry_seconds)
        #: The connections, and the selector the loop waits on (paxosctl.client.links).
        self.links = Links(endpoints, self._learners, handoff.fd)
        self._leader: str | None = None
        #: Log queries and stream readers (paxosctl.client.reads).
        self.reads = Reads(f"the connection to {cluster_file} is closed")
        #: The requests in flight, as state machines (paxosctl.client.tracker): this
        #: class only carries their frames and resolves their futures.
        self.tracker = Tracker(retry_seconds=endpoints.retry_seconds,
                               retain_slots=endpoints.retain_slots, started=started)
        self._next_scan = 0.0
        for endpoint in self.links.proposers:
            self.links.connect(endpoint, started)
        self.links.connect_learner(started)
        if self._learners.followed() is None or not any(p.conn for p in self.links.proposers):
            self._close_all()
            missing = "learner" if self._learners.followed() is None else "proposer"
            raise NotRunning(f"no {missing} of the cluster for {cluster_file} answers",
                             hint=self.links.last_refusal or "see: paxosctl status")

    @property
    def following(self) -> str | None:
        """The learner whose answers this client follows now (None: none
        answers); a snapshot, for diagnostics (it may change at any time)."""
        learner = self._learners.followed()
        return learner.name if learner is not None else None

    # ------------------------------------------- learners, lost connections

    def _welcomed(self, endpoint: Endpoint, info: dict[str, Any]) -> None:
        endpoint.info = info
        endpoint.conn.greeted = True
        if "applied" in info:
            self.tracker.saw_applied(int(info["applied"]))
        if info.get("leader"):
            self._leader = info["leader"]

    def _waits(self, since: float) -> bool:
        """A reader waits for the next slot (`streamed`), or a command
        proposed at `since` or before is unanswered: the stall rule's
        "something waits" (paxosctl.client.following)."""
        return self.reads.waiting() or self.tracker.proposed_by(since)

    def _leave_learner(self, learner: Endpoint) -> None:
        """Follow another learner; `learner` is tried last from now on. What
        is in flight is asked of the next one (`_lost`): each command is
        settled once, by the first answer, and resending decides nothing twice."""
        self._learners.demote(learner)
        self._lost(learner, f"streamed no slot for {self._learners.stall_seconds:g}s while "
                            "commands or readers waited")

    def _lost(self, endpoint: Endpoint, why: str = "closed the connection") -> None:
        """Close `endpoint`'s connection and send what waited on it elsewhere.
        `why`: what the learner did, for the queries it leaves unanswered."""
        if not self.links.drop(endpoint):
            return
        now = time.monotonic()
        self._next_scan = now  # resend at once what was waiting on it
        if endpoint in self._learners:
            self.tracker.learner_lost(now)  # another learner answers now: ask it for all
            self.reads.learner_lost(f"the learner {endpoint.name} {why}")
        else:
            if self._leader == endpoint.name:
                self._leader = None
            self.tracker.resend_now(now)  # it may never have arrived: send it elsewhere
        if not self.links.any_up() and not self.links.redial(now):
            self._cluster_gone()

    def _cluster_gone(self) -> None:
        """Every agent's connection is lost and none takes a new one (the
        cluster stopped, or its supervisor died and took the agents along):
        nothing will answer, so say so now rather than at the deadline."""
        resolve(self.tracker.cluster_gone(self._cluster_file))
        self.reads.gone(f"the cluster for {self._cluster_file} went away")

    # ------------------------------------------------------------- I/O loop

    def run(self) -> None:
        """The I/O thread: select, read, `_turn`, until the client closes; then
        close every connection and fail what is left (`_close_all`)."""
        self.links.started()
        handoff = self._handoff
        try:
            while not handoff.closed:
                for key, _ in self.links.selector.select(TICK_SECONDS):
                    if key.data is None:
                        handoff.drain()
                        continue
                    endpoint: Endpoint = key.data
                    got = endpoint.conn.read() if endpoint.conn is not None else None
                    if got is None:
                        self.links.note_refusal(endpoint)
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
        new, batches = self._handoff.take()
        tracker = self.tracker
        settled: Settled = []
        if new:
            settled += tracker.add(new)
        for requests in batches:
            settled += tracker.add_batch(requests)
        due = now >= self._next_scan
        if due:
            # Retries, deadlines and reconnects: a few times a second, not every turn.
            self._next_scan = now + TICK_SECONDS
            for endpoint in self.links.proposers:
                if endpoint.conn is None and now >= endpoint.retry_at:
                    self.links.connect(endpoint, now)
            learner = self._learners.followed()
            if (learner is not None and not learner.conn.greeted
                    and now - learner.connected_at > LEARNER_WAIT_SECONDS):
                # It took the connection and says nothing (stopped, or stuck): another one.
                self._lost(learner)
                learner.retry_at = now + 10 * LEARNER_WAIT_SECONDS
            elif learner is not None and self._learners.stalled(now, self._waits):
                self._leave_learner(learner)
            self.links.connect_learner(now)
            settled += tracker.expire(now)
        learner = self._learners.followed()
        # With no learner (none connected yet, or one just lost), the queries
        # wait for the next one, dialled at the next scan, one learner wait at most.
        self.reads.route(learner.conn if learner is not None else None, now, LEARNER_WAIT_SECONDS)
        if due or tracker.outbound:
            target = self.links.target(self._leader)
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
        links = self.links
        for endpoint in links.all:
            conn = endpoint.conn
            if conn is not None and (conn.has_output or conn.watching_write):
                if not links.write(endpoint):
                    self._lost(endpoint)

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
            settled = self.tracker.on_slot(slot, skipped, data)
            self.reads.reached(slot)
            resolve(settled)
        elif kind == wire.OUTCOMES:
            resolve(self.tracker.on_outcomes(wire.decode_outcomes(frame[1:])))
        elif kind == wire.LOOKED_UP:
            resolve(self.tracker.on_looked_up(*wire.decode_looked_up(frame[1:])))
        elif kind == wire.SUBSCRIBED:
            self._learners.learned(time.monotonic())
            endpoint.info["subscribed"] = True
            subscribed = wire.decode_subscribed(frame[1:])
            self.tracker.on_subscribed(subscribed)
            self.reads.reached(subscribed)
        elif kind == wire.LEADER:
            leader = frame[1:].decode() or None
            if leader != self._leader and leader is not None:
                self._leader = leader
                # What the old leader (or a follower forwarding to it) took may
                # be lost with it: send it to the new one now, not at the next
                # retry (learners apply a request id once).
                now = time.monotonic()
                self.tracker.resend_now(now)
                self._next_scan = now
        elif kind == wire.PAGED:
            page = wire.decode_page(frame[1:])
            self.reads.answer(page.query_id, page)
        elif kind == wire.REPLY:
            reply = json.loads(frame[1:])
            self.reads.answer(reply.get("id"), reply)
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
        """Close every connection and the selector, fail every request and
        read in flight or never taken, and close the wake-up pipe."""
        self.links.close()
        resolve(self.tracker.close())
        new, batches = self._handoff.shut()
        for request, future in new:
            request.futures = [future]
        unsent = [request for request, _ in new] + [r for requests in batches for r in requests]
        # An error each: one raised from many futures would gather their tracebacks.
        resolve([(request, NotRunning("the client closed before this was sent"))
                 for request in unsent])
        self.reads.close()
        self._handoff.close_pipe()
