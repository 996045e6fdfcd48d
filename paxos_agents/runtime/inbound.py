"""The connections an agent did not open: its listener, and every peer's and
client's connection to it until it closes.

`Inbound` is one part of a `Transport` (transport.py's module docstring
says what the transport promises); it accepts connections, holds each
until its HELLO has been checked (greeting.py's `Greeter`), reads the
frames of greeted ones (a peer's to `on_message`, a client's to
`on_client`), queues the answers to clients, and closes what is past its
deadline. Such connections are untrusted until their HELLO and bounded
before and after it (`Limits`): one frame of at most
`frames.HANDSHAKE_FRAME_BYTES` within `handshake_seconds`, at most
`max_inbound` of them; a client that leaves more than `client_bytes` of
answers unread is cut loose (a CUT frame, then closed at the end of the
turn: `cut` never closes a connection behind its caller's back).
Refusals are counted in the transport's `refused` by reason, and each is
one rate-limited log line.

Running out of descriptors (`accept` failing with EMFILE and the like)
leaves the listener unwatched for `accept_backoff_seconds` (the pending
connections wait in the backlog) rather than spinning on it.
"""

from __future__ import annotations

import errno
import json
import selectors
from typing import TYPE_CHECKING

from . import clientwire, frames
from .connection import Connection
from .handshake import CLIENT
from .records import event

if TYPE_CHECKING:
    from .endpointparts import Endpoint

