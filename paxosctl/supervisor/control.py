"""The control socket: JSON lines over a Unix socket in state_dir (mode 0600).

Each request is one JSON object on one line with an `id` and an `op`; each
reply is one JSON object on one line with the same `id` and `ok`. Replies
may come back in any order, so one connection can keep many proposals in
flight. Nothing pickled crosses the socket.

    -> {"id": 7, "op": "propose", "value": "hello", "timeout": 10}
    <- {"id": 7, "ok": true, "slot": 17, "value": "hello", "request_id": "..."}
    <- {"id": 8, "ok": false, "error": "timeout", "message": "..."}

A line is parsed into a `Request` or a `Refusal` (`parse`), never a dict
that could be either; a refused request gets its reply here and never
reaches the supervisor. Every error reply names one `Fault` (its
`error` field), the set server and client share.

The server runs inside the supervisor's loop (its selector), with
non-blocking sockets, and no client can stall that loop: each turn serves
at most `REQUESTS_PER_TURN` requests per client (the rest wait in its
buffer, served in later turns), a client whose replies pile up unread
past `PAUSE_REPLY_BYTES` is not read until it catches up (past
`MAX_REPLY_BUFFER` it is disconnected), and a turn accepts at most
`ACCEPTS_PER_TURN` connections.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import selectors
import socket
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..faults import Fault, OpError  # noqa: F401 - OpError re-exported (ops, tests)
from ..layout import MAX_SOCKET_PATH

log = logging.getLogger("paxosctl.control")

#: A request line longer than this is refused and the connection closed.
MAX_REQUEST_BYTES = 32 * 1024 * 1024
#: Replies buffered for a client that does not read, before it is dropped.
MAX_REPLY_BUFFER = 64 * 1024 * 1024
#: Replies buffered for a client past which its requests wait (backpressure).
PAUSE_REPLY_BYTES = 1 << 20
#: Requests one client gets served per turn of the supervisor's loop.
REQUESTS_PER_TURN = 64
#: Connections accepted per turn of the loop (the rest wait in the backlog).
ACCEPTS_PER_TURN = 64
#: Connections the kernel queues before the loop accepts them.
LISTEN_BACKLOG = 4096
_READ_BYTES = 1 << 20


def error_reply(reply_to: Any, fault: Fault, message: str, /, **extra: Any) -> dict[str, Any]:
    """The reply refusing the request whose id is `reply_to` for `fault`, with a
    one-line message (and `extra` fields: a proposal's request_id, say)."""
    return {"id": reply_to, "ok": False, "error": fault.value, "message": message, **extra}


@dataclass(frozen=True, slots=True)
class Request:
    """One well-formed control request: an `op` and its other fields.

    Every string in it, keys included, is valid Unicode (encodable as
    UTF-8); the fields' types are for the operation to check.
    """

    id: Any                       # echoed in the reply; any JSON value
    op: str
    fields: Mapping[str, Any]     # everything but "id" and "op"

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)

    def __contains__(self, key: str) -> bool:
        return key in self.fields


@dataclass(frozen=True, slots=True)
class Refusal:
    """A line that is no request we serve: answered here, never dispatched."""

    id: Any
    fault: Fault
    message: str

    def reply(self) -> dict[str, Any]:
        return error_reply(self.id, self.fault, self.message)


