"""An agent's control plane: who it reports to and who may steer it.

The agent's loop (agent.py) is the same whether a supervisor runs it or it
runs as a program of its own (`paxosctl agent NAME`); what differs is
behind `Control`:

- `PipeControl`: the supervisor's two pipes (frames.py). Out: LOADING
  while the store opens, FATAL before a refusal's exit, HEARTBEAT every
  heartbeat interval, RECONFIG_REFUSED. In: SUSPECT, CHAOS, MEMBERS,
  RECONFIG. The agent exits when the inbox closes (its supervisor is gone)
  or the outbox breaks: an agent nobody supervises must not linger.
- `StandaloneControl`: no pipes. Each heartbeat report is published on a
  `Board` that the program's HTTP thread reads (/healthz, /readyz,
  /metrics); MEMBERS, RECONFIG and CHAOS come as admin frames on client
  connections (clients.py), and leader suspicion is the core's own
  election timeout. A missing supervisor is normal here, never a reason to
  stop: only SIGTERM or SIGINT end it.

Either way the frames that steer the agent reach the same `Steering`
methods (the agent's), so a change behaves the same whichever channel
carried it.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import signal
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from typing import Callable, Protocol

from . import frames
from .chaos import ChaosSettings

log = logging.getLogger("paxos_agents.agent")

#: Bytes read from the inbox per iteration at most.
READ_BYTES = 1 << 16
#: Bytes of heartbeats held for a supervisor that does not read, at most.
MAX_OUTBOX_BYTES = 1 << 20


class Steering(Protocol):
    """What a control channel may ask of the agent (agent.Agent implements it).

    Each returns None when done, or the one-line reason it refused."""

    def suspect(self, name: str) -> None: ...

    def set_chaos(self, settings: ChaosSettings) -> None: ...

    def set_membership(self, body: dict) -> str | None: ...

    def reconfigure(self, body: dict) -> str | None: ...

    def stop(self, *_: object) -> None: ...


class Control(Protocol):
    """The agent's end of its control plane (see the module docstring)."""

    def loading(self, interval: float) -> Callable[[], None]:
        """Say "alive, still loading" every `interval` seconds until the
        returned function is called."""

    def fatal(self, message: str) -> None:
        """Say, once, why the agent is about to exit with EXIT_NEEDS_OPERATOR."""

    def attach(self, selector: selectors.BaseSelector, steering: Steering) -> None:
        """Register its input (if any) with the loop's selector, for `steering`."""

    def signals(self, stop: Callable[..., None]) -> None:
        """Install the signal handlers that end the loop gracefully."""

    def heartbeat(self, report: dict, connected: frozenset[str]) -> None:
        """A heartbeat: the `AgentReport` JSON, and the peers linked now."""

    def reconfig_refused(self, why: str) -> None:
        """A RECONFIG that came on this channel was refused (one line)."""

    def flush(self) -> None:
        """Write what is queued (never blocking)."""

    #: The channel's other end went away: the agent should stop.
    gone: bool
    #: Frames on the channel that were not control frames (the heartbeat's `malformed`).
    malformed: int


