"""What the callers' threads hand the data path's I/O thread, and its wake-up.

`DataClient`'s API runs on the callers' threads; the sockets belong to one
I/O thread (`paxosctl.client.dataloop`). `Handoff` is the only state both
touch: the proposals not taken yet (one request and its future per
`propose_async`, a batch's requests per `propose_many_async`), whether
the client is closed, and a pipe the I/O thread's selector watches, so a
caller can wake it. Everything here is under one lock, held for a few
list operations.

One wake-up per batch of calls, not per call: the I/O thread takes every
proposal when it wakes, and a caller writes to the pipe only when no
wake-up is on its way already (a system call per command would cost more
than the rest of the command's client-side work). Once the I/O thread has
closed the pipe (`close_pipe`), a wake-up writes nothing: its descriptor
may already be another file's (the write is made under the lock for that).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING

from ..errors import NotRunning

if TYPE_CHECKING:
    from .results import Decision
    from .tracker import Request

#: One `propose_async` call: its request and its future.
One = tuple["Request", "Future[Decision]"]


class Handoff:
    """Proposals from any thread to the I/O thread, and the pipe that wakes it."""

    def __init__(self, closed_message: str) -> None:
        """`closed_message`: the `NotRunning` line a call gets once the client is closed."""
        self._closed_message = closed_message
        self._lock = threading.Lock()  # everything below
        self._ones: list[One] = []
        self._batches: list[list[Request]] = []
        self._woken = False  # a wake-up is on its way to the I/O thread
        self._closed = False
        self._read_end, self._write_end = os.pipe()
        os.set_blocking(self._read_end, False)
        os.set_blocking(self._write_end, False)
        self._pipe_open = True

    @property
    def fd(self) -> int:
        """The descriptor the I/O thread's selector watches (readable: woken)."""
        return self._read_end

    @property
    def closed(self) -> bool:
        with self._lock:
            return self._closed

    # ------------------------------------------------------ callers' threads

    def one(self, request: "Request", future: "Future[Decision]") -> None:
        """Hand over one proposal; `NotRunning` (nothing handed) once closed."""
        with self._lock:
            if self._closed:
                raise NotRunning(self._closed_message)
            self._ones.append((request, future))
            if not self._woken:
                self._woken = True
                self._write()

    def many(self, requests: "list[Request]") -> None:
        """Hand over one batch's requests together; `NotRunning` once closed."""
        with self._lock:
            if self._closed:
                raise NotRunning(self._closed_message)
            self._batches.append(requests)
            if not self._woken:
                self._woken = True
                self._write()

    def wake(self) -> None:
        """Wake the I/O thread (a query or a read was queued elsewhere)."""
        with self._lock:
            self._write()

    def close(self) -> None:
        """Refuse every call from now on and wake the I/O thread to end."""
        with self._lock:
            self._closed = True
            self._write()

    def _write(self) -> None:
        """One byte down the pipe, under the lock: never after `close_pipe`."""
        if not self._pipe_open:
            return
        try:
            os.write(self._write_end, b"\0")
        except OSError:  # full: a wake-up is waiting anyway
            pass

    # ------------------------------------------------------------ I/O thread

    def drain(self) -> None:
        """Read the wake-ups that arrived (the selector said the pipe is readable)."""
        try:
            while os.read(self._read_end, 4096):
                pass
        except BlockingIOError:
            pass

    def take(self) -> tuple[list[One], list[list["Request"]]]:
        """The proposals handed over since the last take, oldest first."""
        with self._lock:
            ones, self._ones = self._ones, []
            batches, self._batches = self._batches, []
            self._woken = False
        return ones, batches

    def shut(self) -> tuple[list[One], list[list["Request"]]]:
        """Close (if a caller has not) and take what was handed over but never
        taken: the I/O thread ends, and each of these fails."""
        with self._lock:
            self._closed = True
        return self.take()

    def close_pipe(self) -> None:
        """Close both ends of the pipe (the I/O thread's last step)."""
        with self._lock:
            self._pipe_open = False
            for fd in (self._read_end, self._write_end):
                try:
                    os.close(fd)
                except OSError:
                    pass
