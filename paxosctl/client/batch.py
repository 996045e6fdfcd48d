"""One `propose_many` call in flight: one future for many commands.

`DataClient.propose_many_async` makes a `BatchFuture` and one `Request`
per value (`paxosctl.client.tracker`), and hands them all to the I/O
thread in one step. The tracker resolves a request by calling
`set_result` or `set_exception` on each object in its `futures`; for a
value of a batch that object is a `Member` (its place in the batch), a
small slotted object, not a `concurrent.futures.Future`, whose
construction (a Condition, so a lock) and resolution (a notify) are most
of what one command costs a client on the one-future-per-command path.

Every member is resolved on the I/O thread, each exactly once (a request
settles once), so the count of values left needs no lock; the last one
resolves the batch's future with one `Proposed` per value, in order.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from ..errors import PaxosctlError
from . import outcomes
from .results import Decision, Proposed


class BatchFuture(Future[list[Proposed]]):
    """A future of `list[Proposed]`, one per value of the call, in order.

    Created running (it cannot be cancelled: the values have left, as
    `paxosctl.client.reads.running_future` says), so `asyncio.wrap_future`
    may wrap it. `request_ids` and `payloads` are the call's, in order.
    """

    def __init__(self, request_ids: list[str], payloads: list[bytes]) -> None:
        super().__init__()
        self.set_running_or_notify_cancel()
        self.request_ids = request_ids
        self.payloads = payloads
        #: Each value's result once settled (I/O thread), None before.
        self._results: list[Decision | PaxosctlError | None] = [None] * len(request_ids)
        self._left = len(request_ids)
        if not request_ids:
            self.set_result([])

    def members(self) -> list[Member]:
        """One `Member` per value, in order: what the tracker resolves."""
        return [Member(self, i) for i in range(len(self.request_ids))]

    def _settle(self, index: int, result: Decision | PaxosctlError) -> None:
        """I/O thread: the value at `index` settled (once)."""
        self._results[index] = result
        self._left -= 1
        if not self._left:
            self.set_result(self._proposed(self._results))

    def so_far(self) -> list[Proposed]:
        """The results now, from any thread: a value not settled yet reads as
        `ProposalTimeout` (its outcome unknown to the caller who gives up
        waiting: it may still be decided; retry it by id)."""
        results = list(self._results)  # one copy: the I/O thread may fill more meanwhile
        return self._proposed([r if r is not None else outcomes.timed_out(rid, None)
                               for r, rid in zip(results, self.request_ids)])

    def _proposed(self, results: list[Any]) -> list[Proposed]:
        out = []
        for rid, payload, result in zip(self.request_ids, self.payloads, results):
            if isinstance(result, Decision):
                out.append(Proposed(rid, payload, result))
            else:
                out.append(Proposed(rid, payload, None, result))
        return out


class Member:
    """One value of a `BatchFuture`, as the tracker resolves it (`set_result`
    with a `Decision`, `set_exception` with the error)."""

    __slots__ = ("batch", "index")

    def __init__(self, batch: BatchFuture, index: int) -> None:
        self.batch = batch
        self.index = index

    def set_result(self, result: Decision) -> None:
        self.batch._settle(self.index, result)

    def set_exception(self, error: PaxosctlError) -> None:
        self.batch._settle(self.index, error)
