"""A message meant for one incarnation of an agent never reaches the next.

The supervisor queues frames for an agent that is not reading (stopped, or
hung) in its pipe and a buffer; when that incarnation dies, what was queued
for it must die too: a restarted agent handed its predecessor's hints would
act on news no longer true (a SUSPECT about a leader long replaced, chaos
settings changed since).

Real processes and pipes: the first incarnation never reads; the second
writes every frame it receives to a file.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import paxosctl.supervisor.agents as agents_module
from paxos_agents.runtime import frames
from paxosctl.supervisor.agents import AgentProcess
from paxosctl.manifest import AgentSpec, RestartSettings
from paxosctl.supervisor.restart import ExitCause, Lifecycle

from clusters import wait_until


def deaf(spec, inbox, outbox) -> None:
    """An incarnation that never reads its inbox."""
    time.sleep(60)


def recorder(spec, inbox, outbox) -> None:
    """An incarnation that writes every frame it receives to `spec` (a path)."""
    reader = frames.FrameReader()
    deadline = time.monotonic() + 30
    with open(spec, "ab") as out:
        while time.monotonic() < deadline:
            if inbox.poll(0.05):
                data = os.read(inbox.fileno(), 1 << 20)
                if not data:
                    return
                for frame in reader.feed(data):
                    out.write(frame + b"\n")
                    out.flush()


def test_frames_queued_for_a_dead_incarnation_never_reach_the_next(tmp_path: Path, monkeypatch):
    ctx = multiprocessing.get_context("fork")
    agent = AgentProcess(AgentSpec("acceptor-0", "acceptor", "acceptor", 0),
                         Lifecycle(RestartSettings()))
    record = tmp_path / "received"
    monkeypatch.setattr(agents_module, "agent_main", deaf)
    channel = agent.spawn(ctx, str(record), time.monotonic())
    sent = 0
    while channel.flush():  # fill the pipe, then the supervisor-side buffer
        agent.send(frames.SUSPECT + f"old-{sent}".encode() + b"x" * 1000)
        sent += 1
    agent.send(frames.SUSPECT + b"old-pending")
    assert channel.has_output
    agent.signal(signal.SIGKILL, ExitCause.OPERATOR_KILL)
    code, cause = agent.reap()
    assert (code, cause) == (-signal.SIGKILL, ExitCause.OPERATOR_KILL)
    agent.lifecycle.exited(time.monotonic(), cause, code)

    monkeypatch.setattr(agents_module, "agent_main", recorder)
    channel = agent.spawn(ctx, str(record), time.monotonic() + 60)  # past any backoff
    agent.send(frames.SUSPECT + b"new-1")
    wait_until(lambda: channel.flush(), 10, "the new incarnation's pipe to take its frame")
    wait_until(lambda: record.exists() and b"new-1" in record.read_bytes(), 10,
               "the new incarnation to receive its frame")
    agent.signal(signal.SIGKILL)
    agent.reap()
    received = record.read_bytes().splitlines()
    assert received == [frames.SUSPECT + b"new-1"], received[:3]
