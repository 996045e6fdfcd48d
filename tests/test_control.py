"""The control server on its own: parsing lines into requests or refusals,
and the share of the loop each client gets (in-process, real sockets, no
supervisor: `on_request` answers every request at once).

A line is a `Request` or a `Refusal`, never a dict that could be either;
a string that is not valid Unicode (a lone surrogate escaped in the JSON,
or a byte that is not UTF-8) is refused naming the field that holds it.
One turn of the loop serves at most `REQUESTS_PER_TURN` requests of a
client; a client whose replies pile up unread is neither served nor read.
"""

from __future__ import annotations

import json
import selectors
import socket
from collections.abc import Iterator

import pytest

from paxosctl.supervisor.control import (
    PAUSE_REPLY_BYTES,
    REQUESTS_PER_TURN,
    ClientConnection,
    ControlServer,
    Fault,
    Refusal,
    Request,
    parse,
)

# ------------------------------------------------------------------ parsing


@pytest.mark.parametrize(("line", "naming"), [
    (b'{"id": 1, "op": "propose", "value": "a\\ud800b"}', '"value"'),
    (b'{"id": 1, "op": "propose", "value": "\\udfff"}', '"value"'),
    (b'{"id": 1, "op": "propose", "value": "caf\xe9"}', '"value"'),          # Latin-1, not UTF-8
    (b'{"id": 1, "op": "propose", "value": "x\xed\xa0\x80"}', '"value"'),    # a surrogate as UTF-8 bytes
    (b'{"id": 1, "op": "propose", "value": "v", "request_id": "r\\ud83d"}', '"request_id"'),
    (b'{"id": 1, "op": "kill", "agent": "\xff"}', '"agent"'),
    (b'{"id": 1, "op": "chaos", "partition": ["acceptor-0", "\\udc80"]}', '"partition"[1]'),
    (b'{"id": 1, "op": "status", "\\ud800": 1}', '"\\ud800"'),               # a key
    (b'{"id": 1, "op": "st\\ud800atus"}', '"op"'),
], ids=["lone-high", "lone-low", "latin1-byte", "cesu-bytes", "request-id", "agent-byte",
        "in-a-list", "a-key", "the-op"])
def test_text_that_is_not_unicode_is_refused_naming_the_field(line: bytes, naming: str) -> None:
    result = parse(line)
    assert isinstance(result, Refusal), result
    assert result.fault is Fault.BAD_REQUEST
    assert result.message.startswith(f"{naming}: not UTF-8 text"), result.message
    assert result.id == 1
    # The reply is one JSON line, whatever the request held.
    reply = json.dumps(result.reply())
    assert "\n" not in reply and json.loads(reply)["error"] == "bad_request"


@pytest.mark.parametrize(("line", "message"), [
    (b"{oops", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b"[1]", "a request is a JSON object"),
    (b'{"id": 3}', 'a request needs an "op" string'),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
], ids=["syntax", "bytes", "not-object", "no-op", "deep"])
def test_lines_that_are_no_request_are_refusals(line: bytes, message: str) -> None:
    result = parse(line)
    assert isinstance(result, Refusal) and message in result.message, result


def test_a_request_with_an_error_field_is_a_request() -> None:
    """Once told apart by `"error" in dict`: such a request went back to
    its client as if it were the reply, and never reached the supervisor."""
    result = parse(b'{"id": 5, "op": "status", "error": "anything", "ok": false}')
    assert result == Request(5, "status", {"error": "anything", "ok": False})


def test_a_request_keeps_its_fields_but_id_and_op() -> None:
    result = parse('{"id": "a", "op": "propose", "value": "caf\u00e9 \U0001f600"}'.encode())
    assert isinstance(result, Request)
    assert (result.id, result.op, dict(result.fields)) == ("a", "propose",
                                                          {"value": "caf\u00e9 \U0001f600"})
    assert result.get("value") == "caf\u00e9 \U0001f600" and "value" in result and "id" not in result


# ------------------------------------------------------ one turn at a time


