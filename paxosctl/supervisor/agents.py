"""One agent as the supervisor sees it: its process, pipes and restart state.

`AgentProcess` owns the current incarnation's process and both ends of
its pipes that stay in the supervisor. When the incarnation ends, the
pipes go with it and the next incarnation gets new ones: a pipe never
outlives the process at either end (see paxos_agents.runtime.frames).
What to do with many of them (watch, judge, restart) is `paxosctl.supervisor.fleet`.
"""

from __future__ import annotations

import collections
import logging
import os
import time
from multiprocessing.connection import Connection
from typing import Any

import psutil

from paxos_agents.runtime import frames
from paxos_agents.runtime.main import agent_main
from paxos_agents.runtime.report import AgentReport
from paxos_agents.runtime.spec import AgentSpec as RuntimeSpec

from ..manifest import AgentSpec
from .metrics import report_totals
from .restart import AgentState, ExitCause, Lifecycle, exit_cause

log = logging.getLogger("paxosctl.supervisor")

#: Bytes kept for an agent that does not read its inbox, before dropping frames.
MAX_PENDING_BYTES = 32 * 1024 * 1024
#: Bytes read from an outbox in one go.
READ_BYTES = 1 << 20


class Channel:
    """The supervisor's ends of one incarnation's pipes, non-blocking.

    The supervisor's loop reads whatever an agent wrote and writes what it
    can without ever blocking: an agent that stopped reading (hung, or
    stopped with SIGSTOP) fills its pipe and then its `pending` buffer,
    past which frames are dropped and counted (Paxos tolerates lost
    messages); it never stalls the loop or the other agents.
    """

    def __init__(self, inbox: Connection, outbox: Connection) -> None:
        self._inbox = inbox  # the Connections own the descriptors
        self._outbox = outbox
        self.write_fd = inbox.fileno()
        self.read_fd = outbox.fileno()
        os.set_blocking(self.write_fd, False)
        os.set_blocking(self.read_fd, False)
        self.reader = frames.FrameReader()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._unsent = b""
        self.dropped = 0
        self.eof = False
        self.broken = False
        #: Whether the supervisor's selector watches `write_fd` (output is pending).
        self.watching_write = False

    def read(self) -> list[bytes]:
        """Every complete frame the agent has written so far (sets `eof` at the end)."""
        chunks = []
        while True:
            try:
                data = os.read(self.read_fd, READ_BYTES)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self.eof = True
                break
            chunks.append(data)
            if len(data) < READ_BYTES:
                break
        if not chunks:
            return []
        try:
            return self.reader.feed(b"".join(chunks))
        except frames.FrameError:
            self.eof = self.broken = True  # a garbled stream: treat the agent as gone
            return []

    def queue(self, frame: bytes) -> bool:
        """Queue one frame for the agent; False (counted) if over the limit."""
        if self.broken or self._pending_bytes > MAX_PENDING_BYTES:
            self.dropped += 1
            return False
        self._pending.append(frame)
        self._pending_bytes += len(frame) + 4
        return True

    @property
    def has_output(self) -> bool:
        return bool(self._pending or self._unsent)

    def flush(self) -> bool:
        """Write what the pipe takes now; True if everything was written."""
        if self.broken:
            return True
        if self._pending:
            self._unsent += frames.pack(self._pending)
            self._pending = []
            self._pending_bytes = 0
        while self._unsent:
            try:
                written = os.write(self.write_fd, self._unsent)
            except BlockingIOError:
                return False
            except OSError:
                self.broken = True  # the agent is gone; its exit is noticed separately
                self._unsent = b""
                return True
            self._unsent = self._unsent[written:]
        return True

    def close(self) -> None:
        self._inbox.close()
        self._outbox.close()


