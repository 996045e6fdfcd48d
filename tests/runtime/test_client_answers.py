"""What a learner tells its clients: where each request id was first decided.

A request id is decided with one value only, and a client is told the
position of its *first* decision, whatever it asks and whenever: the
learner answers from the slot it applies (SLOT frames to subscribers),
from its request index (WATCH for an id applied before), and from the
same turn's report when an id was applied by a message stepped just before
the WATCH arrived. The client compares the first value with its own and
refuses a mismatch as `request_id_conflict` (tests/api/test_tracker.py,
without sockets).

A real learner `Agent` runs in this process on a real endpoint; the test is
its client, on a real socket, and plays the acceptors.
"""

from __future__ import annotations

import socket
import time
from multiprocessing import Pipe
from pathlib import Path

import pytest

from paxos_agents.core import Accepted, Ballot, Chunk, Command, Membership, Settings
from paxos_agents.core.commands import Value
from paxos_agents.runtime import clientwire as wire
from paxos_agents.runtime import frames
from paxos_agents.runtime.agent import Agent
from paxos_agents.runtime.control import PipeControl
from paxos_agents.runtime.codec import encode
from paxos_agents.runtime.spec import AgentSpec
from paxos_agents.runtime.storage import SqliteStorage
from paxos_agents.runtime.transport import CLIENT, hello

MEMBERS = Membership(proposers=("p1",), acceptors=("a1", "a2", "a3"), learners=("l1", "l2"))
B1 = Ballot(1, "p1")


class Learner:
    """A learner agent in this process, and one client connection to it."""

    def __init__(self, tmp_path: Path, retain: int = 0) -> None:
        spec = AgentSpec(name="l1", membership=MEMBERS, settings=Settings(retain_slots=retain),
                         tick_seconds=0.01, heartbeat_seconds=0.2,
                         state_path=str(tmp_path / "l1.db"), log_path=str(tmp_path / "l1.log"),
                         seed=1, run_dir=str(tmp_path / "run"))
        inbox_r, self._inbox_w = Pipe(duplex=False)
        self._outbox_r, outbox_w = Pipe(duplex=False)
        self.agent = Agent(spec, PipeControl(inbox_r, outbox_w), SqliteStorage(spec.state_path))
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(tmp_path / "run" / "l1.sock"))
        self.sock.setblocking(False)
        self._reader = frames.FrameReader()
        self.send(hello("", CLIENT, 0, "l1"))
        assert self.frames()[0][:1] == frames.WELCOME

    def send(self, *frames_: bytes) -> None:
        self.sock.sendall(frames.pack(frames_))

    def turn(self) -> None:
        """One turn of the agent's loop: handle what arrived, drain, write."""
        for key, mask in self.agent._selector.select(0.05):
            key.data(mask)
        self.agent._flush()
        self.agent.transport.flush()

    def decide(self, slot: int, *commands: Command, turn: bool = True) -> None:
        """A majority of acceptors accepted `commands` in `slot`."""
        value = Value.of(commands)
        for acceptor in ("a1", "a2"):
            self.agent._on_message(acceptor, encode(
                Accepted(src=acceptor, dst="l1", ballot=B1, slot=slot, value=value)))
        if turn:
            self.agent._flush()
            self.agent.transport.flush()

    def frames(self) -> list[bytes]:
        """Run turns until the learner has sent something (deadline 5 s); all of it."""
        out: list[bytes] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            self.turn()
            while True:
                try:
                    data = self.sock.recv(1 << 20)
                except BlockingIOError:
                    break
                out += self._reader.feed(data)
            if out:
                return out
        raise AssertionError("the learner sent nothing within 5 s")

    def close(self) -> None:
        self.sock.close()
        self.agent.transport.close()


@pytest.fixture
def learner(tmp_path: Path):
    le = Learner(tmp_path)
    yield le
    le.close()


def outcomes(frames_: list[bytes]) -> list[wire.Outcome]:
    return [o for f in frames_ if f[:1] == wire.OUTCOMES for o in wire.decode_outcomes(f[1:])]


