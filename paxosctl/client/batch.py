"""One `propose_many` call in flight: one future for many commands.

`DataClient.propose_many_async` makes a `BatchFuture` and one `Request`
per value (`paxosctl.client.tracker`), each naming the batch and its
place in it (`Request.batch`, `Request.index`), and hands them all to the
I/O thread in one step. No `concurrent.futures.Future` is made per value:
its construction (a Condition, so a lock) and resolution (a notify) are
most of what one command costs a client on the one-future-per-command
path.

`tracker.resolve` writes each value's result into `results` at its index
and counts `left` down, on the I/O thread, each exactly once (a request
settles once), so neither needs a lock; when none is left it calls
`finish`, which resolves the batch's future with one `Proposed` per
value, in order.
"""

from __future__ import annotations

from concurrent.futures import Future
from itertools import repeat
from typing import Any

from ..errors import PaxosctlError
from . import outcomes
from .results import Decision, Proposed

#: Makes a `Proposed` from a tuple of its fields, in C (`map` over `zip`):
#: NamedTuple's own `__new__` is a Python call per value.
_new_tuple = tuple.__new__


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
        #: Each value's result once settled (written by `tracker.resolve` on
        #: the I/O thread), None before.
        self.results: list[Decision | PaxosctlError | None] = [None] * len(request_ids)
        #: Values not settled yet (counted down by `tracker.resolve`).
        self.left = len(request_ids)
        if not request_ids:
            self.set_result([])

    def settle(self, index: int, result: Decision | PaxosctlError) -> None:
        """I/O thread: the value at `index` settled (once); the batch's
        future resolves with the last one. (`tracker.resolve` does the same
        inline for a request's own batch; this is for a `Member`.)"""
        self.results[index] = result
        self.left -= 1
        if not self.left:
            self.finish()

    def finish(self) -> None:
        """I/O thread: every value settled: resolve the future."""
        self.set_result(self._proposed(self.results))

    def so_far(self) -> list[Proposed]:
        """The results now, from any thread: a value not settled yet reads as
        `ProposalTimeout` (its outcome unknown to the caller who gives up
        waiting: it may still be decided; retry it by id)."""
        results = list(self.results)  # one copy: the I/O thread may fill more meanwhile
        return self._proposed([r if r is not None else outcomes.timed_out(rid, None)
                               for r, rid in zip(results, self.request_ids)])

    def _proposed(self, results: list[Any]) -> list[Proposed]:
        if set(map(type, results)) == {Decision}:  # the usual case: every one decided (C passes)
            return list(map(_new_tuple, repeat(Proposed),
                            zip(self.request_ids, self.payloads, results, repeat(None))))
        out = []
        for rid, payload, result in zip(self.request_ids, self.payloads, results):
            if isinstance(result, Decision):
                out.append(Proposed(rid, payload, result))
            else:
                out.append(Proposed(rid, payload, None, result))
        return out


class Member:
    """One value of a `BatchFuture` as a future-like waiter (`set_result`,
    `set_exception`): for the rare request that two batches wait for (a
    caller reusing its own ids), the second one's place; each batch's
    own value is settled through `Request.batch` instead."""

    __slots__ = ("batch", "index")

    def __init__(self, batch: BatchFuture, index: int) -> None:
        self.batch = batch
        self.index = index

    def set_result(self, result: Decision) -> None:
        self.batch.settle(self.index, result)

    def set_exception(self, error: PaxosctlError) -> None:
        self.batch.settle(self.index, error)