class AgentProcess:
    """An agent slot in the supervisor: survives its incarnations."""

    def __init__(self, spec: AgentSpec, lifecycle: Lifecycle) -> None:
        self.spec = spec
        self.name = spec.name
        self.lifecycle = lifecycle
        self.process: Any = None
        self.incarnation = 0
        self.channel: Channel | None = None
        self.last_beat = 0.0
        #: The current incarnation's latest heartbeat report (None: none yet).
        self.report: AgentReport | None = None
        self.last_error: str | None = None
        #: Why the supervisor signalled the current incarnation to end, if it
        #: did (the latest such signal); `reap` turns it into the ExitCause.
        self.ending: ExitCause | None = None
        #: A malformed report from this incarnation was logged (once is enough).
        self.bad_report_logged = False
        #: Counters of ended incarnations, so totals never go backwards.
        self.past_totals: collections.Counter[str] = collections.Counter()
        self.health_failures = 0
        #: Stopped by the operator (`paxosctl stop`): stays stopped, whatever
        #: the restart policy, until `start` or `restart`; not counted as down.
        self.held = False
        #: When a stopping incarnation that ignores SIGTERM gets SIGKILL.
        self.kill_at: float | None = None
        #: `start` came while a stopped incarnation was still ending.
        self.start_when_reaped = False
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

    def spawn(self, ctx: Any, spec: RuntimeSpec, now: float) -> Channel:
        """Start a new incarnation with fresh pipes; return the supervisor's ends."""
        inbox_r, inbox_w = ctx.Pipe(duplex=False)
        outbox_r, outbox_w = ctx.Pipe(duplex=False)
        process = ctx.Process(target=agent_main, args=(spec, inbox_r, outbox_w),
                              name=f"paxos-{self.name}", daemon=True)
        process.start()
        # Close our copies of the agent's ends: then EOF means it is gone.
        inbox_r.close()
        outbox_w.close()
        self.incarnation += 1
        self.process = process
        self.channel = Channel(inbox_w, outbox_r)
        self.last_beat = now
        self.report = None
        self.ending = None
        self.bad_report_logged = False
        self.lifecycle.spawned(now)
        return self.channel

    def send(self, frame: bytes) -> bool:
        """Queue a frame for the agent; False (and counted) if it is not running."""
        channel = self.channel
        if channel is None or not channel.queue(frame):
            self.dropped += 1
            return False
        return True

    def signal(self, signum: int, ending: ExitCause | None = None) -> bool:
        """Send `signum` to the current incarnation, if it runs. `ending`:
        the signal is meant to end it, for that cause (reported at `reap`)."""
        process = self.process
        if process is None or process.exitcode is not None:
            return False
        if ending is not None:
            self.ending = ending
        try:
            os.kill(process.pid, signum)
        except ProcessLookupError:
            return False
        return True

    def reap(self) -> tuple[int | None, ExitCause]:
        """Collect the ended incarnation and drop its pipes; return its exit
        status (None: unknown) and why it ended."""
        process = self.process
        code = None
        if process is not None:
            process.join(timeout=5)
            code = process.exitcode
            process.close() if code is not None else None
        if self.channel is not None:
            self.channel.close()
        self.channel = None
        self.process = None
        if self.report is not None:
            self.past_totals.update(report_totals(self.report))
        self.report = None
        self.cpu_past += self.cpu_current
        self.cpu_current = 0.0
        return code, exit_cause(code, self.ending)

    def uptime(self, now: float) -> float | None:
        started = self.lifecycle.started_at
        if self.state in (AgentState.RUNNING, AgentState.STARTING) and started is not None:
            return now - started
        return None


def monotonic() -> float:
    return time.monotonic()


def process_usage(pid: int | None) -> dict[str, Any]:
    """CPU seconds and resident memory of `pid` (None when it is gone)."""
    if pid is None:
        return {"cpu_s": None, "rss_bytes": None}
    try:
        p = psutil.Process(pid)
        with p.oneshot():
            cpu = p.cpu_times()
            return {"cpu_s": round(cpu.user + cpu.system, 3), "rss_bytes": p.memory_info().rss}
    except psutil.Error:
        return {"cpu_s": None, "rss_bytes": None}
