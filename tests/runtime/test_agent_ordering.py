"""The runtime obeys the Ready contract: nothing that depends on a change
leaves the agent before the change is durable (Paxos Made Simple, section
2.5). An agent whose save fails (an fsync error, or a crash in it) must not
have sent the Promise or Accepted that the save was for.

The Agent runs in this process, on real pipes and sockets, with a storage
that fails its save; what it sent to the proposer's endpoint (a socket the
test listens on) is read back and decoded.
"""

from __future__ import annotations

import os
import socket
from multiprocessing import Pipe

import pytest

from peer_inbox import Received
from paxos_agents.core import Accept, Accepted, Ballot, Membership, Prepare, Promise, Settings
from paxos_agents.core.commands import NOOP
from paxos_agents.runtime.agent import Agent
from paxos_agents.runtime.control import PipeControl
from paxos_agents.runtime.codec import encode
from paxos_agents.runtime.transport import endpoint
from paxos_agents.runtime.spec import AgentSpec
from paxos_agents.runtime.storage import MemoryStorage, StorageError

MEMBERS = Membership(proposers=("p1",), acceptors=("a1", "a2", "a3"), learners=("l1",))


class FailingSave(MemoryStorage):
    """Durable in memory until `fail` is set; then every save fails."""

    fail = False

    def save(self, persist):
        if self.fail and persist:
            raise StorageError("injected: fsync failed")
        super().save(persist)


def agent(tmp_path, storage):
    spec = AgentSpec(name="a1", membership=MEMBERS, settings=Settings(), tick_seconds=0.01,
                     heartbeat_seconds=0.2, state_path=str(tmp_path / "a1.db"),
                     log_path=str(tmp_path / "a1.log"), seed=1, run_dir=str(tmp_path / "run"))
    inbox_r, inbox_w = Pipe(duplex=False)
    outbox_r, outbox_w = Pipe(duplex=False)
    os.makedirs(spec.run_dir, mode=0o700)
    proposer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # p1's endpoint: the test
    proposer.bind(endpoint(spec.run_dir, "p1"))
    proposer.listen(1)
    proposer.setblocking(False)
    return Agent(spec, PipeControl(inbox_r, outbox_w), storage), proposer, (inbox_w, outbox_r)


def deliver(a: Agent, msg) -> None:
    """Hand `msg` to the agent as its transport would, from the connection of `msg.src`."""
    a._on_message(msg.src, encode(msg))


@pytest.mark.parametrize(("msg", "reply"), [
    (Prepare(src="p1", dst="a1", ballot=Ballot(1, "p1"), first_slot=0), Promise),
    (Accept(src="p1", dst="a1", ballot=Ballot(1, "p1"), slot=0, value=NOOP), Accepted),
], ids=["promise-waits-for-its-promise", "accepted-waits-for-its-vote"])
def test_a_reply_never_leaves_before_its_state_is_durable(tmp_path, msg, reply):
    storage = FailingSave()
    a, listener, _pipes = agent(tmp_path, storage)
    received = Received(listener)
    # First, with a working disk: the reply goes out (the test can see it).
    deliver(a, msg)
    a._flush()
    a.transport.flush()
    assert {type(m) for m in received.messages()} == {reply}
    # Then the save of a newer change fails: its reply must not have left.
    storage.fail = True
    newer = (Prepare(src="p1", dst="a1", ballot=Ballot(2, "p1"), first_slot=0)
             if reply is Promise else
             Accept(src="p1", dst="a1", ballot=Ballot(1, "p1"), slot=1, value=NOOP))
    deliver(a, newer)
    with pytest.raises(StorageError):
        a._flush()
    a.transport.flush()  # whatever was queued would go now
    assert [m for m in received.messages() if isinstance(m, reply)] == []