class PipeControl:
    """The supervisor's inbox and outbox pipes (the behaviour before the seam)."""

    def __init__(self, inbox: Pipe, outbox: Pipe) -> None:
        # Keep the Connection objects: they own the descriptors.
        self._inbox = inbox
        self._outbox = outbox
        self._inbox_fd = inbox.fileno()
        self._outbox_fd = outbox.fileno()
        self._reader = frames.FrameReader()
        self._unsent = b""
        self._steering: Steering | None = None
        self.gone = False
        #: Frames of an unknown kind (counted in the agent's `malformed`).
        self.malformed = 0

    # -- before the loop (agent_main) ----------------------------------

    def loading(self, interval: float) -> Callable[[], None]:
        return _Loading(self._outbox_fd, interval).stop

    def fatal(self, message: str) -> None:
        try:
            os.write(self._outbox_fd, frames.pack([frames.FATAL + message.encode()]))
        except OSError:
            pass

    # -- the loop ------------------------------------------------------

    def attach(self, selector: selectors.BaseSelector, steering: Steering) -> None:
        os.set_blocking(self._outbox_fd, False)
        self._steering = steering
        selector.register(self._inbox_fd, selectors.EVENT_READ, self._on_inbox)

    def signals(self, stop: Callable[..., None]) -> None:
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's to handle

    def _on_inbox(self, _mask: int) -> None:
        """Frames from the supervisor (control plane only)."""
        steering = self._steering
        assert steering is not None
        try:
            data = os.read(self._inbox_fd, READ_BYTES)
        except OSError:
            data = b""
        if not data:
            log.info("supervisor gone (inbox closed); exiting")
            self.gone = True
            return
        for frame in self._reader.feed(data):
            kind = frame[:1]
            if kind == frames.SUSPECT:
                steering.suspect(frame[1:].decode())
            elif kind == frames.CHAOS:
                steering.set_chaos(ChaosSettings.from_json(frames.json_body(frame)))
            elif kind == frames.MEMBERS:
                steering.set_membership(frames.json_body(frame))  # refusals are logged there
            elif kind == frames.RECONFIG:
                why = steering.reconfigure(frames.json_body(frame))
                if why is not None:
                    self.reconfig_refused(why)
            else:
                self.malformed += 1
                log.warning("dropped a frame of unknown kind %r", kind)

    def heartbeat(self, report: dict, connected: frozenset[str]) -> None:
        self._queue(frames.json_frame(frames.HEARTBEAT, report))

    def reconfig_refused(self, why: str) -> None:
        self._queue(frames.RECONFIG_REFUSED + why.encode())

    def _queue(self, frame: bytes) -> None:
        """Queue a report for the supervisor; skipped while older ones are unsent."""
        if len(self._unsent) > MAX_OUTBOX_BYTES:
            return
        self._unsent += frames.pack([frame])
        self.flush()

    def flush(self) -> None:
        """Write what the pipe takes, never blocking: a stopped supervisor
        must not stall the data path."""
        try:
            while self._unsent:
                written = os.write(self._outbox_fd, self._unsent)
                self._unsent = self._unsent[written:]
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno == errno.EPIPE:
                self.gone = True  # the supervisor is gone
            self._unsent = b""


class _Loading:
    """Tells the supervisor "alive, still loading" while the store opens.

    Opening is constant-time, except the one-time migration of an old
    state file; the supervisor must not mistake either for a hung start.
    A thread, because the opening is one blocking call. It is the only
    writer of the outbox until `stop()` returns.
    """

    def __init__(self, fd: int, interval: float) -> None:
        self._fd = fd
        self._interval = interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loading", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        frame = frames.pack([frames.LOADING])
        while True:
            try:
                os.write(self._fd, frame)
            except OSError:
                return
            if self._done.wait(self._interval):
                return

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


@dataclass(frozen=True, slots=True)
class Beat:
    """One heartbeat as the standalone program's HTTP thread sees it."""

    report: dict
    #: Peers with a greeted connection to or from this agent at that moment.
    connected: frozenset[str]
    #: time.monotonic() when it was published.
    at: float


class Board:
    """The latest `Beat`, handed from the loop's thread to readers (HTTP).

    One reference swap per heartbeat: readers never see a half-built one."""

    def __init__(self) -> None:
        self.latest: Beat | None = None

    def publish(self, beat: Beat) -> None:
        self.latest = beat


class StandaloneControl:
    """No supervisor: heartbeats go on a `Board`; steering comes as admin
    frames on client connections (clients.py); signals end the agent."""

    gone = False  # there is no other end to lose
    malformed = 0  # nor a channel to receive on

    def __init__(self, board: Board, clock: Callable[[], float] = time.monotonic) -> None:
        self.board = board
        self._clock = clock
        self._stop: Callable[..., None] | None = None
        self._stop_requested = False

    def request_stop(self, *_: object) -> None:
        """End the agent gracefully; before its loop runs (the store still
        opening), as soon as it does. The program's signal handler until then."""
        self._stop_requested = True
        if self._stop is not None:
            self._stop()

    def loading(self, interval: float) -> Callable[[], None]:
        return lambda: None  # /healthz answers 503 "starting" until the first heartbeat

    def fatal(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)  # the one line an engine shows

    def attach(self, selector: selectors.BaseSelector, steering: Steering) -> None:
        pass

    def signals(self, stop: Callable[..., None]) -> None:
        # SIGINT too: run in the foreground, Ctrl-C is the operator's way to stop it.
        self._stop = stop
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        if self._stop_requested:
            stop()  # a signal came while the store was opening

    def heartbeat(self, report: dict, connected: frozenset[str]) -> None:
        self.board.publish(Beat(report, connected, self._clock()))

    def reconfig_refused(self, why: str) -> None:
        pass  # an admin RECONFIG's refusal is answered on its own connection

    def flush(self) -> None:
        pass
