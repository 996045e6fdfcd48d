"""The control socket: JSON lines over a Unix socket in state_dir (mode 0600).

Each request is one JSON object on one line with an `id` and an `op`; each
reply is one JSON object on one line with the same `id` and `ok`. Replies
may come back in any order, so one connection can keep many proposals in
flight. Nothing pickled crosses the socket.

    -> {"id": 7, "op": "propose", "value": "hello", "timeout": 10}
    <- {"id": 7, "ok": true, "slot": 17, "value": "hello", "request_id": "..."}
    <- {"id": 8, "ok": false, "error": "timeout", "message": "..."}

The server runs inside the supervisor's loop (its selector), with
non-blocking sockets: a slow or stuck client only grows its own output
buffer, up to a limit past which it is disconnected; it never blocks the
loop. Malformed input gets an error reply here and never reaches the
supervisor.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import socket
from typing import Any, Callable

log = logging.getLogger("paxosctl.control")

#: A request line longer than this is refused and the connection closed.
MAX_REQUEST_BYTES = 32 * 1024 * 1024
#: Replies buffered for a client that does not read, before it is dropped.
MAX_REPLY_BUFFER = 64 * 1024 * 1024
#: The longest path a Unix socket can bind to on Linux (sun_path, less the NUL).
MAX_SOCKET_PATH = 107
_READ_BYTES = 1 << 20


class ClientConnection:
    """One client connection, driven by the supervisor's loop. `reply` never blocks."""

    def __init__(self, server: "ControlServer", sock: socket.socket, peer: int) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer
        self.closed = False
        self._in = bytearray()
        self._out = bytearray()
        self._close_after_flush = False
        self._watching_write = False

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

    def _read(self) -> list[bytes] | None:
        """Complete lines received so far; None when the peer hung up or misbehaved."""
        while True:
            try:
                data = self.sock.recv(_READ_BYTES)
            except BlockingIOError:
                break
            except OSError:
                return None
            if not data:
                return None
            self._in += data
            if len(data) < _READ_BYTES:
                break
        lines = []
        while True:
            end = self._in.find(b"\n")
            if end < 0:
                break
            lines.append(bytes(self._in[:end]))
            del self._in[:end + 1]
        if len(self._in) > MAX_REQUEST_BYTES:
            lines.append(b"")  # marker: over the limit
            self._in.clear()
            self._close_after_flush = True
            return lines + [None]  # type: ignore[list-item]
        return lines

    def _flush(self) -> None:
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
        if self._out:
            if not self._watching_write:
                self.server.selector.modify(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE,
                                            ("client", self))
                self._watching_write = True
        else:
            if self._watching_write:
                self.server.selector.modify(self.sock, selectors.EVENT_READ, ("client", self))
                self._watching_write = False
            if self._close_after_flush:
                self._shutdown()

    def _shutdown(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.server.dirty.discard(self)
        try:
            self.server.selector.unregister(self.sock)
        except (KeyError, ValueError):
            pass
        try:
            self.sock.close()
        except OSError:
            pass


class ControlServer:
    """Accepts connections and hands each parsed request to `on_request`.

    Everything runs in the supervisor's loop: `handle(tag)` for the
    selector events registered here, then `flush()` once per iteration.
    """

    def __init__(self, path: str, selector: selectors.BaseSelector,
                 on_request: Callable[[ClientConnection, dict], None]) -> None:
        if len(os.fsencode(path)) > MAX_SOCKET_PATH:
            raise OSError(f"control socket path {path} is longer than {MAX_SOCKET_PATH} bytes; "
                          "use a shorter state_dir")
        self.path = path
        self.selector = selector
        self._on_request = on_request
        self._sock: socket.socket | None = None
        self._peers = 0
        self.connections: set[ClientConnection] = set()
        #: Connections with replies to write (or to close).
        self.dirty: set[ClientConnection] = set()

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
        sock.listen(128)
        sock.setblocking(False)
        self._sock = sock
        self.selector.register(sock, selectors.EVENT_READ, ("accept", self))

    def close(self) -> None:
        for connection in list(self.connections):
            connection.flush_and_close(timeout=1.0)
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

    def handle(self, tag: tuple) -> None:
        """A selector event for a descriptor registered by this server."""
        if tag[0] == "accept":
            self._accept()
            return
        connection: ClientConnection = tag[1]
        if connection.closed:
            return
        lines = connection._read()
        if lines is None:
            connection._shutdown()
            self.connections.discard(connection)
            return
        for line in lines:
            if line is None:
                break
            if line == b"" and connection._close_after_flush:
                connection.reply({"id": None, "ok": False, "error": "bad_request",
                                  "message": f"request longer than {MAX_REQUEST_BYTES} bytes"})
                continue
            if not line.strip():
                continue
            request = _parse(line)
            if "error" in request:
                connection.reply(request)
            else:
                self._on_request(connection, request)
        connection._flush()

    def flush(self) -> None:
        """Write queued replies (once per loop iteration)."""
        for connection in list(self.dirty):
            self.dirty.discard(connection)
            connection._flush()
            if connection.closed:
                self.connections.discard(connection)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._sock.accept()
            except (BlockingIOError, OSError):
                return
            sock.setblocking(False)
            self._peers += 1
            connection = ClientConnection(self, sock, self._peers)
            self.connections.add(connection)
            self.selector.register(sock, selectors.EVENT_READ, ("client", connection))


def _parse(line: bytes) -> dict[str, Any]:
    """The request on `line`, or an error reply naming what is wrong."""
    try:
        request = json.loads(line)
    except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError, and numbers too long
        return {"id": None, "ok": False, "error": "bad_request", "message": f"not JSON: {e}"}
    except RecursionError:
        return {"id": None, "ok": False, "error": "bad_request",
                "message": "not JSON we accept: nested too deeply"}
    if not isinstance(request, dict):
        return {"id": None, "ok": False, "error": "bad_request",
                "message": "a request is a JSON object"}
    if not isinstance(request.get("op"), str):
        return {"id": request.get("id"), "ok": False, "error": "bad_request",
                "message": 'a request needs an "op" string'}
    return request