class ClientConnection:
    """One client connection, driven by the supervisor's loop. `reply` never blocks.

    Bytes read are split into lines kept in `_lines` until served, at most
    `REQUESTS_PER_TURN` a turn. The socket is read only while nothing waits
    there and its unsent replies stay under `PAUSE_REPLY_BYTES`: a client
    that writes faster than it is served, or reads its replies slower, only
    waits for itself (its writes block in its own kernel buffer).
    """

    def __init__(self, server: "ControlServer", sock: socket.socket, peer: int) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer
        self.closed = False
        self._in = bytearray()
        #: Complete lines received and not served yet (or a refusal made while reading).
        self._lines: collections.deque[bytes | Refusal] = collections.deque()
        self._out = bytearray()
        #: No more requests from this client: it hung up its side, or sent too much.
        self._done_reading = False
        self._close_after_flush = False
        #: What the selector watches on the socket now (0: not registered).
        self._events = 0

    def reply(self, obj: dict[str, Any]) -> None:
        """Queue one reply line; the loop writes it when the socket takes it."""
        if self.closed:
            return
        self._out += json.dumps(obj, separators=(",", ":")).encode() + b"\n"
        if len(self._out) > MAX_REPLY_BUFFER:
            log.warning("control client %d reads too slowly; disconnecting it", self.peer)
            self._shutdown()
            return
        self.server.dirty.add(self)

    def fail(self, reply_to: Any, fault: Fault, message: str, /, **extra: Any) -> None:
        """Queue the reply refusing the request whose id is `reply_to`, for `fault`."""
        self.reply(error_reply(reply_to, fault, message, **extra))

    def close(self) -> None:
        """Close once the replies already queued are written."""
        self._close_after_flush = True
        self.server.dirty.add(self)

    def flush_and_close(self, timeout: float = 5.0) -> None:
        """Write what is queued (blocking, bounded), then close. For shutdown."""
        if not self.closed:
            try:
                self.sock.settimeout(timeout)
                self.sock.sendall(self._out)
            except OSError:
                pass
            self._shutdown()

    # -- driven by ControlServer ----------------------------------------------

    def _read(self) -> None:
        """Take what the socket holds (one recv) and split off the complete lines."""
        try:
            data = self.sock.recv(_READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            self._shutdown()
            return
        if not data:
            self._done_reading = True  # served what came whole, then closed
        else:
            buffer = self._in
            buffer += data
            start = 0
            while (end := buffer.find(b"\n", start)) >= 0:
                self._lines.append(bytes(buffer[start:end]))
                start = end + 1
            del buffer[:start]  # once: a batch of small lines costs no quadratic copying
            if len(buffer) > MAX_REQUEST_BYTES:
                buffer.clear()
                self._lines.append(Refusal(None, Fault.BAD_REQUEST,
                                           f"request longer than {MAX_REQUEST_BYTES} bytes"))
                self._done_reading = True
        if self._lines:
            self.server.busy.add(self)
        self.server.dirty.add(self)

    @property
    def _servable(self) -> bool:
        return bool(self._lines) and not self.closed and len(self._out) <= PAUSE_REPLY_BYTES

    def _serve(self, budget: int) -> None:
        """Parse and dispatch up to `budget` waiting lines, in order."""
        dispatch = self.server._on_request
        while budget > 0 and self._servable:
            line = self._lines.popleft()
            budget -= 1
            if isinstance(line, Refusal):
                self.reply(line.reply())
                continue
            if not line.strip():
                continue
            match parse(line):
                case Refusal() as refusal:
                    self.reply(refusal.reply())
                case Request() as request:
                    dispatch(self, request)
        if not self._lines:
            self.server.busy.discard(self)
        self.server.dirty.add(self)

    def _flush(self) -> None:
        """Write what the socket takes; close or change what is watched as due."""
        if self.closed:
            return
        while self._out:
            try:
                sent = self.sock.send(self._out)
            except BlockingIOError:
                break
            except OSError:
                self._shutdown()
                return
            del self._out[:sent]
        if not self._out and (self._close_after_flush or (self._done_reading and not self._lines)):
            self._shutdown()
            return
        self._watch()

    def _watch(self) -> None:
        """Watch for reading only when this client may send more; for writing while replies wait."""
        events = 0
        if not (self._done_reading or self._lines or len(self._out) > PAUSE_REPLY_BYTES):
            events |= selectors.EVENT_READ
        if self._out:
            events |= selectors.EVENT_WRITE
        if events == self._events:
            return
        selector = self.server.selector
        if not self._events:
            selector.register(self.sock, events, self._on_ready)
        elif not events:
            selector.unregister(self.sock)
        else:
            selector.modify(self.sock, events, self._on_ready)
        self._events = events

    def _on_ready(self, mask: int) -> None:
        """The selector found the socket ready (the handler registered in `_watch`)."""
        if self.closed:
            return
        if self._events & selectors.EVENT_READ:
            self._read()
        self._flush()

    def _shutdown(self) -> None:
        if self.closed:
            return
        self.closed = True
        server = self.server
        server.dirty.discard(self)
        server.busy.discard(self)
        server.connections.discard(self)
        self._lines.clear()
        if self._events:
            try:
                server.selector.unregister(self.sock)
            except (KeyError, ValueError):
                pass
            self._events = 0
        try:
            self.sock.close()
        except OSError:
            pass


class ControlServer:
    """Accepts connections and hands each parsed `Request` to `on_request`.

    Everything runs in the supervisor's loop, each turn: the handlers
    registered here with the selector (`data(mask)`: accept, read, write), `serve()`
    (a bounded share of the waiting requests of each client), `flush()`
    (write the replies). While `has_work()`, the loop should not sleep.
    """

    def __init__(self, path: str, selector: selectors.BaseSelector,
                 on_request: Callable[[ClientConnection, Request], None]) -> None:
        if len(os.fsencode(path)) > MAX_SOCKET_PATH:
            raise OSError(f"control socket path {path} is longer than {MAX_SOCKET_PATH} bytes; "
                          "use a shorter state_dir")
        self.path = path
        self.selector = selector
        self._on_request = on_request
        self._sock: socket.socket | None = None
        self._peers = 0
        self.connections: set[ClientConnection] = set()
        #: Connections with replies to write, or whose watched events may change.
        self.dirty: set[ClientConnection] = set()
        #: Connections with requests received and not served yet.
        self.busy: set[ClientConnection] = set()

    def start(self) -> None:
        if os.path.exists(self.path):
            os.unlink(self.path)  # stale: the caller checked no supervisor runs
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # created 0600: only the owner may drive the cluster
        try:
            sock.bind(self.path)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        sock.listen(LISTEN_BACKLOG)  # the kernel caps it at net.core.somaxconn
        sock.setblocking(False)
        self._sock = sock
        self.selector.register(sock, selectors.EVENT_READ, self._on_acceptable)

    def close(self) -> None:
        """Stop listening and remove the socket, then write what is queued
        (bounded) and close each connection. In that order: a client that
        has read `down`'s answer finds no supervisor listening any more."""
        if self._sock is not None:
            try:
                self.selector.unregister(self._sock)
            except (KeyError, ValueError):
                pass
            self._sock.close()
            try:
                os.unlink(self.path)
            except OSError:
                pass
        for connection in list(self.connections):
            connection.flush_and_close(timeout=1.0)

    def has_work(self) -> bool:
        """Whether some client has requests that `serve` would serve now."""
        return any(connection._servable for connection in self.busy)

    def serve(self) -> None:
        """Serve each client's waiting requests, at most `REQUESTS_PER_TURN` each."""
        for connection in list(self.busy):
            connection._serve(REQUESTS_PER_TURN)

    def flush(self) -> None:
        """Write queued replies (once per loop iteration)."""
        for connection in list(self.dirty):
            self.dirty.discard(connection)
            connection._flush()

    def _on_acceptable(self, mask: int) -> None:
        """The listening socket has connections waiting (its selector handler)."""
        for _ in range(ACCEPTS_PER_TURN):  # the rest: next turn (the socket stays readable)
            try:
                sock, _ = self._sock.accept()
            except (BlockingIOError, OSError):
                return
            sock.setblocking(False)
            self._peers += 1
            connection = ClientConnection(self, sock, self._peers)
            self.connections.add(connection)
            connection._watch()


def parse(line: bytes) -> Request | Refusal:
    """The request on `line` (one JSON object, UTF-8), or why it is none."""
    # Bytes that are not UTF-8 become lone surrogates here, found below
    # with the field that holds them, like a "\ud800" escape in the JSON.
    text = line.decode("utf-8", "surrogateescape")
    try:
        obj = json.loads(text)
    except ValueError as e:  # JSONDecodeError, and numbers too long
        return Refusal(None, Fault.BAD_REQUEST, f"not JSON: {e}")
    except RecursionError:
        return Refusal(None, Fault.BAD_REQUEST, "not JSON we accept: nested too deeply")
    if not isinstance(obj, dict):
        return Refusal(None, Fault.BAD_REQUEST, "a request is a JSON object")
    request_id = obj.get("id")
    problem = _not_unicode(obj)
    if problem is not None:
        return Refusal(request_id, Fault.BAD_REQUEST, problem)
    op = obj.get("op")
    if not isinstance(op, str):
        return Refusal(request_id, Fault.BAD_REQUEST, 'a request needs an "op" string')
    return Request(request_id, op, {k: v for k, v in obj.items() if k not in ("id", "op")})


def _not_unicode(obj: dict[str, Any]) -> str | None:
    """A message naming the first string in `obj` that is not valid Unicode, or None.

    A lone surrogate cannot be encoded (as UTF-8, to SQLite, to a terminal):
    refused here, it never reaches the supervisor. Iterative, since `obj`
    may be nested as deeply as the JSON parser allows.
    """
    stack: list[tuple[str, Any]] = [("", obj)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as e:
                where = path or "the request"
                return (f"{where}: not UTF-8 text (a lone surrogate or an undecodable byte, "
                        f"{ascii(value[e.start])}, at character {e.start})")
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                name = json.dumps(key) if not path else f"{path}.{json.dumps(key)}"
                stack.append((name, key))
                stack.append((name, item))
        elif isinstance(value, list):
            for index in reversed(range(len(value))):
                stack.append((f"{path}[{index}]", value[index]))
    return None
