"""The control socket: JSON lines over a Unix socket in state_dir (mode 0600).

Each request is one JSON object on one line with an `id` and an `op`; each
reply is one JSON object on one line with the same `id` and `ok`. Replies
may come back in any order, so one connection can keep many proposals in
flight. Nothing pickled crosses the socket.

    -> {"id": 7, "op": "propose", "value": "hello", "timeout": 10}
    <- {"id": 7, "ok": true, "slot": 17, "value": "hello", "request_id": "..."}
    <- {"id": 8, "ok": false, "error": "timeout", "message": "..."}

The server side never blocks the supervisor on a slow client: each
connection has its own reader and writer threads.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
from typing import Any, Callable

log = logging.getLogger("paxosctl.control")

#: A request line longer than this is refused and the connection closed.
MAX_REQUEST_BYTES = 32 * 1024 * 1024
#: The longest path a Unix socket can bind to on Linux (sun_path, less the NUL).
MAX_SOCKET_PATH = 107


class ClientConnection:
    """The supervisor's end of one client connection. `reply` never blocks."""

    def __init__(self, sock: socket.socket, peer: int) -> None:
        self.sock = sock
        self.peer = peer
        self.closed = False
        self._out: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write, name=f"control-w{peer}", daemon=True)
        self._writer.start()

    def reply(self, obj: dict[str, Any]) -> None:
        if not self.closed:
            self._out.put(json.dumps(obj, separators=(",", ":")).encode() + b"\n")

    def close(self) -> None:
        """Close after the replies already queued are written."""
        self._out.put(None)

    def flush_and_close(self, timeout: float = 5.0) -> None:
        """Close, and wait (bounded) until the queued replies are written."""
        self.close()
        self._writer.join(timeout)

    def _write(self) -> None:
        try:
            while (data := self._out.get()) is not None:
                self.sock.sendall(data)
        except OSError:
            pass
        finally:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass


class ControlServer:
    """Accepts connections and hands each parsed request to `on_request`.

    `on_request(connection, request)` is called from the connection's
    reader thread; the supervisor queues it to its own loop. Malformed
    input gets an error reply here and never reaches the supervisor.
    """

    def __init__(self, path: str, on_request: Callable[[ClientConnection, dict], None]) -> None:
        if len(os.fsencode(path)) > MAX_SOCKET_PATH:
            raise OSError(f"control socket path {path} is longer than {MAX_SOCKET_PATH} bytes; "
                          "use a shorter state_dir")
        self.path = path
        self._on_request = on_request
        self._sock: socket.socket | None = None
        self._peers = 0

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
        sock.listen(64)
        self._sock = sock
        threading.Thread(target=self._accept, name="control-accept", daemon=True).start()

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            try:
                os.unlink(self.path)
            except OSError:
                pass

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._peers += 1
            client = ClientConnection(conn, self._peers)
            threading.Thread(target=self._read, args=(client,),
                             name=f"control-r{self._peers}", daemon=True).start()

    def _read(self, client: ClientConnection) -> None:
        reader = client.sock.makefile("rb")
        try:
            while True:
                line = reader.readline(MAX_REQUEST_BYTES + 1)
                if not line:
                    return
                if len(line) > MAX_REQUEST_BYTES:
                    client.reply({"id": None, "ok": False, "error": "bad_request",
                                  "message": f"request longer than {MAX_REQUEST_BYTES} bytes"})
                    return
                if not line.strip():
                    continue
                request = _parse(line)
                if "error" in request:
                    client.reply(request)
                    continue
                self._on_request(client, request)
        except (OSError, ValueError):
            return
        finally:
            client.close()


def _parse(line: bytes) -> dict[str, Any]:
    """The request on `line`, or an error reply naming what is wrong."""
    try:
        request = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return {"id": None, "ok": False, "error": "bad_request", "message": f"not JSON: {e}"}
    if not isinstance(request, dict):
        return {"id": None, "ok": False, "error": "bad_request",
                "message": "a request is a JSON object"}
    if not isinstance(request.get("op"), str):
        return {"id": request.get("id"), "ok": False, "error": "bad_request",
                "message": 'a request needs an "op" string'}
    return request
