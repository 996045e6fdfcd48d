"""Nothing a peer or client sends crashes or stalls an agent (issue 20).

One real cluster (2 proposers, 3 acceptors, 2 learners, one OS process
each) for the module. Frames are thrown at every agent over its Unix
socket: the probes of issue 20 (a 100,000-deep HELLO, a `Stored` history
holding `1e400`, stale and out-of-range incarnations), then a hypothesis
fuzz of malformed protocol frames of every message type and client frames
of every kind. After each, every agent is the same process, has not been
restarted, and the cluster decides a command. Last, a `decided --follow`
stopped with SIGSTOP under load is cut loose while the learner goes on.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import struct
import subprocess
from collections.abc import Iterator

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paxos_agents.core.commands import Command, Value
from paxos_agents.core.ids import Ballot
from paxos_agents.core.messages import (MESSAGE_TYPES, Accepted, Chunk, Decide, Promise, Stored,
                                        Vote)
from paxos_agents.runtime import clientwire as wire
from paxos_agents.runtime import frames
from paxos_agents.runtime.codec import encode
from paxos_agents.runtime.transport import CLIENT, hello
from paxosctl.endpoints import read_endpoints

from runtime.test_codec import message_strategy

from clusters import PAXOSCTL

from .harness import ClusterFactory, FaultCluster, alive, wait_until


@pytest.fixture
def hostile(module_clusters: ClusterFactory) -> FaultCluster:
    """The module's cluster; each test asserts it served and nobody restarted."""
    factory = module_clusters
    if not factory.clusters:
        factory("roles", name="hostile")
    cluster = factory.clusters[-1]
    before = {a["name"]: (a["pid"], a["restarts"]) for a in cluster.wait_healthy()["agents"]}
    yield cluster
    assert_unhurt(cluster, before)


def assert_unhurt(cluster: FaultCluster, before: dict[str, tuple[int, int]]) -> None:
    """Every agent is the process it was, with no restart, and a command is decided."""
    for name, (pid, _) in before.items():
        assert alive(psutil.Process(pid)), f"{name} (pid {pid}) died"
    with cluster.client() as client:
        client.propose(b"still-serving", timeout=20)
    after = {a["name"]: (a["pid"], a["restarts"]) for a in cluster.status()["agents"]}
    assert after == before, f"restarted: {after} (before: {before})"


def endpoints_of(cluster: FaultCluster):
    return read_endpoints(cluster.state_dir / "run", str(cluster.manifest))


def exchange(path: str, *sent: bytes, raw: bytes = b"") -> list[bytes]:
    """Send `sent` as frames (then `raw` as it is), half-close, and return
    every frame the agent answered until it closed or went quiet for 2 s."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.connect(path)
        try:
            sock.sendall(frames.pack(sent) + raw)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed on us: what it answered is still to read
        reader = frames.FrameReader()
        got: list[bytes] = []
        try:
            while data := sock.recv(1 << 16):
                got += reader.feed(data)
        except (socket.timeout, ConnectionResetError):
            pass
        return got


def incarnation_of(path: str, cluster_id: str, name: str) -> int:
    welcome = exchange(path, hello(cluster_id, CLIENT, 0, name))[0]
    assert welcome[:1] == frames.WELCOME
    return json.loads(welcome[1:])["incarnation"]


# ------------------------------------------------------------------ probes


def test_a_hello_a_hundred_thousand_deep_is_refused_by_every_agent(hostile) -> None:
    ep = endpoints_of(hostile)
    for name in hostile.agent_names:
        assert exchange(ep.socket(name), b"[" * 100_000) == []  # cut off by its length
        got = exchange(ep.socket(name), b"[" * 4000)  # under the limit: parsed, refused
        assert got and got[0] == frames.REFUSE + b"not a paxosctl handshake: JSON nested too deep"


def test_a_stored_history_holding_1e400_is_dropped_by_a_learner(hostile) -> None:
    """A peer claiming to be the other learner sends `Stored` with a float
    too large for int(): once an OverflowError out of the codec that ended
    the learner's process."""
    ep = endpoints_of(hostile)
    target, other = hostile.learners
    incarnation = incarnation_of(ep.socket(other), ep.cluster_id, other)
    history = b'[1, 32, 0, [[0, 1e400, ["acceptor-0"]]]]'
    stored = encode(Stored(src=other, dst=target, upto=0, history=None))[:-4]
    stored += struct.pack("<I", len(history)) + history
    got = exchange(ep.socket(target), hello(ep.cluster_id, other, incarnation, target),
                   stored, stored)
    assert got and got[0][:1] == frames.WELCOME


