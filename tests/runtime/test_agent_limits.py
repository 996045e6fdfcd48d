"""Connections before the handshake cannot cost an agent process much (issue 20).

Each test runs one real agent process (tests/runtime/lone_agent.py: a
replica deciding alone) with the limits it needs, probes it over its Unix
socket, and then checks that it still decides a command.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from paxos_agents.core.commands import Command
from paxos_agents.runtime import clientwire as wire
from paxos_agents.runtime import frames
from paxos_agents.runtime.transport import CLIENT, hello

from clusters import short_tmpdir, wait_until

LONE_AGENT = Path(__file__).with_name("lone_agent.py")


class LoneAgent:
    def __init__(self, folder: Path, process: subprocess.Popen) -> None:
        self.folder = folder
        self.process = process
        self.socket = str(folder / "run" / "r0.sock")
        self.ps = psutil.Process(process.pid)

    def log(self) -> str:
        path = self.folder / "r0.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def dial(self, *first: bytes) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(self.socket)
        if first:
            sock.sendall(frames.pack(first))
        return sock

    def decides(self, request_id: str) -> bool:
        """Propose one command as a client and wait for its DECIDED outcome."""
        with self.dial(hello("lone", CLIENT, 0, "r0"),
                       wire.PROPOSE + wire.encode_commands([Command(request_id, b"v", -1)]),
                       wire.WATCH + wire.encode_ids([request_id])) as sock:
            reader = frames.FrameReader()
            while True:
                data = sock.recv(1 << 16)
                assert data, "the agent closed a greeted client's connection"
                for frame in reader.feed(data):
                    if frame[:1] == wire.OUTCOMES:
                        outcome, = wire.decode_outcomes(frame[1:])
                        return outcome.request_id == request_id and outcome.status == wire.DECIDED


def start(handshake: float = 5.0, max_inbound: int = 1024, nofile: int = 0) -> LoneAgent:
    folder = short_tmpdir()
    process = subprocess.Popen([sys.executable, str(LONE_AGENT), str(folder), str(handshake),
                                str(max_inbound), str(nofile)], stdin=subprocess.DEVNULL)
    agent = LoneAgent(folder, process)
    wait_until(lambda: agent.decides("warm-up"), 30, "the lone agent to decide")
    return agent


@pytest.fixture
def lone() -> Iterator[list[LoneAgent]]:
    started: list[LoneAgent] = []
    try:
        yield started
    finally:
        for agent in started:
            agent.process.send_signal(signal.SIGTERM)
            try:
                agent.process.wait(10)
            except subprocess.TimeoutExpired:
                agent.process.kill()
                agent.process.wait(10)


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        while sock.recv(1 << 16):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except (BlockingIOError, socket.timeout):
        return False


def test_idle_unauthenticated_connections_are_closed_at_the_handshake_deadline(lone) -> None:
    agent = start(handshake=0.5)
    lone.append(agent)
    idle = [agent.dial() for _ in range(50)]
    half = [agent.dial() for _ in range(10)]
    for sock in half:
        sock.sendall(b"\x00\x00\x00\x40" + b"{")  # a HELLO begun, never finished
    for sock in idle + half:
        sock.setblocking(False)
    wait_until(lambda: all(closed_by_peer(s) for s in idle + half), 10,
               "the agent to close every connection that did not greet it")
    for sock in idle + half:
        sock.close()
    assert agent.decides("after-idle")
    assert agent.ps.num_fds() < 40  # none of the 60 is held


def test_partial_frames_before_the_handshake_do_not_grow_memory(lone) -> None:
    """The probe that took an acceptor from 27 to 507 MiB: eight connections
    sending most of a 64 MiB frame before any HELLO. The length prefix alone
    is over the pre-handshake limit: each is closed, nothing buffered."""
    agent = start()
    lone.append(agent)
    before = agent.ps.memory_info().rss
    body = b"x" * (1 << 20)
    for _ in range(8):
        with agent.dial() as sock:
            sock.sendall((64 << 20).to_bytes(4, "big"))
            try:
                for _ in range(60):
                    sock.sendall(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed on us, as it should be
            else:
                raise AssertionError("the agent took 60 MiB of a frame before the handshake")
    grown = agent.ps.memory_info().rss - before
    assert grown < 16 << 20, f"RSS grew by {grown >> 20} MiB"
    assert agent.decides("after-partial-frames")


def test_out_of_descriptors_the_agent_backs_off_instead_of_spinning(lone) -> None:
    """At RLIMIT_NOFILE, accept() fails with EMFILE while connections wait
    in the backlog: the agent stops watching its listener for a while
    (the old code spun at 80% CPU logging thousands of lines)."""
    agent = start(handshake=60, nofile=48)
    lone.append(agent)
    socks = [agent.dial() for _ in range(80)]  # more than it can accept
    wait_until(lambda: "Too many open files" in agent.log(), 10, "accept to run out")
    cpu = agent.ps.cpu_times()
    started = time.monotonic()
    wait_until(lambda: time.monotonic() - started >= 2.0, 5, "two seconds out of descriptors")
    used = sum(agent.ps.cpu_times()[:2]) - sum(cpu[:2])
    assert used < 0.3, f"{used:.2f} s of CPU in 2 s while out of descriptors"
    # About 0.02 s when backing off; the spinning loop used 0.75 s or more on a loaded machine.
    lines = [line for line in agent.log().splitlines() if "accept failed" in line]
    assert len(lines) <= 3, lines[-3:]
    for sock in socks:
        sock.close()
    wait_until(lambda: agent.decides("after-emfile"), 20, "the agent to serve again")
