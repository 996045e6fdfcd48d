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

A command without an answer is sent again until its deadline, where it
fails with `ProposalTimeout` (exit 124: it may still be decided).

This module is the API, on the callers' threads: it checks the arguments,
makes the futures and the request ids, and hands the requests over
(`paxosctl.client.handoff`). The sockets, reconnects, the choice of learner
and the stall rule are the I/O thread's (`paxosctl.client.dataloop`); which
frames a request needs and what each answer does to it is
`paxosctl.client.tracker`'s; what a request ends with is
`paxosctl.client.outcomes`'.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import Future
from itertools import repeat
from typing import Any, Callable, Iterable

from ..endpoints import Endpoints
from ..errors import ConnectionLost, Expired
from .batch import BatchFuture
from .checks import check_proposal, check_timeout, check_value, check_values
from .dataloop import DataLoop
from .handoff import Handoff
from .ids import RequestIds
from .reads import running_future
from .results import Decision, json_value, retry_hint
from .tracker import Request, RequestState

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
        self._cluster_file = cluster_file or endpoints.cluster
        #: Makes this client's request ids (its own prefix: paxosctl.client.ids).
        self.ids = RequestIds()
        #: What the callers hand the I/O thread (proposals, wake-ups).
        self._handoff = Handoff(f"the connection to {self._cluster_file} is closed")
        #: The I/O thread's side: the sockets, the tracker, the reads.
        self._loop = DataLoop(endpoints, self._cluster_file, self._handoff)
        self.on_cut = on_cut
        self._thread = threading.Thread(target=self._loop.run, name="paxosctl-data", daemon=True)
        self._thread.start()

    @property
    def on_cut(self) -> Callable[[str, str], None] | None:
        """Called (on the I/O thread) with (learner, reason) when a learner cuts
        this client off (CUT); the client follows another one meanwhile."""
        return self._loop.on_cut

    @on_cut.setter
    def on_cut(self, call: Callable[[str, str], None] | None) -> None:
        self._loop.on_cut = call

    @property
    def refusals(self) -> Counter[str]:
        """TLS connections to agents that failed their handshake or identity
        check, by `identity.REASONS` counter name (paxosctl.client.links)."""
        return self._loop.links.refusals

    @property
    def last_refusal(self) -> str:
        """The last such refusal's one line ("" if none)."""
        return self._loop.links.last_refusal

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
        self._handoff.one(pending, future)
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
        self._handoff.many(requests)
        return batch

    @property
    def following(self) -> str | None:
        """The learner whose answers this client follows now (None: none
        answers); a snapshot, for diagnostics (it may change at any time)."""
        return self._loop.following

    def stamp(self, request_id: str) -> int | None:
        """The stamp `request_id` was (or will be) proposed with, if known."""
        return self._loop.tracker.stamp(request_id)

    @property
    def applied(self) -> int:
        """The highest slot known decided (a snapshot): new commands are stamped with it."""
        return self._loop.tracker.applied

    def query_decided(self, start: int | None, limit: int) -> Future[dict[str, Any]]:
        """Ask the learner for one page of the applied log from slot `start`
        (None: the first retained) of about `limit` entries; the future
        resolves to its reply (`paxos_agents.runtime.clients`: entries with
        base64 values, decided_up_to, log_start; or error and code), or
        raises `ConnectionLost` if the learner's connection is lost first.
        Parse it with `paxosctl.client.decidedlog.LogCursor`."""
        future = self._loop.reads.query(start, limit)
        self._handoff.wake()
        return future

    def read_page(self, start: int | None, limit: int) -> Future[Any]:
        """Ask the learner for one page of the applied log from slot `start`
        (None: the first retained) of about `limit` entries, in the binary
        format (PAGE). The future resolves to a `clientwire.Page` (whole
        slots as stored; `paxosctl.client.decidedlog` decodes them), or to an error
        reply dict (as `query_decided`'s), or raises `ConnectionLost` if the
        learner's connection is lost first."""
        future = self._loop.reads.page(start, limit)
        self._handoff.wake()
        return future

    def streamed(self, slot: int) -> Future[int]:
        """A future that resolves (to the highest slot streamed) once the
        learner has streamed slot `slot` or a later one: a slot it applied,
        whose page a `decided` query now returns. It raises `NotRunning`
        when the client closes or the cluster goes away first."""
        return self._loop.reads.streamed(slot)

    def close(self) -> None:
        """Close the client: its I/O thread fails what is in flight
        (`NotRunning`) and ends (waited for up to 5 s)."""
        self._handoff.close()
        if self._thread is not threading.current_thread():
            self._thread.join(5)

    def __enter__(self) -> "DataClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["DataClient", "Decision", "Expired", "ConnectionLost", "json_value", "retry_hint"]
