"""The supervisor's event loop: one selector, one thread, handlers not tags.

Every descriptor is registered with the function that handles it, and a
turn calls `handler(mask)` for each one ready: nothing dispatches on a
string. Other threads (the metrics server's, signal handlers) never touch
the loop's state: they `post` an action (a callable taking no argument),
which the loop runs in its own thread on its next turn, woken through a
pipe.
"""

from __future__ import annotations

import os
import queue
import selectors
import threading
from typing import Any, Callable

#: What a descriptor's handler is called with: the ready events (selectors.EVENT_*).
Handler = Callable[[int], None]
#: What another thread asks the loop to run.
Action = Callable[[], None]


class Loop:
    """A selector whose registrations carry their handlers, and a to-do list
    other threads may add to. Only the thread that calls `turn` runs handlers
    and actions."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self._posted: queue.SimpleQueue[Action] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.watch(self._wake_r, selectors.EVENT_READ, self._drain_wake)
        #: The thread that runs `turn` (set at its first turn).
        self.thread: int | None = None

    def watch(self, fileobj: Any, events: int, handler: Handler) -> None:
        """Call `handler(mask)` whenever `fileobj` is ready for `events`."""
        self.selector.register(fileobj, events, handler)

    def unwatch(self, fileobj: Any) -> None:
        """Stop watching `fileobj` (before it is closed); nothing if not watched."""
        try:
            self.selector.unregister(fileobj)
        except (KeyError, ValueError):
            pass

    def post(self, action: Action) -> None:
        """From any thread, a signal handler too: run `action` in the loop's
        thread on its next turn, and wake it for that."""
        self._posted.put(action)  # SimpleQueue.put is safe in a signal handler
        try:
            os.write(self._wake_w, b"\0")
        except OSError:
            pass  # the pipe is full: the loop is awake anyway

    def in_loop_thread(self) -> bool:
        return threading.get_ident() == self.thread

    def turn(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for a descriptor; run the handler of
        each one ready, then every action posted so far."""
        self.thread = threading.get_ident()
        for key, mask in self.selector.select(timeout):
            key.data(mask)
        while True:
            try:
                action = self._posted.get_nowait()
            except queue.Empty:
                break
            action()

    def _drain_wake(self, mask: int) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