class Harness:
    """A ControlServer driven by hand, one loop turn at a time, with clients
    connected over socket pairs; every request is answered at once with a
    reply of `reply_bytes` bytes."""

    def __init__(self, reply_bytes: int = 16) -> None:
        self.selector = selectors.DefaultSelector()
        self.served: list[tuple[int, Request]] = []
        self.pad = "x" * reply_bytes
        self.server = ControlServer("/nonexistent/never-bound.sock", self.selector, self._on_request)
        self._peers: list[socket.socket] = []

    def _on_request(self, connection: ClientConnection, request: Request) -> None:
        self.served.append((connection.peer, request))
        connection.reply({"id": request.id, "ok": True, "pad": self.pad})

    def connect(self) -> tuple[ClientConnection, socket.socket]:
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        connection = ClientConnection(self.server, ours, len(self._peers) + 1)
        self.server.connections.add(connection)
        connection._watch()
        self._peers += [ours, theirs]
        return connection, theirs

    def turn(self) -> None:
        """What the supervisor's loop does with the control server in one turn."""
        for key, mask in self.selector.select(0):
            key.data(mask)  # each descriptor registered with its handler
        self.server.serve()
        self.server.flush()

    def served_for(self, connection: ClientConnection) -> int:
        return sum(1 for peer, _ in self.served if peer == connection.peer)

    def close(self) -> None:
        for sock in self._peers:
            sock.close()
        self.selector.close()


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    try:
        yield h
    finally:
        h.close()


def _read_replies(sock: socket.socket, count: int) -> list[dict]:
    buffer = b""
    sock.settimeout(5)
    while buffer.count(b"\n") < count:
        buffer += sock.recv(1 << 20)
    return [json.loads(line) for line in buffer.splitlines()]


def test_a_turn_serves_a_bounded_share_of_each_client(harness: Harness) -> None:
    greedy, greedy_peer = harness.connect()
    polite, polite_peer = harness.connect()
    greedy_peer.sendall(b"".join(b'{"id": %d, "op": "status"}\n' % i for i in range(1000)))
    polite_peer.sendall(b'{"id": "p", "op": "ping"}\n')

    harness.turn()
    assert harness.served_for(polite) == 1
    assert harness.served_for(greedy) == REQUESTS_PER_TURN
    assert _read_replies(polite_peer, 1) == [{"id": "p", "ok": True, "pad": harness.pad}]
    assert harness.server.has_work()

    turns = 1
    while harness.server.has_work():
        harness.turn()
        turns += 1
        assert harness.served_for(greedy) <= REQUESTS_PER_TURN * turns
    assert harness.served_for(greedy) == 1000
    assert [r["id"] for r in _read_replies(greedy_peer, 1000)] == list(range(1000))


def test_a_client_that_does_not_read_its_replies_is_paused(harness: Harness) -> None:
    harness.pad = "x" * 1000
    total = 5000  # 5 MB of replies: well past PAUSE_REPLY_BYTES
    slow, slow_peer = harness.connect()
    other, other_peer = harness.connect()
    lines = b'{"id": 1, "op": "status"}\n' * total
    slow_peer.setblocking(False)
    sent = 0
    for _ in range(10_000):  # turns, far more than it needs to settle
        try:
            sent += slow_peer.send(lines[sent:])
        except BlockingIOError:
            pass
        harness.turn()
        if not harness.server.has_work() and not slow._events & selectors.EVENT_READ:
            break
    # Paused: replies are waiting, its requests are neither served nor read.
    assert len(slow._out) > PAUSE_REPLY_BYTES
    assert not slow._events & selectors.EVENT_READ
    served = harness.served_for(slow)
    assert served < total
    harness.turn()
    assert harness.served_for(slow) == served
    # Others are served meanwhile.
    other_peer.sendall(b'{"id": "p", "op": "ping"}\n')
    harness.turn()
    assert _read_replies(other_peer, 1)[0]["id"] == "p"

    # Once it reads, it is served again, to the last request.
    received = 0
    for _ in range(100_000):
        try:
            sent += slow_peer.send(lines[sent:]) if sent < len(lines) else 0
        except BlockingIOError:
            pass
        try:
            received += slow_peer.recv(1 << 20).count(b"\n")
        except BlockingIOError:
            pass
        harness.turn()
        if received == total:
            break
    assert received == total and harness.served_for(slow) == total
    assert not slow.closed


def test_an_oversized_line_is_refused_then_the_connection_closes(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("paxosctl.supervisor.control.MAX_REQUEST_BYTES", 1000)
    connection, peer = harness.connect()
    peer.sendall(b'{"id": 1, "op": "ping"}\n' + b"a" * 2000)
    for _ in range(10):
        harness.turn()
    replies = _read_replies(peer, 2)
    assert replies[0]["id"] == 1 and replies[0]["ok"]
    assert replies[1]["error"] == "bad_request" and "1000 bytes" in replies[1]["message"]
    assert connection.closed and peer.recv(10) == b""
