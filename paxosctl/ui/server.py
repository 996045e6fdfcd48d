"""The HTTP server of `paxosctl ui`: the page, its event stream, its actions.

Standard library only (`http.server`, a thread per request). Routes, each
behind `gate.Gate.check` (Host, token, and for a POST Origin and
--allow-actions):

    GET  /?token=T            the page (index.html, the token written into
                              the URLs of its script, style and stream)
    GET  /app.js, /style.css  the page's code and style (package data)
    GET  /events?token=T      server-sent events: `watch.Hub`'s events
    GET  /state?token=T       the current "state" event as JSON
    POST /action?token=T      an action (`actions.parse`): JSON in, the
                              supervisor's reply out (400: bad action,
                              409: refused by the supervisor or none runs)

Every response says `Cache-Control: no-store` and `Referrer-Policy:
no-referrer` (the token is in the URL: no other site may learn it from a
Referer), and the page's Content-Security-Policy allows only its own
origin (no inline script, nothing from a CDN).
"""

from __future__ import annotations

import json
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from . import actions
from .gate import Gate, Refusal
from .watch import Hub, Watch, dumps

#: Seconds between keep-alive comments on an idle event stream: a closed
#: page is noticed (the write fails) and its thread ends.
KEEPALIVE_SECONDS = 10.0

#: The largest action body read (an action is a few fields).
MAX_ACTION_BYTES = 4096

#: The page's own files: name -> content type.
STATIC = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def static(name: str) -> bytes:
    return (files("paxosctl.ui") / "static" / name).read_bytes()


class UiServer(ThreadingHTTPServer):
    """One `paxosctl ui`: the listening socket, its gate, the hub of events,
    and what actions need (the supervisor's socket, the manifest's path)."""

    daemon_threads = True
    # A second `paxosctl ui` on the same port must fail, not share it.
    allow_reuse_address = False

    def __init__(self, host: str, port: int, *, token: str, allow_actions: bool,
                 hub: Hub, socket_path, cluster_file: str) -> None:
        super().__init__((host, port), Handler)
        self.gate = Gate(token, host, self.server_address[1], allow_actions)
        self.hub = hub
        self.socket_path = socket_path
        self.cluster_file = cluster_file
        self.index = static("index.html").replace(b"__TOKEN__", token.encode())


class Handler(BaseHTTPRequestHandler):
    server: UiServer
    server_version = "paxosctl-ui"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    # -- every method goes through the gate first --

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_OPTIONS(self) -> None:
        self._serve("OPTIONS")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the command's output is its URL and the errors it meets."""

    def _serve(self, method: str) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        refusal = self.server.gate.check(method, self.path, headers)
        if refusal is not None:
            self._refuse(refusal)
            return
        path = urlsplit(self.path).path
        if method == "POST":
            if path == "/action":
                self._action()
            else:
                self._refuse(Refusal(404, f"no action at {path[:80]}"))
        elif path == "/":
            self._send(200, "text/html; charset=utf-8", self.server.index, method)
        elif path.lstrip("/") in STATIC:
            name = path.lstrip("/")
            self._send(200, STATIC[name], static(name), method)
        elif path == "/state":
            self._json(200, self.server.hub.state, method)
        elif path == "/events":
            self._events()
        else:
            self._refuse(Refusal(404, f"nothing at {path[:80]}"))

    # -- responses --

    def _headers(self, status: int, content_type: str, length: int | None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy", CSP)
        self.end_headers()

    def _send(self, status: int, content_type: str, body: bytes, method: str = "GET") -> None:
        self._headers(status, content_type, len(body))
        if method != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any, method: str = "GET") -> None:
        self._send(status, "application/json", json.dumps(data).encode(), method)

    def _refuse(self, refusal: Refusal) -> None:
        # A POST body is left unread: the connection closes after the answer.
        self.close_connection = True
        self._send(refusal.status, "text/plain; charset=utf-8", (refusal.reason + "\n").encode(),
                   self.command)

    # -- the event stream --

    def _events(self) -> None:
        hub = self.server.hub
        q = hub.subscribe()
        self.close_connection = True
        try:
            self._headers(200, "text/event-stream", None)
            self.wfile.write(b"retry: 1000\n\n")
            self.wfile.flush()
            while True:
                try:
                    item = q.get(timeout=KEEPALIVE_SECONDS)
                except queue.Empty:
                    self.wfile.write(b": keep-alive\n\n")
                    self.wfile.flush()
                    continue
                if item is None:
                    return
                event, data = item
                self.wfile.write(f"event: {event}\ndata: {dumps(data)}\n\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            return  # the page went away
        finally:
            hub.unsubscribe(q)

    # -- actions --

    def _action(self) -> None:
        from ..errors import PaxosctlError

        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_ACTION_BYTES:
            self._refuse(Refusal(400, f"an action is a JSON body of 1 to {MAX_ACTION_BYTES} bytes"))
            return
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            self._refuse(Refusal(400, "an action is a JSON object"))
            return
        known = {a["name"] for a in self.server.hub.state.get("agents", [])}
        try:
            action = actions.parse(body, known)
        except actions.BadAction as e:
            self._json(400, {"ok": False, "error": str(e)})
            return
        try:
            reply = actions.run(action, self.server.socket_path, self.server.cluster_file)
        except PaxosctlError as e:
            self._json(409, {"ok": False, "error": str(e)})
            return
        self._json(200, {"ok": True, "reply": reply})


def serve(manifest, file: str, *, host: str, port: int, token: str, allow_actions: bool,
          ready) -> None:
    """Serve the page of the cluster of `manifest` (loaded from `file`) until
    Ctrl-C. `ready(url)` is called once the socket listens (the command
    prints the URL then). Raises OSError if it cannot listen."""
    from ..layout import paths

    hub = Hub()
    server = UiServer(host, port, token=token, allow_actions=allow_actions, hub=hub,
                      socket_path=paths(manifest.state_dir)["socket"], cluster_file=file)
    watch = Watch(manifest, file, hub, actions=allow_actions)
    poller = threading.Thread(target=watch.run, name="paxosctl-ui-watch", daemon=True)
    try:
        ready(server.gate.url())
        poller.start()
        server.serve_forever(poll_interval=0.2)
    finally:
        watch.stop()
        hub.close()
        server.server_close()
        if poller.is_alive():
            poller.join(timeout=5)
