"""Request ids a client makes: `RequestIds` (one per data-path client) and
`new_request_id` (a process-wide maker, for the sync and async clients and
`paxosctl propose`).

An id is 32 hex digits, laid out as before (the learners' on-disk index, a
B-tree keyed by request id, relies on the first 12):

    mmmmmmmmmmmm pppppppppppp cccccccc
    12: the wall-clock time in milliseconds (as UUIDv7 orders them), so ids
        made later sort later and a batch of new ids lands at the end of
        the index, a few pages, not one random page each;
    12: the maker's random prefix (48 bits), drawn once per maker and drawn
        again in a forked child (`os.register_at_fork`): a child starts
        with its parent's counter, so without a new prefix it would repeat
        the ids its parent makes next;
     8: a counter (32 bits), one for the whole process, shared by every
        maker and every thread.

Why it holds: two ids of one process differ in the counter (a value is
handed out once), unless 2**32 ids were made between them and the wall
clock came back to the same millisecond; ids of two processes differ in
the prefix (48 random bits) or, within one millisecond, in the counter.
Today's ids were 80 random bits each: `os.urandom` per id, a system call
(about 0.65 µs); this costs a clock read per id (per batch in `batch`)
and no system call.

The counter is `itertools.count`: its `next` is one C call made while
holding the GIL, so two threads never get the same value, and it costs a
tenth of taking a lock. A build without the GIL gets a lock instead
(`_counter`), since there `next` on a shared count is not promised atomic.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
import weakref
from typing import Callable

#: The millisecond field: 12 hex digits.
_MS_MASK = 0xFFFF_FFFF_FFFF
#: The counter field: 8 hex digits.
_COUNT_MASK = 0xFFFF_FFFF


def _counter() -> tuple[Callable[[], int], Callable[[int], list[int]]]:
    """The process's next-counter-value function, and its take-n-values one
    (see the module docstring)."""
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    count = itertools.count()
    if gil:
        # `islice` calls the count's `next` n times, each atomic: the values
        # are this caller's alone (another thread's may fall between them).
        return count.__next__, lambda n: list(itertools.islice(count, n))
    lock = threading.Lock()

    def locked() -> int:
        with lock:
            return next(count)

    def locked_many(n: int) -> list[int]:
        with lock:
            return list(itertools.islice(count, n))
    return locked, locked_many


_next, _take = _counter()
#: Every maker alive, to draw their prefixes again in a forked child.
_makers: weakref.WeakSet[RequestIds] = weakref.WeakSet()


class RequestIds:
    """A maker of fresh request ids: its own random prefix, the process's counter.

    Thread-safe. `one()` makes one id; `batch(n)` makes n, reading the clock
    once. Ids from makers of one process never repeat (the counter), and a
    forked child draws a new prefix for every maker it inherited.
    """

    __slots__ = ("prefix", "_head", "__weakref__")

    def __init__(self) -> None:
        self.prefix = ""
        #: (a millisecond, its first 24 digits): formatting them is most of an
        #: id's cost, and most ids of a busy client share their millisecond.
        #: One attribute, replaced whole, so no thread reads a torn pair.
        self._head = (-1, "")
        self.redraw()
        _makers.add(self)

    def redraw(self) -> None:
        """A new random prefix (12 hex digits)."""
        self.prefix = os.urandom(6).hex()
        self._head = (-1, "")

    def _head_at(self, ms: int) -> str:
        head = self._head
        if head[0] != ms:
            head = self._head = (ms, "%012x%s" % (ms & _MS_MASK, self.prefix))
        return head[1]

    def one(self) -> str:
        """A fresh request id."""
        return self._head_at(time.time_ns() // 1_000_000) + "%08x" % (_next() & _COUNT_MASK)

    def batch(self, n: int) -> list[str]:
        """`n` fresh request ids, in the order made (they sort so), the clock read once."""
        head = self._head_at(time.time_ns() // 1_000_000)
        counts = _take(n)
        if counts and counts[-1] > _COUNT_MASK:  # past 2**32 ids: the field wraps
            counts = [c & _COUNT_MASK for c in counts]
        # C-level passes (`map`), not a Python expression per id.
        return list(map(head.__add__, map("%08x".__mod__, counts)))


def _after_fork_in_child() -> None:
    for maker in list(_makers):
        maker.redraw()


os.register_at_fork(after_in_child=_after_fork_in_child)

#: The maker behind `new_request_id`.
_default = RequestIds()


def new_request_id() -> str:
    """A fresh request id: propose with it, and retry with it after an unknown outcome.

    32 hex digits: milliseconds, this process's prefix, a counter (see the
    module docstring); never the same twice in one process, nor in a
    forked child.
    """
    return _default.one()