def test_a_value_that_is_not_a_batch_is_dropped_where_it_would_be_read(hostile) -> None:
    """Peers claiming to be members send values that are not batches: a
    Decide (to a learner and a proposer), Accepted from two acceptors (a
    majority: the learner would take it as chosen), a Promise voting for it
    (to a proposer). Once a BatchError while applying, and the learner's
    process ended; now each is dropped as malformed on arrival."""
    ep = endpoints_of(hostile)
    bad = Value.from_bytes(b"\x01\x02not a batch")
    slot = 10**6  # far ahead: nothing real is decided there meanwhile
    ballot = Ballot(10**6, "proposer-0")
    inc = {n: incarnation_of(ep.socket(n), ep.cluster_id, n) for n in hostile.agent_names}

    def send(sender: str, target: str, *messages) -> None:
        got = exchange(ep.socket(target), hello(ep.cluster_id, sender, inc[sender], target),
                       *map(encode, messages))
        assert got and got[0][:1] == frames.WELCOME

    for learner in hostile.learners:
        send("proposer-0", learner, Decide(src="proposer-0", dst=learner, slot=slot, value=bad))
        for acceptor in ("acceptor-0", "acceptor-1"):
            send(acceptor, learner, Accepted(src=acceptor, dst=learner, ballot=ballot,
                                             slot=slot, value=bad))
        peer = next(n for n in hostile.learners if n != learner)
        send(peer, learner, Chunk(src=peer, dst=learner, asked=0, first_slot=0,
                                  decisions=((0, bad),), first_slots=(), history=None))
    send("proposer-0", "proposer-1", Decide(src="proposer-0", dst="proposer-1", slot=slot,
                                            value=bad))
    for acceptor in ("acceptor-0", "acceptor-1"):
        send(acceptor, "proposer-1", Promise(src=acceptor, dst="proposer-1", ballot=ballot,
                                             first_slot=0, votes=(Vote(slot, ballot, bad),),
                                             compacted=-1))


@pytest.mark.parametrize("incarnation, why", [
    (-1, "incarnation must be an integer from 0 to 2**63-1, got -1"),
    (2**70, "incarnation must be an integer from 0 to 2**63-1, got 1180591620717411303424"),
    ("stale", "stale incarnation 0 of learner-1: this agent welcomed its incarnation 1"),
])
def test_bad_and_stale_incarnations_are_refused(hostile, incarnation, why: str) -> None:
    ep = endpoints_of(hostile)
    if incarnation == "stale":  # below the real learner-1's, which learner-0 welcomed
        incarnation = incarnation_of(ep.socket("learner-1"), ep.cluster_id, "learner-1") - 1
    got = exchange(ep.socket("learner-0"),
                   hello(ep.cluster_id, "learner-1", incarnation, "learner-0"))
    assert got == [frames.REFUSE + why.encode()]


# ------------------------------------------------------------------ fuzzing


def mutated(data: st.DataObject, raw: bytes) -> bytes:
    out = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        at = data.draw(st.integers(0, max(0, len(out) - 1)))
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "cut", "huge"]))
        if op == "flip" and out:
            out[at] ^= data.draw(st.integers(1, 255))
        elif op == "insert":
            out[at:at] = data.draw(st.binary(min_size=1, max_size=6))
        elif op == "delete":
            del out[at:at + data.draw(st.integers(1, 6))]
        elif op == "cut":
            del out[at:]
        elif op == "huge" and len(out) >= at + 4:
            out[at:at + 4] = b"\xff\xff\xff\x7f"
    return bytes(out)


def protocol_frames(data: st.DataObject) -> list[bytes]:
    """Per message type, a mutation of a valid encoding; and random bytes.
    Their src is random, so any that still decode are dropped as misaddressed."""
    out = [mutated(data, encode(data.draw(message_strategy(cls)))) for cls in MESSAGE_TYPES]
    out.append(data.draw(st.binary(max_size=64)))
    return out


CLIENT_KINDS = [wire.PROPOSE, wire.WATCH, wire.QUERY, wire.SUBSCRIBE, wire.LOOKUP]


