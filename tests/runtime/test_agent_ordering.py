"""The runtime obeys the Ready contract: nothing that depends on a change
leaves the agent before the change is durable (Paxos Made Simple, section
2.5). An agent whose save fails (an fsync error, or a crash in it) must not
have sent the Promise or Accepted that the save was for.

The Agent runs in this process, on real pipes, with a storage that fails
its save; what it wrote to its outbox is read back and decoded.
"""

from __future__ import annotations

import os
from multiprocessing import Pipe

import pytest

from paxos_agents.core import Accept, Accepted, Ballot, Membership, Prepare, Promise, Settings
from paxos_agents.core.commands import NOOP
from paxos_agents.runtime import frames
from paxos_agents.runtime.agent import Agent
from paxos_agents.runtime.codec import decode, encode
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
                     log_path=str(tmp_path / "a1.log"), seed=1)
    inbox_r, inbox_w = Pipe(duplex=False)
    outbox_r, outbox_w = Pipe(duplex=False)
    return Agent(spec, inbox_r, outbox_w, storage), inbox_w, outbox_r


def sent(outbox_r) -> list:
    """Every peer message the agent wrote to its outbox so far."""
    os.set_blocking(outbox_r.fileno(), False)
    reader = frames.FrameReader()
    out = []
    while True:
        try:
            data = os.read(outbox_r.fileno(), 1 << 20)
        except BlockingIOError:
            break
        if not data:
            break
        for frame in reader.feed(data):
            if frame[:1] == frames.PEER:
                out.append(decode(frames.split_peer(frame)[1]))
    return out


@pytest.mark.parametrize(("msg", "reply"), [
    (Prepare(src="p1", dst="a1", ballot=Ballot(1, "p1"), first_slot=0), Promise),
    (Accept(src="p1", dst="a1", ballot=Ballot(1, "p1"), slot=0, value=NOOP), Accepted),
], ids=["promise-waits-for-its-promise", "accepted-waits-for-its-vote"])
def test_a_reply_never_leaves_before_its_state_is_durable(tmp_path, msg, reply):
    storage = FailingSave()
    a, inbox_w, outbox_r = agent(tmp_path, storage)
    # First, with a working disk: the reply goes out (the test can see it).
    os.write(inbox_w.fileno(), frames.pack([frames.PEER + encode(msg)]))
    assert a._read_inbox()
    a._flush()
    a._write_out()
    assert {type(m) for m in sent(outbox_r)} == {reply}
    # Then the save of a newer change fails: its reply must not have left.
    storage.fail = True
    newer = (Prepare(src="p1", dst="a1", ballot=Ballot(2, "p1"), first_slot=0)
             if reply is Promise else
             Accept(src="p1", dst="a1", ballot=Ballot(1, "p1"), slot=1, value=NOOP))
    os.write(inbox_w.fileno(), frames.pack([frames.PEER + encode(newer)]))
    assert a._read_inbox()
    with pytest.raises(StorageError):
        a._flush()
    a._write_out()  # whatever was queued would go now
    assert [m for m in sent(outbox_r) if isinstance(m, reply)] == []
