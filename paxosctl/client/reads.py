"""What a data-path client reads from its learner, besides decisions: `Reads`.

Two kinds of waiting, apart from proposals (`tracker.py`):

- log queries: QUERY (a JSON page of the applied log) and PAGE (the binary
  page), each with an id; the learner's REPLY or PAGED answers it by id;
- readers of the stream (`streamed(slot)`): resolved once the learner the
  client follows has streamed that slot (SLOT, SUBSCRIBED).

Callers add from any thread; the client's I/O thread takes the frames to
send (`route`), answers (`answer`, `reached`) and fails (`learner_lost`,
`gone`, `close`). One lock guards it all, held for no I/O: futures are
resolved after it is released.
"""

from __future__ import annotations

import itertools
import json
import threading
from concurrent.futures import Future
from concurrent.futures._base import RUNNING as _RUNNING  # the state set_running_... sets
from typing import Any, TypeVar

from paxos_agents.runtime import clientwire as wire
from paxos_agents.runtime.connection import Connection

from ..errors import ConnectionLost, NotRunning, PaxosctlError

T = TypeVar("T")


class _BornRunning(Future[T]):
    """A `Future` created in the RUNNING state: `set_running_or_notify_cancel`
    takes the future's lock to move it there, a third of what making a
    future costs (about 0.3 of 1.1 µs here), once per proposal; a future
    nobody else holds yet needs no lock to be put in its first state."""

    def __init__(self) -> None:
        super().__init__()
        self._state = _RUNNING


def running_future(kind: type[T]) -> Future[T]:
    """A new future for a result of type `kind`, already marked running.

    So its `cancel()` fails: `asyncio.wrap_future` cancels the future it
    wraps when the awaiting task is cancelled, and a cancelled future would
    make the I/O thread's `set_result` raise. A request that left cannot be
    called back anyway."""
    return _BornRunning()


class Reads:
    """Log queries by id and stream readers by slot, of one client.

    `closed` is the line `NotRunning` says once the client closed.
    """

    def __init__(self, closed: str) -> None:
        self._closed_line = closed
        self._lock = threading.Lock()
        self._closed = False
        self._ids = itertools.count(1)
        #: Queries sent or to send, by id: their replies (a dict, or a `wire.Page`).
        self._pending: dict[int, Future[Any]] = {}
        #: Query frames not yet handed to a learner.
        self._out: list[bytes] = []
        #: When `route` last found no learner to send to (0: it had one).
        self._no_learner_since = 0.0
        #: The highest slot the learner followed streamed, and who waits for a higher one.
        self._streamed = -1
        self._waiters: list[tuple[int, Future[int]]] = []

    # ----------------------------------------------------- callers' threads

    def query(self, start: int | None, limit: int) -> Future[dict[str, Any]]:
        """A QUERY for one JSON page of the applied log from `start`."""
        body: dict[str, Any] = {"op": "decided", "limit": limit}
        if start is not None:
            body["from"] = start
        return self._add(dict, lambda query_id: wire.QUERY + json.dumps({**body, "id": query_id}).encode())

    def page(self, start: int | None, limit: int) -> Future[Any]:
        """A PAGE query for one binary page of the applied log from `start`."""
        return self._add(object, lambda query_id: wire.encode_page_query(query_id, start, limit))

    def _add(self, kind: type, frame) -> Future[Any]:
        future = running_future(kind)
        with self._lock:
            if self._closed:
                raise NotRunning(self._closed_line)
            query_id = next(self._ids)
            self._pending[query_id] = future
            self._out.append(frame(query_id))
        return future

    def streamed(self, slot: int) -> Future[int]:
        """Resolved (to the highest slot streamed) once `slot` or a later one is."""
        future = running_future(int)
        with self._lock:
            if self._closed:
                raise NotRunning(self._closed_line)
            if self._streamed >= slot:
                future.set_result(self._streamed)
            else:
                self._waiters.append((slot, future))
        return future

    # ------------------------------------------------------------ I/O thread

    def route(self, learner: Connection | None, now: float, wait: float) -> None:
        """Hand the query frames to `learner`'s connection. With none (none
        connected yet, or one just lost; over TLS its name may still be
        looked up) they wait for the next one, `wait` seconds at most, then
        fail with `NotRunning`."""
        with self._lock:
            out, self._out = self._out, []
            if learner is not None:
                self._no_learner_since = 0.0
            else:
                self._no_learner_since = self._no_learner_since or now
                if now - self._no_learner_since < wait:
                    self._out[:0] = out
                    return
        if learner is not None:
            for frame in out:
                learner.queue(frame)
        else:
            self._fail(NotRunning("no learner answers"))

    def answer(self, query_id: Any, result: Any) -> None:
        """A REPLY (its "id") or PAGED (`page.query_id`) arrived."""
        with self._lock:
            future = self._pending.pop(query_id, None)
        if future is not None:
            future.set_result(result)

    def reached(self, slot: int) -> None:
        """The learner followed streamed `slot`: wake those waiting for it."""
        with self._lock:
            if slot <= self._streamed:
                return
            self._streamed = slot
            if not self._waiters:
                return
            ready = [f for s, f in self._waiters if s <= slot]
            self._waiters = [(s, f) for s, f in self._waiters if s > slot]
        for future in ready:
            future.set_result(slot)

    def waiting(self) -> bool:
        """A reader waits for a slot not streamed yet."""
        with self._lock:
            return bool(self._waiters)

    def learner_lost(self, line: str) -> None:
        """The learner that had the queries is gone: they fail (`ConnectionLost`)."""
        self._fail(ConnectionLost(line))

    def gone(self, line: str) -> None:
        """The whole cluster is gone: the stream readers fail (`NotRunning`)."""
        self._fail_waiters(NotRunning(line))

    def close(self) -> None:
        """The client closed: everything waiting fails, and nothing more is taken."""
        with self._lock:
            self._closed = True
        self._fail(ConnectionLost("the client closed"))
        self._fail_waiters(NotRunning(self._closed_line))

    def _fail(self, error: PaxosctlError) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for future in pending.values():
            future.set_exception(error)

    def _fail_waiters(self, error: PaxosctlError) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for _, future in waiters:
            future.set_exception(error)