def client_frames(data: st.DataObject) -> list[bytes]:
    valid = [wire.PROPOSE + wire.encode_commands([Command("fz", b"v", -1)]),
             wire.WATCH + wire.encode_ids(["fz"]), wire.LOOKUP + wire.encode_ids(["fz"]),
             wire.QUERY + b'{"op": "decided", "from": 0, "limit": 2}', wire.SUBSCRIBE]
    out = [mutated(data, frame) for frame in valid]
    out += [kind + data.draw(st.binary(max_size=40)) for kind in CLIENT_KINDS]
    out.append(wire.QUERY + data.draw(st.sampled_from(
        [b"[" * 3000, b'{"op": "decided", "from": 1e400}', b'{"op": "decided", "id": ' +
         b"9" * 5000 + b"}", b'{"op": "decided", "limit": true}', b"\xff\xfe"])))
    return out


def test_malformed_frames_of_every_type_at_every_role(hostile) -> None:
    ep = endpoints_of(hostile)
    names = hostile.agent_names
    serving = set(ep.proposers) | set(ep.learners)
    incarnations = {n: incarnation_of(ep.socket(n), ep.cluster_id, n) for n in names}
    pids = {a["name"]: psutil.Process(a["pid"]) for a in hostile.status()["agents"]}

    @settings(max_examples=30, deadline=None, database=None)
    @given(st.data())
    def throw(data: st.DataObject) -> None:
        protocol = protocol_frames(data)
        clients = client_frames(data)
        for name in names:
            sender = names[(names.index(name) + 1) % len(names)]  # a member it accepts
            exchange(ep.socket(name), hello(ep.cluster_id, sender, incarnations[sender], name),
                     *protocol, raw=data.draw(st.binary(max_size=16)))
            if name in serving:
                got = exchange(ep.socket(name), hello(ep.cluster_id, CLIENT, 0, name), *clients)
                assert got and got[0][:1] == frames.WELCOME
        dead = [n for n, p in pids.items() if not alive(p)]
        assert not dead, f"died: {dead}"

    throw()


# ------------------------------------------------------------ slow readers


def test_a_stopped_follower_is_cut_loose_and_the_learner_serves_on(hostile) -> None:
    """`decided --follow` suspended (SIGSTOP, as Ctrl-Z does) while 44 MiB of
    64 KiB values are decided: its learner cuts it loose once 32 MiB are
    unread (once: "Set changed size during iteration", and the learner
    died), and everyone else is served as before."""
    with hostile.client() as client:
        client.propose(b"before-the-follower", timeout=20)  # something to print at once
    follower = subprocess.Popen([PAXOSCTL, "decided", "--follow", "-o", "json", "--file",
                                 str(hostile.manifest)], cwd=hostile.dir,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL)
    try:
        # It is following once it printed the log so far (a line at least).
        wait_until(lambda: select.select([follower.stdout], [], [], 0.1)[0], 30,
                   "decided --follow to print")
        follower.send_signal(signal.SIGSTOP)
        value = os.urandom(64 << 10)  # few large commands: the bound is in bytes
        with hostile.client() as client:
            for batch in range(7):
                futures = [client.propose_async(value, timeout=60) for _ in range(100)]
                for future in futures:
                    future.result(timeout=90)
        logs = [hostile.agent_log(n) for n in hostile.learners]
        wait_until(lambda: any("cut a client loose: fell behind" in p.read_text()
                               for p in logs), 20, "a learner to cut the stopped follower")
    finally:
        follower.send_signal(signal.SIGCONT)
        follower.kill()
        follower.wait(10)


# ------------------------------------------------------------------ metrics


def test_refusals_reach_prometheus_by_reason(hostile) -> None:
    """The agent counts each refusal in its heartbeat; the supervisor's
    scrape (`paxosctl metrics`) shows it under its reason."""
    ep = endpoints_of(hostile)
    exchange(ep.socket("learner-0"), b"not a hello")
    exchange(ep.socket("learner-0"), hello(ep.cluster_id, "learner-1", 0, "learner-0"))

    def counted() -> bool:
        text = hostile.run_ok("metrics").stdout
        found = {}
        for reason in ("bad_hello", "stale_incarnation"):
            line = next(line for line in text.splitlines() if line.startswith(
                'paxos_connections_refused_total{agent="learner-0"') and f'reason="{reason}"' in line)
            found[reason] = float(line.rsplit(" ", 1)[1])
        return found["bad_hello"] >= 1 and found["stale_incarnation"] >= 1

    wait_until(counted, 20, "the refusals in the scrape")
    assert "paxos_clients_cut_total{" in hostile.run_ok("metrics").stdout
