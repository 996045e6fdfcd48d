"""What a connection the agent did not choose can cost it: bounded (issue 20).

Real Unix sockets between a `Transport` and raw client sockets in one
process, stepped as an agent's loop would, each wait on a condition with
a deadline. The same limits on real agent processes: tests/runtime/
test_agent_limits.py and tests/faults/test_faults_hostile.py.
"""

from __future__ import annotations

import json
import logging
import selectors
import socket
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from paxos_agents.runtime import clientwire as wire
from paxos_agents.runtime import frames
from paxos_agents.runtime.handshake import HandshakeError, Welcome, parse_hello, parse_welcome
from paxos_agents.runtime.ratelog import RateLimitedLog, clip
from paxos_agents.runtime.transport import CLIENT, Connection, Limits, Transport, endpoint, hello

MEMBERS = frozenset({"a", "b"})


class Endpoint:
    """One Transport ("b" of cluster "k1") and what reached it."""

    def __init__(self, run_dir: Path, limits: Limits = Limits(), on_client=None) -> None:
        self.selector = selectors.DefaultSelector()
        self.got: list[tuple[str, bytes]] = []
        self.clients: dict[Connection, list] = {}
        self.transport = Transport(
            name="b", incarnation=1, cluster_id="k1", run_dir=str(run_dir), members=MEMBERS,
            selector=self.selector, on_message=lambda src, f: self.got.append((src, f)),
            on_client=on_client or self._on_client, welcome=lambda: {"applied": 41},
            limits=limits)

    def _on_client(self, conn: Connection, frame: bytes | None) -> None:
        self.clients.setdefault(conn, []).append(frame)

    def step(self) -> None:
        for key, mask in self.selector.select(0.005):
            key.data(mask)
        self.transport.flush()

    def until(self, predicate, what: str, timeout: float = 5.0):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            self.step()

    def close(self) -> None:
        self.transport.close()
        self.selector.close()


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


