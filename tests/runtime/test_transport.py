"""The data-path transport: real Unix sockets between endpoints in one process.

Each test drives two or three `Transport`s with their own selectors,
stepping them until a condition holds (with a deadline), as an agent's
loop would. The tests marked with the `kind` fixture run twice: over Unix
sockets and over TCP + mutual TLS on 127.0.0.1 (runtime/tlsnet.py), with
certificates of a cluster CA made for the module.
"""

from __future__ import annotations

import json
import selectors
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from paxos_agents.core.commands import Command
from paxos_agents.runtime import clientwire as wire
from paxos_agents.runtime import frames
from paxos_agents.runtime.chaos import ChaosSettings
from paxos_agents.runtime.identity import Identity
from paxos_agents.runtime.spec import TlsSpec
from paxos_agents.runtime.tlsnet import TlsNet
from paxos_agents.runtime.transport import CLIENT, Transport, endpoint, hello
from paxosctl.certs import write_atomic
from paxosctl.issuing import issue_leaf, make_ca

MEMBERS = frozenset({"a", "b", "c"})


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA of cluster "k1" and a certificate per member: certs/<name>.crt|.key, certs/ca.crt."""
    folder = tmp_path_factory.mktemp("certs")
    now = datetime.now(timezone.utc)
    ca = make_ca("k1", now=now)
    (folder / "ca.crt").write_bytes(ca[0])
    for name in MEMBERS:
        cert, key = issue_leaf(*ca, Identity("k1", "agent", name), now=now)
        write_atomic(folder / f"{name}.key", key, 0o600)
        write_atomic(folder / f"{name}.crt", cert, 0o644)
    return folder


@pytest.fixture(params=["unix", "tls"])
def kind(request: pytest.FixtureRequest, certs: Path) -> Path | None:
    """None: Unix sockets; else the certificates folder, for TCP + mutual TLS."""
    return certs if request.param == "tls" else None


class Node:
    """One endpoint and what it received."""

    def __init__(self, run_dir: Path, name: str, incarnation: int = 1,
                 cluster: str = "k1", tls: Path | None = None) -> None:
        self.selector = selectors.DefaultSelector()
        net = None
        if tls is not None:
            spec = TlsSpec(listen="127.0.0.1:0", cert=str(tls / f"{name}.crt"),
                           key=str(tls / f"{name}.key"), ca=str(tls / "ca.crt"))
            net = TlsNet(name, str(run_dir), spec, cluster)
        self.got: list[tuple[str, bytes]] = []
        self.client_frames: list[bytes | None] = []
        self.transport = Transport(
            name=name, incarnation=incarnation, cluster_id=cluster, run_dir=str(run_dir),
            members=MEMBERS, selector=self.selector,
            on_message=lambda src, frame: self.got.append((src, frame)),
            on_client=lambda conn, frame: self.client_frames.append(frame),
            welcome=lambda: {"roles": ["test"]}, net=net)

    def step(self) -> None:
        for key, mask in self.selector.select(0.005):
            key.data(mask)
        self.transport.flush()

    def close(self) -> None:
        self.transport.close()
        self.selector.close()


def run_until(nodes: list[Node], predicate, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        for node in nodes:
            node.step()


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


def test_messages_flow_between_endpoints_and_name_their_sender(run_dir: Path, kind: Path | None) -> None:
    a, b = Node(run_dir, "a", tls=kind), Node(run_dir, "b", tls=kind)
    try:
        for i in range(100):
            a.transport.send("b", f"m{i}".encode())
        run_until([a, b], lambda: len(b.got) == 100, "100 messages a -> b")
        assert b.got == [("a", f"m{i}".encode()) for i in range(100)]  # in order, no copies
        b.transport.send("a", b"back")
        run_until([a, b], lambda: a.got == [("b", b"back")], "the answer b -> a")
    finally:
        a.close()
        b.close()


def test_a_message_never_reaches_the_next_incarnation(run_dir: Path, kind: Path | None) -> None:
    """Frames queued on a link to incarnation 1 die with it; incarnation 2
    gets only what was sent after it came up, and says who it is."""
    a, b1 = Node(run_dir, "a", tls=kind), Node(run_dir, "b", incarnation=1, tls=kind)
    b2 = None
    try:
        a.transport.send("b", b"to-1")
        run_until([a, b1], lambda: b1.got == [("a", b"to-1")], "the first message")
        link = a.transport.links.by_peer["b"]
        run_until([a, b1], lambda: link.conn is not None and link.conn.greeted, "a WELCOME")
        assert link.conn.peer_incarnation == 1
        # Queued while b1 is still there, written only after it is gone.
        a.transport.links.send_now("b", b"meant-for-1")
        b1.close()
        b2 = Node(run_dir, "b", incarnation=2, tls=kind)
        a.transport.flush()  # the old connection is dead: its queue is dropped with it
        run_until([a, b2], lambda: link.conn is None, "the dead link noticed")
        a.transport.links.by_peer["b"].retry_at = 0.0
        a.transport.send("b", b"to-2")
        run_until([a, b2], lambda: b2.got, "a message to incarnation 2")
        assert b2.got == [("a", b"to-2")]
        run_until([a, b2], lambda: link.conn is not None and link.conn.greeted, "a WELCOME")
        assert link.conn.peer_incarnation == 2
    finally:
        a.close()
        if b2 is not None:
            b2.close()


def test_a_peer_that_is_down_drops_messages_and_is_retried_with_backoff(run_dir: Path) -> None:
    a = Node(run_dir, "a")
    try:
        a.transport.send("c", b"lost")
        a.transport.send("c", b"lost too")  # within the backoff: not even tried
        assert a.transport.dropped["unreachable"] == 2
        link = a.transport.links.by_peer["c"]
        assert link.retry_at > time.monotonic() and link.backoff > 0.01
        c = Node(run_dir, "c")
        try:
            time.sleep(max(0.0, link.retry_at - time.monotonic()))
            a.transport.send("c", b"arrives")
            run_until([a, c], lambda: c.got == [("a", b"arrives")], "a message once c is up")
        finally:
            c.close()
    finally:
        a.close()


@pytest.mark.parametrize("hello_fields, why", [
    ({"cluster": "other"}, "not of 'other'"),
    ({"from": "mallory"}, "'mallory' is not a member"),
    ({"to": "c"}, "this is b, not 'c'"),
    ({"paxos": 99}, "not a paxosctl handshake"),
])
def test_a_wrong_handshake_is_refused_with_a_reason(run_dir: Path, hello_fields: dict,
                                                    why: str) -> None:
    b = Node(run_dir, "b")
    try:
        fields = {"paxos": 1, "cluster": "k1", "from": "a", "incarnation": 1, "to": "b",
                  **hello_fields}
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(endpoint(str(run_dir), "b"))
        sock.sendall(frames.pack([json.dumps(fields).encode(), b"never delivered"]))
        reader = frames.FrameReader()
        got: list[bytes] = []
        sock.setblocking(False)

        def answered() -> bool:
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                return False
            got.extend(reader.feed(data))
            return True

        run_until([b], answered, "an answer to the handshake")
        assert got and got[0][:1] == frames.REFUSE and why in got[0][1:].decode()
        assert b.got == []
        sock.close()
    finally:
        b.close()


def test_a_client_is_welcomed_with_the_agents_incarnation(run_dir: Path) -> None:
    b = Node(run_dir, "b", incarnation=7)
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(endpoint(str(run_dir), "b"))
        sock.sendall(frames.pack([hello("k1", CLIENT, 0, "b"), wire.QUERY + b"{}"]))
        sock.setblocking(False)
        reader = frames.FrameReader()
        got: list[bytes] = []

        def welcomed() -> bool:
            try:
                got.extend(reader.feed(sock.recv(4096)))
            except BlockingIOError:
                pass
            return bool(got)

        run_until([b], welcomed, "a WELCOME")
        welcome = json.loads(got[0][1:])
        assert got[0][:1] == frames.WELCOME
        assert welcome["incarnation"] == 7 and welcome["name"] == "b" and welcome["roles"] == ["test"]
        run_until([b], lambda: len(b.client_frames) == 2, "the client's frame")
        assert b.client_frames == [None, wire.QUERY + b"{}"]  # connected, then its frame
        sock.close()
        run_until([b], lambda: b.client_frames[-1] == b"", "the client's end")
    finally:
        b.close()


def test_chaos_partition_and_drop_are_applied_by_the_sender(run_dir: Path, kind: Path | None) -> None:
    a, b, c = Node(run_dir, "a", tls=kind), Node(run_dir, "b", tls=kind), Node(run_dir, "c", tls=kind)
    try:
        a.transport.chaos.set(ChaosSettings(partition=("a",)))
        b.transport.chaos.set(ChaosSettings(drop=1.0, seed=3))
        for i in range(10):
            a.transport.send("b", b"cut")
            b.transport.send("c", b"dropped")
            c.transport.send("b", b"flows")
        run_until([a, b, c], lambda: len(b.got) == 10, "c's messages")
        time.sleep(0.05)
        for node in (a, b, c):
            node.step()
        assert b.got == [("c", b"flows")] * 10 and c.got == []
        assert a.transport.chaos.counts["partition"] == 10
        assert b.transport.chaos.counts["drop"] == 10
    finally:
        for node in (a, b, c):
            node.close()


def test_chaos_delay_holds_messages_back_and_duplicate_sends_twice(run_dir: Path, kind: Path | None) -> None:
    a, b = Node(run_dir, "a", tls=kind), Node(run_dir, "b", tls=kind)
    try:
        a.transport.chaos.set(ChaosSettings(duplicate=1.0, delay=0.2, seed=1))
        start = time.monotonic()
        a.transport.send("b", b"x")
        assert a.transport.next_due() is not None
        run_until([a, b], lambda: len(b.got) == 2, "two copies")
        assert b.got == [("a", b"x")] * 2
        assert a.transport.chaos.counts["delay"] == 1 and a.transport.chaos.counts["duplicate"] == 1
        assert time.monotonic() - start <= 0.2 + 1.0
    finally:
        a.close()
        b.close()


def test_a_delayed_frame_never_reaches_the_next_incarnation(run_dir: Path) -> None:
    """A chaos-delayed frame was sent on one connection; if that connection
    is gone when it falls due, it is dropped and counted, not sent on a new
    connection (which would reach the peer's next incarnation)."""
    a, b = Node(run_dir, "a"), Node(run_dir, "b", incarnation=1)
    b2 = None
    try:
        a.transport.send("b", b"hello")
        run_until([a, b], lambda: b.got == [("a", b"hello")], "the link a -> b")
        a.transport.chaos.set(ChaosSettings(delay=0.3, seed=1))
        a.transport.send("b", b"late")  # held back, on the connection to b's incarnation 1
        b.close()
        link = a.transport.links.by_peer["b"]
        run_until([a], lambda: link.conn is None, "a to see the link to b go")
        b2 = Node(run_dir, "b", incarnation=2)
        unreachable = a.transport.dropped["unreachable"]
        run_until([a, b2], lambda: a.transport.next_due() is None, "the delayed frame to fall due")
        assert a.transport.dropped["unreachable"] == unreachable + 1
        a.transport.chaos.set(ChaosSettings())
        a.transport.send("b", b"now")
        run_until([a, b2], lambda: b2.got != [], "a fresh frame to b's incarnation 2")
        assert b2.got == [("a", b"now")]
    finally:
        for node in (a, b, b2):
            if node is not None:
                node.close()


def test_a_frame_delayed_while_its_link_is_down_never_reaches_the_next_incarnation(
        run_dir: Path) -> None:
    """The mend of issue 22: a frame delayed (chaos) while no connection to b
    is up is bound at once: b is down, so it is dropped and counted then,
    instead of dialling when it falls due and reaching b's next incarnation.
    Break tried: the old rule (a frame sent with no connection up is held
    with no generation and goes on whatever connection is up when due)."""
    a, b = Node(run_dir, "a"), Node(run_dir, "b", incarnation=1)
    b2 = None
    try:
        a.transport.send("b", b"hello")
        run_until([a, b], lambda: b.got == [("a", b"hello")], "the link a -> b")
        b.close()
        link = a.transport.links.by_peer["b"]
        run_until([a], lambda: link.conn is None, "a to see the link to b go")
        link.retry_at = 0.0
        a.transport.chaos.set(ChaosSettings(delay=0.3, seed=1))
        unreachable = a.transport.dropped["unreachable"]
        a.transport.send("b", b"late")
        assert a.transport.dropped["unreachable"] == unreachable + 1
        b2 = Node(run_dir, "b", incarnation=2)
        link.retry_at = 0.0
        run_until([a, b2], lambda: a.transport.next_due() is None, "nothing held back")
        a.transport.chaos.set(ChaosSettings())
        a.transport.send("b", b"now")
        run_until([a, b2], lambda: b2.got != [], "a fresh frame to b's incarnation 2")
        assert b2.got == [("a", b"now")]
    finally:
        for node in (a, b, b2):
            if node is not None:
                node.close()


# ------------------------------------------------------------ client frames

commands = st.lists(st.builds(Command, st.text(min_size=1, max_size=20), st.binary(max_size=40),
                               st.integers(-1, 2**62)), min_size=1, max_size=20)


@given(commands)
def test_command_batches_round_trip(items: list) -> None:
    assert wire.decode_batch(wire.encode_commands(items)).commands == tuple(items)


@given(st.lists(st.text(min_size=1, max_size=30), max_size=20))
def test_request_id_lists_round_trip(ids: list) -> None:
    assert wire.decode_ids(wire.encode_ids(ids)) == ids


@given(st.lists(st.builds(wire.Outcome, st.text(min_size=1, max_size=20),
                          st.sampled_from([wire.DECIDED, wire.EXPIRED, wire.NOT_RETAINED]),
                          st.integers(-1, 2**62), st.integers(0, 2**31), st.binary(min_size=8,
                                                                                   max_size=8)),
                max_size=10))
def test_outcomes_round_trip(outcomes: list) -> None:
    assert wire.decode_outcomes(wire.encode_outcomes(outcomes)) == outcomes


@given(st.binary(max_size=200))
def test_garbage_is_refused_with_a_wire_error_only(data: bytes) -> None:
    for decoder in (wire.decode_batch, wire.decode_ids, wire.decode_outcomes):
        try:
            decoder(data)
        except wire.WireError:
            pass


def test_a_truncated_batch_is_refused() -> None:
    data = wire.encode_commands([Command("r1", b"payload", 3)])
    for cut in range(len(data)):
        with pytest.raises(wire.WireError):
            wire.decode_batch(data[:cut])
