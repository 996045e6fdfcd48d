"""One agent as the supervisor sees it: its process, pipes and restart state.

`AgentProcess` owns the current incarnation's process and both ends of
its pipes that stay in the supervisor. When the incarnation ends, the
pipes go with it and the next incarnation gets new ones: a pipe never
outlives the process at either end (see paxos_agents.runtime.frames).
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from multiprocessing.connection import Connection, wait
from typing import Any, Callable

from paxos_agents.runtime.main import agent_main
from paxos_agents.runtime.spec import AgentSpec as RuntimeSpec

from .manifest import AgentSpec
from .metrics import beat_totals
from .restart import AgentState, Lifecycle

log = logging.getLogger("paxosctl.supervisor")

#: Frames kept for an agent that does not read its inbox, before dropping.
MAX_QUEUED_FRAMES = 50_000


class PipeWriter:
    """Writes frames to an agent's inbox from its own thread.

    The supervisor's loop only appends to a deque, so an agent that stopped
    reading (hung, or stopped with SIGSTOP) can fill its pipe without
    stalling the supervisor; past `MAX_QUEUED_FRAMES` frames are dropped
    and counted (Paxos tolerates lost messages).
    """

    def __init__(self, conn: Connection, name: str) -> None:
        self._conn = conn
        self._frames: collections.deque[bytes] = collections.deque()
        self._ready = threading.Condition()
        self._closed = False
        self.dropped = 0
        threading.Thread(target=self._run, name=f"inbox-{name}", daemon=True).start()

    def put(self, frame: bytes) -> bool:
        with self._ready:
            if self._closed:
                return False
            if len(self._frames) >= MAX_QUEUED_FRAMES:
                self.dropped += 1
                return False
            self._frames.append(frame)
            self._ready.notify()
        return True

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()

    def _run(self) -> None:
        frames = self._frames
        try:
            while True:
                with self._ready:
                    while not frames and not self._closed:
                        self._ready.wait()
                    if self._closed:
                        return
                    batch = list(frames)
                    frames.clear()
                for frame in batch:
                    self._conn.send_bytes(frame)
        except OSError:
            pass  # the agent is gone; its exit is noticed through its sentinel
        finally:
            self._closed = True
            self._conn.close()


def read_outbox(conn: Connection, sentinel: int,
                deliver: Callable[[bytes], None], ended: Callable[[], None]) -> None:
    """Thread body: pass each frame from an agent's outbox to `deliver`.

    Returns (after calling `ended`) at EOF or when the process sentinel
    fires: a dead agent is noticed at once, not at the next health check.
    """
    try:
        while True:
            ready = wait([conn, sentinel])
            if conn in ready:
                try:
                    deliver(conn.recv_bytes())
                except (EOFError, OSError):
                    break
            else:
                while conn.poll(0):  # what it sent just before dying
                    deliver(conn.recv_bytes())
                break
    except (EOFError, OSError):
        pass
    finally:
        conn.close()
        ended()


class AgentProcess:
    """An agent slot in the supervisor: survives its incarnations."""

    def __init__(self, spec: AgentSpec, lifecycle: Lifecycle) -> None:
        self.spec = spec
        self.name = spec.name
        self.lifecycle = lifecycle
        self.process: Any = None
        self.incarnation = 0
        self.writer: PipeWriter | None = None
        self.last_beat = 0.0
        self.beat: dict[str, Any] = {}
        self.last_error: str | None = None
        #: Why we signalled it, reported when its exit is noticed.
        self.kill_reason: str | None = None
        #: Counters of ended incarnations, so totals never go backwards.
        self.past_totals: collections.Counter[str] = collections.Counter()
        self.health_failures = 0
        self.dropped = 0
        self.restarts_by_reason: collections.Counter[str] = collections.Counter()
        #: CPU seconds of ended incarnations, and of the current one when last sampled.
        self.cpu_past = 0.0
        self.cpu_current = 0.0

    @property
    def state(self) -> AgentState:
        return self.lifecycle.state

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def spawn(self, ctx: Any, spec: RuntimeSpec, now: float,
              on_frame: Callable[[str, int, bytes], None],
              on_exit: Callable[[str, int], None]) -> None:
        """Start a new incarnation with fresh pipes."""
        inbox_r, inbox_w = ctx.Pipe(duplex=False)
        outbox_r, outbox_w = ctx.Pipe(duplex=False)
        process = ctx.Process(target=agent_main, args=(spec, inbox_r, outbox_w),
                              name=f"paxos-{self.name}", daemon=True)
        process.start()
        # Close our copies of the agent's ends: then EOF means it is gone.
        inbox_r.close()
        outbox_w.close()
        self.incarnation += 1
        incarnation = self.incarnation
        self.process = process
        self.writer = PipeWriter(inbox_w, self.name)
        self.last_beat = now
        self.beat = {}
        self.kill_reason = None
        threading.Thread(
            target=read_outbox,
            args=(outbox_r, process.sentinel,
                  lambda frame: on_frame(self.name, incarnation, frame),
                  lambda: on_exit(self.name, incarnation)),
            name=f"outbox-{self.name}", daemon=True,
        ).start()
        self.lifecycle.spawned(now)
        log.info("%s: started pid %d (incarnation %d)", self.name, process.pid, incarnation)

    def send(self, frame: bytes) -> bool:
        """Queue a frame for the agent; False (and counted) if it is not running."""
        writer = self.writer
        if writer is None or not writer.put(frame):
            self.dropped += 1
            return False
        return True

    def signal(self, signum: int, reason: str | None = None) -> bool:
        """Send `signum` to the current incarnation, if it runs."""
        process = self.process
        if process is None or process.exitcode is not None:
            return False
        if reason is not None:
            self.kill_reason = reason
        try:
            os.kill(process.pid, signum)
        except ProcessLookupError:
            return False
        return True

    def reap(self) -> int | None:
        """Collect the ended incarnation's exit code and drop its pipes."""
        process = self.process
        code = None
        if process is not None:
            process.join(timeout=5)
            code = process.exitcode
            process.close() if code is not None else None
        if self.writer is not None:
            self.writer.close()
        self.writer = None
        self.process = None
        if self.beat:
            self.past_totals.update(beat_totals(self.beat))
        self.beat = {}
        self.cpu_past += self.cpu_current
        self.cpu_current = 0.0
        return code

    def uptime(self, now: float) -> float | None:
        started = self.lifecycle.started_at
        if self.state in (AgentState.RUNNING, AgentState.STARTING) and started is not None:
            return now - started
        return None


def monotonic() -> float:
    return time.monotonic()