def dial(run_dir: Path, *first: bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(endpoint(str(run_dir), "b"))
    sock.setblocking(False)
    if first:
        sock.sendall(frames.pack(first))
    return sock


class Received:
    """What a raw socket got: frames, and whether the other end closed."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = frames.FrameReader()
        self.frames: list[bytes] = []
        self.eof = False

    def poll(self) -> "Received":
        while not self.eof:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                break
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
            else:
                self.frames += self.reader.feed(data)
        return self


# ------------------------------------------------------------- the handshake


@pytest.mark.parametrize("first, why", [
    (b"[" * 4000, "nested too deep"),
    (b'{"paxos": 1, "cluster": "k1", "from": "a", "incarnation": -1, "to": "b"}', "incarnation"),
    (b'{"paxos": 1, "cluster": "k1", "from": "a", "incarnation": 1180591620717411303424, '
     b'"to": "b"}', "incarnation"),  # 2**70
    (b'{"paxos": 1, "cluster": "k1", "from": "a", "incarnation": 1.0, "to": "b"}', "incarnation"),
    (b'{"paxos": 1, "cluster": "k1", "from": ["a"], "incarnation": 1, "to": "b"}', "not a string"),
    (b'{"paxos": 1, "cluster": "k1", "from": "' + b"a" * 200 + b'", "incarnation": 1, "to": "b"}',
     '"from" must be a string of 1 to 128'),
    (b'{"paxos": 1, "cluster": "k1", "from": "a", "incarnation": 1, "to": "b", "fresh": 1}',
     '"fresh" must be true or false'),
])
def test_a_bad_hello_is_refused_with_a_reason_and_counted(run_dir: Path, first: bytes,
                                                          why: str) -> None:
    b = Endpoint(run_dir)
    try:
        got = Received(dial(run_dir, first, b"\x03\x07never delivered"))
        b.until(lambda: got.poll().eof, "the refusal")
        assert [f[:1] for f in got.frames] == [frames.REFUSE]
        assert why in got.frames[0].decode(), got.frames[0]
        assert b.transport.refused == {"bad_hello": 1} and b.got == []
    finally:
        b.close()


def test_a_hello_over_the_pre_handshake_limit_is_cut_off_by_its_length(run_dir: Path) -> None:
    """A 100,000-deep `[` (the probe that raised RecursionError), or most of
    a 64 MiB frame: the 4-byte length alone ends the connection; nothing of
    the body is held."""
    b = Endpoint(run_dir)
    try:
        sock = dial(run_dir)
        sock.sendall((60 << 20).to_bytes(4, "big") + b"[" * 60000)
        got = Received(sock)
        b.until(lambda: got.poll().eof, "the connection closed")
        assert got.frames == [] and not b.transport.inbound.conns
        got = Received(dial(run_dir, b"[" * 100_000))
        b.until(lambda: got.poll().eof, "the connection closed")
    finally:
        b.close()


def test_frames_after_the_hello_are_read_under_the_full_limit(run_dir: Path) -> None:
    """The pre-handshake limit covers the HELLO only: a large frame sent in
    the same write right after it is taken."""
    b = Endpoint(run_dir)
    try:
        big = wire.QUERY + b"x" * 100_000
        sock = dial(run_dir, hello("k1", CLIENT, 0, "b"), big)
        b.until(lambda: any(big in frames_ for frames_ in b.clients.values()), "the big frame")
        sock.close()
    finally:
        b.close()


def test_a_stale_incarnation_is_refused_and_a_newer_one_taken(run_dir: Path) -> None:
    """Guards greeting.py's rules: an older HELLO than the newest welcomed is
    refused (both numbers said), the same one reconnects, a newer one closes
    the older incarnation's connections; and the newest is remembered even
    with no connection open (incarnations are the member's own counter now,
    never numbered again from 1)."""
    b = Endpoint(run_dir)
    try:
        first = Received(dial(run_dir, hello("k1", "a", 5, "b"), b"from-5"))
        b.until(lambda: b.got == [("a", b"from-5")], "incarnation 5's message")
        stale = Received(dial(run_dir, hello("k1", "a", 4, "b"), b"from-4"))
        b.until(lambda: stale.poll().eof, "the stale incarnation refused")
        assert stale.frames[0] == (frames.REFUSE + b"stale incarnation 4 of a: this agent "
                                   b"welcomed its incarnation 5")
        same = Received(dial(run_dir, hello("k1", "a", 5, "b"), b"again-5"))  # a reconnect
        b.until(lambda: len(b.got) == 2, "the reconnect's message")
        newer = Received(dial(run_dir, hello("k1", "a", 6, "b"), b"from-6"))
        b.until(lambda: len(b.got) == 3, "incarnation 6's message")
        assert sorted(b.got) == [("a", b"again-5"), ("a", b"from-5"), ("a", b"from-6")]
        b.until(lambda: first.poll().eof and same.poll().eof, "incarnation 5's connections closed")
        assert not newer.poll().eof
        assert b.transport.refused == {"stale_incarnation": 1}
        newer.sock.close()
        b.until(lambda: not b.transport.inbound.conns, "a's connections closed")
        rerun = Received(dial(run_dir, hello("k1", "a", 1, "b"), b"old-1"))
        b.until(lambda: rerun.poll().eof, "incarnation 1 refused with nothing open")
        assert ("a", b"old-1") not in b.got and b.transport.refused == {"stale_incarnation": 2}
    finally:
        b.close()


def test_a_fresh_hello_is_answered_not_recorded_and_not_heard(run_dir: Path) -> None:
    """Guards the fresh HELLO (an agent with a new store asking to be
    admitted): its WELCOME says the newest incarnation welcomed from the
    sender (3); its number (5) is neither recorded nor closes incarnation 3's
    connection; what it sends is dropped and counted, never a message.
    Break tried: recording a fresh HELLO's incarnation like any other
    (incarnation 3's connection is closed, the newest becomes 5)."""
    b = Endpoint(run_dir)
    try:
        old = Received(dial(run_dir, hello("k1", "a", 3, "b"), b"from-3"))
        b.until(lambda: b.got == [("a", b"from-3")], "incarnation 3's message")
        fresh = Received(dial(run_dir, hello("k1", "a", 5, "b", fresh=True), b"sneaky"))
        b.until(lambda: fresh.poll().frames and b.transport.dropped["not_admitted"] == 1,
                "the fresh HELLO's WELCOME, its frame dropped")
        welcome = json.loads(fresh.frames[0][1:])
        assert fresh.frames[0][:1] == frames.WELCOME and welcome["welcomed"] == 3, welcome
        assert b.got == [("a", b"from-3")]
        assert b.transport.greeter.newest_incarnation("a") == 3
        assert not old.poll().eof and not fresh.eof
        for r in (old, fresh):
            r.sock.close()
    finally:
        b.close()


def test_a_welcome_from_a_stale_incarnation_drops_our_link(run_dir: Path) -> None:
    """Guards the dialling side: b welcomed a's incarnation 3; its own link
    to a is answered by a WELCOME naming incarnation 2 (an old process still
    listening): the link is dropped and counted, nothing more is sent on it.
    Break tried: taking any WELCOME (the link stays up, the count is 0)."""
    b = Endpoint(run_dir)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        newer = Received(dial(run_dir, hello("k1", "a", 3, "b")))
        b.until(lambda: newer.poll().frames, "incarnation 3 welcomed")
        listener.bind(endpoint(str(run_dir), "a"))
        listener.listen()
        listener.setblocking(False)
        b.transport.send("a", b"to-a")
        stale = b.until(lambda: _accept(listener), "b to dial a")
        b.until(lambda: stale.poll().frames, "b's HELLO")
        assert json.loads(stale.frames[0])["incarnation"] == 1
        stale.sock.sendall(frames.pack([frames.WELCOME + json.dumps(
            {"paxos": 1, "name": "a", "incarnation": 2}).encode()]))
        b.until(lambda: stale.poll().eof, "the stale link dropped")
        assert b.transport.refused == {"stale_incarnation": 1}
        assert b.transport.links.by_peer["a"].conn is None
        newer.sock.close()
    finally:
        listener.close()
        b.close()


def test_a_newer_incarnation_closes_our_link_to_the_older_one(run_dir: Path) -> None:
    """Guards "a newer incarnation closes the old link" on the dialling side:
    b's link to a is answered by a's incarnation 3 (a raw listener); then a
    HELLO from a's incarnation 4 arrives (a restarted elsewhere): b closes its
    link to incarnation 3, which must not keep getting messages.
    Break tried: `_remember` closing only inbound connections."""
    b = Endpoint(run_dir)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(endpoint(str(run_dir), "a"))
        listener.listen()
        listener.setblocking(False)
        b.transport.send("a", b"to-a")
        old = b.until(lambda: _accept(listener), "b to dial a")
        old.sock.sendall(frames.pack([frames.WELCOME + json.dumps(
            {"paxos": 1, "name": "a", "incarnation": 3}).encode()]))
        link = b.transport.links.by_peer["a"]
        b.until(lambda: link.conn is not None and link.conn.greeted, "the WELCOME of incarnation 3")
        newer = Received(dial(run_dir, hello("k1", "a", 4, "b"), b"from-4"))
        b.until(lambda: old.poll().eof, "the link to incarnation 3 closed")
        assert b.got == [("a", b"from-4")] and b.transport.refused == {}
        newer.sock.close()
    finally:
        listener.close()
        b.close()


@pytest.mark.parametrize("body", [
    b"[", b"[]", b'{"incarnation": -1}', b'{"incarnation": 1.5}', b'{"incarnation": 1, "welcomed": "3"}',
    b'{"incarnation": 1, "welcomed": 18446744073709551616}', b'{"incarnation": 1, "decided": 1}',
    b'{"incarnation": 1, "added": "yes"}', b'{"incarnation": 1, "x": "' + b"y" * 5000 + b'"}',
])
def test_a_welcome_that_cannot_be_read_is_none(body: bytes) -> None:
    """Guards `parse_welcome`'s bounds: a WELCOME is untrusted input too."""
    assert parse_welcome(body) is None


def test_a_welcome_reads_its_fields_with_defaults() -> None:
    assert parse_welcome(b'{"incarnation": 2}') == Welcome(2)
    assert parse_welcome(b'{"incarnation": 2, "welcomed": 7, "decided": true, "added": true,'
                         b' "roles": ["learner"]}') == Welcome(2, 7, True, True)


def _accept(listener: socket.socket) -> "Received | None":
    try:
        sock, _ = listener.accept()
    except BlockingIOError:
        return None
    sock.setblocking(False)
    return Received(sock)


def test_an_idle_unauthenticated_connection_is_closed_at_the_deadline(run_dir: Path) -> None:
    b = Endpoint(run_dir, Limits(handshake_seconds=0.2))
    try:
        idle = Received(dial(run_dir))
        greeted = Received(dial(run_dir, hello("k1", CLIENT, 0, "b")))
        start = time.monotonic()
        b.until(lambda: idle.poll().eof, "the idle connection closed", timeout=5)
        assert time.monotonic() - start >= 0.2
        assert idle.frames == [frames.REFUSE + b"no handshake within 0.2 s"]
        assert not greeted.poll().eof  # a greeted one is not on a clock
        assert b.transport.refused == {"handshake_timeout": 1}
        greeted.sock.close()
    finally:
        b.close()


def test_past_the_connection_limit_new_connections_are_refused_at_once(run_dir: Path) -> None:
    b = Endpoint(run_dir, Limits(max_inbound=3))
    try:
        held = [dial(run_dir, hello("k1", CLIENT, 0, "b")) for _ in range(3)]
        b.until(lambda: len(b.clients) == 3, "three clients in")
        extra = Received(dial(run_dir, hello("k1", CLIENT, 0, "b")))
        b.until(lambda: extra.poll().eof, "the fourth refused")
        assert extra.frames == [frames.REFUSE + b"too many connections (3 open)"]
        assert b.transport.refused == {"too_many_connections": 1}
        held[0].close()
        b.until(lambda: len(b.transport.inbound.conns) == 2, "one slot free again")
        again = Received(dial(run_dir, hello("k1", CLIENT, 0, "b")))
        b.until(lambda: again.poll().frames, "the next one welcomed")
        assert again.frames[0][:1] == frames.WELCOME
    finally:
        b.close()


# ------------------------------------------------------------ slow readers


def test_a_client_that_stops_reading_is_cut_loose_with_a_cut_frame(run_dir: Path) -> None:
    """Past its bound the client's unsent answers are discarded, CUT says
    why (and the learner's applied slot) and the connection closes; the
    closing (which tells the owner the client is gone) happens at the end
    of the turn, never inside the `reply` that went over the bound: the
    owner iterates its clients while replying (`Clients.applied`)."""
    subscribers: set[Connection] = set()

    def on_client(conn: Connection, frame: bytes | None) -> None:
        if frame is None:
            subscribers.add(conn)
        elif frame == b"":
            subscribers.discard(conn)  # as `Clients._forget` does

    b = Endpoint(run_dir, Limits(client_bytes=1 << 20, cut_grace_seconds=5), on_client)
    try:
        slow = dial(run_dir, hello("k1", CLIENT, 0, "b"))
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        fast = Received(dial(run_dir, hello("k1", CLIENT, 0, "b")))
        b.until(lambda: len(subscribers) == 2, "two subscribers")
        chunk = wire.SLOT + b"v" * 8192
        for _ in range(400):  # 3.2 MiB each: three times the slow one's bound
            for conn in subscribers:  # raises "Set changed size" if a reply closes one
                b.transport.reply(conn, chunk)
            b.transport.flush()
            fast.poll()
        assert b.transport.counts["clients_cut"] == 1
        assert len(subscribers) == 2  # not closed inside a reply: at the end of the turn
        got = Received(slow)  # it reads again, within the grace period: the CUT, then EOF
        b.until(lambda: got.poll().eof, "the slow one closed")
        assert len(subscribers) == 1  # the slow one forgotten
        fast.poll()
        assert not fast.eof and fast.frames.count(chunk) >= 399  # the other kept everything
        cut = [f for f in got.frames if f[:1] == wire.CUT]
        assert len(cut) == 1 and got.frames[-1] == cut[0]
        body = json.loads(cut[0][1:])
        assert body["applied"] == 41 and "fell behind" in body["reason"]
    finally:
        b.close()


def test_queuing_for_a_peer_that_never_reads_costs_constant_time(run_dir: Path) -> None:
    """The old `write` joined the whole unsent tail with every new frame
    (quadratic: ~200 GB of copying here); the frame queue copies each byte
    once. 20,000 frames of 1 KiB, written after each, to a socket nobody reads."""
    near, far = socket.socketpair()
    try:
        conn = Connection(near, limit=64 << 20)
        frame = b"m" * 1024
        start = time.monotonic()
        for _ in range(20_000):
            assert conn.queue(frame)
            conn.write()
        assert time.monotonic() - start < 5.0
        assert conn.unsent_bytes > 10 << 20  # still held: nobody read
        over_near, over_far = socket.socketpair()
        over = Connection(over_near, limit=1 << 20)
        while over.queue(frame):
            pass
        assert over.unsent_bytes <= (1 << 20) + 1028  # dropped past the bound, not queued
        over_near.close()
        over_far.close()
    finally:
        near.close()
        far.close()


# -------------------------------------------------------------------- logs


def test_refusals_are_logged_rate_limited_with_untrusted_text_clipped(
        run_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    b = Endpoint(run_dir)
    try:
        long_cluster = "\x1b[31m" + "c" * 3000
        socks = []
        with caplog.at_level(logging.WARNING, logger="paxos_agents.transport"):
            for _ in range(50):
                r = Received(dial(run_dir, hello(long_cluster, "a", 1, "b")))
                socks.append(r)
                b.until(lambda r=r: r.poll().eof, "a refusal")
        assert b.transport.refused["bad_hello"] == 50
        lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert 1 <= len(lines) <= 2, lines
        assert all(len(line) < 300 and "\x1b" not in line for line in lines)
        refusal = socks[0].frames[0]
        assert len(refusal) < 300 and b"\x1b" not in refusal and b"(3005 in all)" in refusal
    finally:
        b.close()


def test_rate_limited_log_counts_what_it_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    rlog = RateLimitedLog(logging.getLogger("t.rate"), interval=5.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="t.rate"):
        assert rlog.warning("x", "bad %d", 1)
        assert not any(rlog.warning("x", "bad %d", i) for i in range(10))
        assert rlog.warning("y", "other kind")  # kinds are limited apart
        now[0] = 6.0
        assert rlog.warning("x", "bad %d", 99)
    assert [r.getMessage() for r in caplog.records] == [
        "bad 1", "other kind", "bad 99 (10 more like this suppressed in the last 6 s)"]
    assert clip("a\nb") == "'a\\nb'" and clip(2**300).startswith("<an int of")


# ------------------------------------------------------------------ fuzzing


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    st.binary(max_size=300),
    st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                           st.text(max_size=20)),
                 lambda inner: st.one_of(st.lists(inner, max_size=4),
                                         st.dictionaries(st.text(max_size=8), inner, max_size=5)),
                 max_leaves=12).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"paxos": st.one_of(st.just(1), st.integers()),
                           "cluster": st.one_of(st.text(max_size=5), st.integers()),
                           "from": st.one_of(st.just("a"), st.text(max_size=200), st.none()),
                           "incarnation": st.one_of(st.integers(-2**70, 2**70), st.floats()),
                           "to": st.text(max_size=5)}).map(lambda v: json.dumps(v).encode()),
))
def test_the_hello_parser_only_ever_refuses(frame: bytes) -> None:
    try:
        h = parse_hello(frame)
    except HandshakeError:
        return
    assert 0 <= h.incarnation < 2**63 and 1 <= len(h.sender) <= 128 and 1 <= len(h.receiver) <= 128


def test_a_client_side_connection_reads_every_frame_that_arrived() -> None:
    """Only an agent's inbound connection reads its HELLO alone: a client's
    (`paxosctl.client.datapath`) gets the WELCOME and what follows it at once."""
    near, far = socket.socketpair()
    try:
        conn = Connection(near)
        far.sendall(frames.pack([frames.WELCOME + b"{}", wire.REPLY + b"{}", wire.LEADER]))
        deadline = time.monotonic() + 5
        frames_: list[bytes] = []
        while len(frames_) < 3 and time.monotonic() < deadline:
            frames_ += conn.read() or []
        assert frames_ == [frames.WELCOME + b"{}", wire.REPLY + b"{}", wire.LEADER]
    finally:
        near.close()
        far.close()