#: accept() errors that mean "out of descriptors or memory": retrying at once
#: would fail the same way, so the listener is left alone for a while.
_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Inbound:
    """The listener and the inbound connections of one `Transport` (what it
    uses of it: endpointparts.py)."""

    def __init__(self, transport: "Endpoint") -> None:
        self._t = transport
        #: Every inbound connection not closed yet.
        self.conns: set[Connection] = set()
        #: Inbound connections not greeted yet -> their handshake deadline
        #: (insertion order is deadline order: the first is the next due).
        self._handshaking: dict[Connection, float] = {}
        #: Connections cut or refused -> when they are closed at the latest.
        self._closing: dict[Connection, float] = {}
        #: When the listener is watched again after running out of descriptors.
        self._accept_paused_until: float | None = None
        self._listener = transport.net.listen(transport.limits.backlog)
        transport.selector.register(self._listener, selectors.EVENT_READ, self._on_accept)

    # ------------------------------------------------------------ accepting

    def _on_accept(self, _mask: int) -> None:
        t = self._t
        limits = t.limits
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in _EXHAUSTED:
                    self._pause_accepting(e)
                else:
                    t.rlog.warning("accept", "accept failed: %s", e)
                return
            if len(self.conns) >= limits.max_inbound:
                t.greeter.refuse_at_once(sock, f"too many connections ({limits.max_inbound} open)")
                continue
            try:
                conn = t.net.accept(sock, limits.client_bytes, frames.HANDSHAKE_FRAME_BYTES)
            except OSError as e:
                sock.close()
                t.rlog.warning("accept", "accept failed: %s", e)
                continue
            conn.awaiting_hello = True
            self.conns.add(conn)
            self._handshaking[conn] = t.clock() + limits.handshake_seconds
            t.selector.register(conn.sock, selectors.EVENT_READ,
                                lambda mask, c=conn: self._on_ready(c, mask))

    def _pause_accepting(self, error: OSError) -> None:
        """Out of descriptors: stop watching the listener for a while (the
        pending connections wait in the backlog) rather than spin on it."""
        t = self._t
        t.counts["accept_backoffs"] += 1
        t.rlog.warning("accept_backoff", "accept failed: %s; not accepting for %.2f s",
                       error.strerror or error, t.limits.accept_backoff_seconds)
        try:
            t.selector.unregister(self._listener)
        except (KeyError, ValueError):
            pass
        self._accept_paused_until = t.clock() + t.limits.accept_backoff_seconds

    # -------------------------------------------------------------- reading

    def _on_ready(self, conn: Connection, mask: int) -> None:
        t = self._t
        if mask & selectors.EVENT_WRITE:
            t.write(conn)
        if not mask & selectors.EVENT_READ or conn.closed or conn.cut:
            return
        got = conn.read()
        if conn.failure is not None:
            t.greeter.tls_refused(conn, "refused a connection")
            return
        if got is None:
            self.close(conn)
            return
        if not got and conn.has_output:
            t.dirty.add(conn)  # a TLS handshake that waits to write
        if got and not conn.greeted:
            # `read` returned the HELLO alone; the frames after it are read
            # under the limit a greeted connection gets.
            if not t.greeter.greet(conn, got[0]):
                return
            got = conn.more()
            if got is None:
                self.close(conn)
                return
        for frame in got:
            if conn.peer == CLIENT:
                t.on_client(conn, frame)
            else:
                conn.frames += 1  # counted as the sender counted it queuing (records' link)
                if conn.fresh or not t.greeter.admitted:
                    t.dropped["not_admitted"] += 1  # neither end may step it (admission.py)
                else:
                    t.receiving = conn
                    t.on_message(conn.peer, frame)
            if conn.closed or conn.cut:
                return

    def greeted(self, conn: Connection) -> None:
        """`conn`'s HELLO passed: no handshake deadline any more."""
        self._handshaking.pop(conn, None)

    # ------------------------------------------------------------- answering

    def reply(self, conn: Connection, frame: bytes) -> None:
        """Queue a frame to a client (or a WELCOME); written at the next flush.
        A client over `limits.client_bytes` is cut loose (see `cut`); this
        never closes a connection itself, so callers may loop over theirs."""
        t = self._t
        if conn.queue(frame):
            t.dirty.add(conn)
        elif not conn.closed and not conn.cut:
            self.cut(conn, f"fell behind: more than {conn.limit} bytes of answers unread")

    def cut(self, conn: Connection, reason: str) -> None:
        """Cut a client loose: discard its frames not yet started, queue a CUT
        frame saying why (and the learner's applied slot, for a resume), read
        nothing more from it, and close it at a flush once the CUT is written
        or `limits.cut_grace_seconds` have passed."""
        t = self._t
        applied = t.welcome().get("applied", -1)
        conn.finish(clientwire.CUT + json.dumps(
            {"reason": reason, "applied": applied if type(applied) is int else -1}).encode())
        t.counts["clients_cut"] += 1
        t.rlog.warning("cut", "cut a client loose: %s", reason)
        self._closing[conn] = t.clock() + t.limits.cut_grace_seconds
        t.dirty.add(conn)
        t.watch(conn, read=False, write=True)

    def refuse(self, conn: Connection, reason: str, why: str) -> bool:
        """Answer REFUSE `why` (which holds untrusted text only `clip`ped),
        count it under `reason`, and close. False, for the caller to return."""
        t = self._t
        t.refused[reason] += 1
        t.rlog.warning(f"refused:{reason}", "refused a connection: %s", why,
                       extra=event("refused"))
        conn.finish(frames.REFUSE + why.encode())
        try:
            conn.write()
        except OSError:
            pass
        self.close(conn)
        return False

    # -------------------------------------------------------------- closing

    def close(self, conn: Connection) -> None:
        """Close an inbound connection (a client's `on_client` hears of it)."""
        if conn.closed:
            return
        t = self._t
        if conn.peer == CLIENT and conn.greeted:
            t.on_client(conn, b"")  # gone: forget its watches
        t.unregister(conn)
        conn.close()
        self.conns.discard(conn)
        t.dirty.discard(conn)
        self._handshaking.pop(conn, None)
        self._closing.pop(conn, None)

    def due(self) -> bool:
        """Something here has a deadline (`expire` has work)."""
        return bool(self._handshaking or self._closing or self._accept_paused_until is not None)

    def expire(self, now: float) -> None:
        """Close what is past its deadline: handshakes not done in time, cut
        clients that did not take their CUT; watch the listener again after
        an accept backoff."""
        t = self._t
        handshaking = self._handshaking
        while handshaking:
            conn, deadline = next(iter(handshaking.items()))
            if deadline > now:
                break
            del handshaking[conn]
            if not conn.closed and not conn.greeted:
                self.refuse(conn, "handshake_timeout",
                            f"no handshake within {t.limits.handshake_seconds:g} s")
        if self._closing:
            for conn, deadline in list(self._closing.items()):
                if conn.closed:
                    del self._closing[conn]
                elif deadline <= now:
                    self.close(conn)
        if self._accept_paused_until is not None and now >= self._accept_paused_until:
            self._accept_paused_until = None
            try:
                t.selector.register(self._listener, selectors.EVENT_READ, self._on_accept)
            except (KeyError, ValueError):
                pass

    def peers(self) -> set[str]:
        """The peers greeted on an inbound connection still open."""
        return {conn.peer for conn in self.conns
                if conn.greeted and not conn.closed and conn.peer != CLIENT}

    def close_all(self) -> None:
        """Close every inbound connection and the listener (a clean exit)."""
        t = self._t
        for conn in list(self.conns):
            t.unregister(conn)
            conn.close()
        try:
            t.selector.unregister(self._listener)
        except (KeyError, ValueError):
            pass
        self._listener.close()

