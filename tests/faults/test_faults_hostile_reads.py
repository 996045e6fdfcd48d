"""Hostile reads on a real cluster: the learners' loops stay responsive.

Issue 20 (7): one LOOKUP of 1M request ids, or one `decided` page of
hundreds of 64 KiB values, held a learner's loop past its health timeout
(3 s): it was SIGKILLed, and a page of 1,000 such entries (~87 MB) was
over the 64 MiB frame limit, so `decided` failed with "no learner
answers". Here: a real cluster whose log holds big values, a client on a
real socket asking for 1M request ids (one frame: refused; split as the
client splits it: all answered), `decided` over the whole log, and the
pages read one by one; no agent may be restarted, every page must fit a
frame.
"""

from __future__ import annotations

import json
import socket
import threading

from paxos_agents.runtime import clientwire as wire
from paxos_agents.runtime import frames
from paxos_agents.runtime.transport import CLIENT, hello
from paxosctl.client.decidedlog import LogCursor

from .harness import FaultCluster, describe

#: Entries of the log, each a 64 KiB value ([paxos] max_value_bytes): 10 MiB,
#: 2.5 times a page's bound. (The write path takes ~1 MB/s of such values on
#: a loaded 2-core machine: more would make a slow test.)
BIG_ENTRIES = 160
VALUE = 65536
#: Commands per slot ([paxos] batch): slots of 256 KiB.
BATCH = 4
#: Request ids of the hostile LOOKUP.
IDS = 1_000_000


class RawClient:
    """A client connection to one agent on a real socket, past the handshake."""

    def __init__(self, cluster: FaultCluster, agent: str) -> None:
        endpoints = cluster.client().data().endpoints
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(endpoints.socket(agent))
        self.reader = frames.FrameReader()
        self.pending: list[bytes] = []
        self.sock.sendall(frames.pack([hello(endpoints.cluster_id, CLIENT, 0, agent)]))
        assert self.next()[:1] == frames.WELCOME

    def next(self) -> bytes:
        while not self.pending:
            data = self.sock.recv(1 << 20)
            assert data, "the agent closed the connection"
            self.pending += self.reader.feed(data)
        return self.pending.pop(0)

    def close(self) -> None:
        self.sock.close()


def fill(cluster: FaultCluster) -> None:
    client = cluster.client()
    for at in range(0, BIG_ENTRIES, 40):
        futures = [client.propose_async(bytes([n % 251]) * VALUE, fresh=True, timeout=60)
                   for n in range(at, at + 40)]
        for future in futures:
            future.result(90)


def restarts(cluster: FaultCluster) -> dict[str, int]:
    return {a["name"]: a["restarts"] for a in cluster.status()["agents"]}


def test_huge_lookups_and_big_pages_leave_every_loop_responsive(fault_clusters) -> None:
    cluster = fault_clusters("roles", paxos={"batch": BATCH})
    fill(cluster)
    learner = cluster.learners[0]
    ids = [f"hostile-{n:07d}" for n in range(IDS)]

    # One frame of 1M ids: refused at once, with a clear error, not served.
    raw = RawClient(cluster, learner)
    try:
        raw.sock.sendall(frames.pack([wire.LOOKUP + wire.encode_ids(ids)]))
        reply = raw.next()
        assert reply[:1] == wire.REPLY, reply[:1]
        body = json.loads(reply[1:])
        assert body["code"] == "over_limit" and "more than 4096 request ids" in body["error"], body
        # The same ids as the client sends them: 245 frames of 4096 at most,
        # written by a thread while this one reads the answers.
        split = wire.split_ids(ids, wire.LOOKUP)
        writer = threading.Thread(target=raw.sock.sendall, args=(frames.pack(split),))
        writer.start()
        answered = 0
        while answered < IDS:
            frame = raw.next()
            assert frame[:1] == wire.LOOKED_UP, frame[:80]
            stamp, outcomes = wire.decode_looked_up(frame[1:])
            assert all(o.status == wire.UNKNOWN for o in outcomes)
            answered += len(outcomes)
        writer.join(30)
        assert answered == IDS
    finally:
        raw.close()

    # The whole log through `decided`: every entry, no "no learner answers".
    result = cluster.run("decided", "-o", "json", timeout=120)
    assert result.returncode == 0, describe(result)
    entries = json.loads(result.stdout)
    assert sum(1 for e in entries if not e["noop"]) == BIG_ENTRIES

    # Page by page, as large as asked for: each fits a frame, bounded in bytes.
    data = cluster.client().data()
    cursor = LogCursor(limit=None, page_size=100_000)
    pages = 0
    while not cursor.done:
        page = data.read_page(*cursor.query()).result(30)
        size = sum(len(s.value) for s in page.slots)
        # Whole slots: past the bound by one slot at most.
        assert size < wire.PAGE_BYTES + BATCH * (VALUE + 64), size
        assert len(wire.encode_page(0, 0, 0, 0, page.slots)) < frames.MAX_FRAME_BYTES
        cursor.take(page)
        pages += 1
    assert pages >= 3, pages

    assert restarts(cluster) == {name: 0 for name in cluster.agent_names}, restarts(cluster)