def test_a_subscriber_gets_each_slot_with_the_commands_not_applied_there(learner) -> None:
    learner.send(wire.SUBSCRIBE)
    [subscribed] = learner.frames()
    assert subscribed[:1] == wire.SUBSCRIBED and wire.decode_subscribed(subscribed[1:]) == -1
    learner.decide(0, Command("a", b"1"), Command("b", b"2"))
    learner.decide(1, Command("c", b"3"), Command("a", b"1"))  # "a" again: a retry
    slots = [wire.decode_slot(f[1:]) for f in learner.frames() if f[:1] == wire.SLOT]
    assert [(slot, skipped) for slot, skipped, _ in slots] == [
        (0, {}),
        (1, {1: wire.Skipped(wire.DECIDED, 0, 0, wire.digest(b"1"))}),  # first decided at 0.0
    ]
    assert Value.from_bytes(slots[1][2]).commands == (Command("c", b"3"), Command("a", b"1"))


def test_a_retry_of_a_command_installed_in_the_same_turn_names_its_first_position(
        learner) -> None:
    """Slot 0 copied from a peer (state transfer) and slot 1, which decides
    "a" again, applied right after it, in one turn: slot 0 is not on disk
    yet when slot 1 is streamed, and must still be named as "a"'s first."""
    learner.send(wire.SUBSCRIBE)
    learner.frames()
    learner.decide(1, Command("a", b"1"), turn=False)  # waits for slot 0
    learner.agent._on_message("l2", encode(Chunk(
        src="l2", dst="l1", asked=0, first_slot=0, decisions=((0, Value.of([Command("a", b"1")])),),
        first_slots=(("a", 0),))))
    slots = [wire.decode_slot(f[1:]) for f in learner.frames() if f[:1] == wire.SLOT]
    assert [(slot, skipped) for slot, skipped, _ in slots] == [
        (0, {}),  # installed, and streamed as applied here (a follower sees it)
        (1, {0: wire.Skipped(wire.DECIDED, 0, 0, wire.digest(b"1"))})]


def test_a_watch_for_an_id_applied_long_ago_is_answered_from_the_index(learner) -> None:
    learner.decide(0, Command("x", b"0"))
    learner.decide(1, Command("old", b"first value"), Command("y", b"0"))
    for slot in range(2, 40):
        learner.decide(slot, Command(f"r{slot}", b"v"))
    learner.send(wire.WATCH + wire.encode_ids(["old", "never"]))
    assert outcomes(learner.frames()) == [
        wire.Outcome("old", wire.DECIDED, 1, 0, wire.digest(b"first value"))]
    learner.decide(40, Command("never", b"now"))
    assert outcomes(learner.frames()) == [
        wire.Outcome("never", wire.DECIDED, 40, 0, wire.digest(b"now"))]


def test_a_watch_for_an_id_applied_earlier_in_the_same_turn_waits_for_its_report(
        learner) -> None:
    """The id is in the index (applied by a message stepped this turn) but
    not on disk yet: the answer comes from this turn's report, not from a
    read of the disk that would not find it."""
    learner.decide(0, Command("x", b"v"), turn=False)  # stepped, not drained
    learner.agent.clients.on_frame(_client_conn(learner), wire.WATCH + wire.encode_ids(["x"]))
    assert outcomes(learner.frames()) == [wire.Outcome("x", wire.DECIDED, 0, 0, wire.digest(b"v"))]


def _client_conn(learner: Learner):
    [conn] = [c for c in learner.agent.transport.inbound.conns if c.peer == CLIENT]
    return conn


def test_a_first_slot_no_longer_retained_cannot_be_compared(tmp_path: Path) -> None:
    le = Learner(tmp_path, retain=16)
    try:
        le.decide(0, Command("gone", b"v", 0))
        for slot in range(1, 80):
            le.decide(slot, Command(f"r{slot}", b"v", slot - 1))
        assert le.agent._storage.log_start > 0
        # Still in memory (as the ids of a Ready not yet written), not on disk.
        le.agent.node.learner.requests.unpersisted["gone"] = 0
        le.send(wire.WATCH + wire.encode_ids(["gone"]))
        [answer] = outcomes(le.frames())
        assert (answer.status, answer.slot) == (wire.NOT_RETAINED, 0)
    finally:
        le.close()
