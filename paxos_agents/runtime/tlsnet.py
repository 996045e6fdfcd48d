"""TCP with mutual TLS 1.3: the `Net` for agents on several hosts (see net.py).

Everything here is non-blocking and runs inside the caller's selector loop:

- a dialled `TlsConnection` starts with a non-blocking TCP connect; its
  `write` (the socket became writable) and `read` finish the connect, then
  step the TLS handshake (SSLWantReadError / SSLWantWriteError say which
  readiness it waits for); frames queued meanwhile (the HELLO) go out once
  the handshake is done;
- reads loop until the socket is drained (or 64 KiB are in) and
  `pending()` is 0: bytes OpenSSL already decrypted are invisible to
  select, and would otherwise wait for the next packet;
- writes that the socket cannot take now raise SSLWantWriteError; the
  same buffer is offered again later (OpenSSL requires it), as
  `Connection.write` does anyway.

Identity (`identity.py`): a dialler requires the server to be the agent it
dialled (`spiffe://<cluster>/agent/<name>`): a client must never take a
decision from an impostor learner, and an agent never sends its votes to
one. A listener requires a certificate of its cluster; which name and kind
may say which HELLO is the handshake's check (greeting.Greeter.matches_certificate).
A failed handshake or identity check leaves `Connection.failure` = (reason,
one line), which the transport counts (`identity.REASONS`) and logs.

Addresses are "host:port". An agent listens where its spec says (port 0:
any free port) and publishes the address it got in `run/<name>.addr`,
where peers and clients on this machine find it, as they find a Unix
socket's path; an address the manifest gives (`TlsSpec.addresses`) wins.
Names are looked up off the loop thread (`Resolver`), again at each
reconnect: a peer that moved (a new pod, a new port) is found there.

Sockets: TCP_NODELAY (a frame is a message: no Nagle delay), and
SO_KEEPALIVE with TCP_USER_TIMEOUT near twice the election timeout, so a
link to a host that vanished (power cut, partition) fails in about that
time instead of TCP's ~15 minutes, and is dialled again.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import queue
import socket
import ssl
import threading
from typing import Callable, Mapping

from .connection import READ_BYTES, Connection
from .identity import CertificateProblem, Identity, client_context, describe_tls_error, \
    peer_identity, server_context
from .spec import AgentSpec, TlsSpec


def address_file(run_dir: str, name: str) -> str:
    """Where agent `name` publishes the "host:port" it listens on."""
    return os.path.join(run_dir, f"{name}.addr")


def split_address(address: str) -> tuple[str, int]:
    """("host", port) of "host:port" or "[v6]:port"; ValueError (one line) otherwise."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f'invalid address {address!r}; allowed: "host:port" with a port from 0 to 65535')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def read_address(run_dir: str, name: str, addresses: Mapping[str, str]) -> str:
    """Agent `name`'s address: the manifest's, else the one it published.
    OSError if it published none (not started yet)."""
    given = addresses.get(name)
    if given:
        return given
    with open(address_file(run_dir, name)) as f:
        return f.read().strip()


def lookup(address: str) -> tuple[int, tuple]:
    """(family, sockaddr) of "host:port", resolved now (blocking: not on a loop thread)."""
    try:
        host, port = split_address(address)
    except ValueError as e:
        raise OSError(errno.EINVAL, str(e)) from None
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


def numeric(address: str) -> tuple[int, tuple] | None:
    """(family, sockaddr) of "ip:port" without any look-up; None for a host name."""
    try:
        host, port = split_address(address)
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 6:
        return socket.AF_INET6, (host, port, 0, 0)
    return socket.AF_INET, (host, port)


class Resolver:
    """Addresses of agents by name; host names looked up on a thread of its own.

    `take(name)` reads the agent's address (the manifest's, or the small
    file it published on this machine): an IP address is used at once; a
    host name is looked up on the resolver's thread, and `take` hands out
    a finished look-up once (so each reconnect uses a fresh one) or asks
    for one and returns None; the loop tries again at its next reconnect,
    a few milliseconds later (what it sent meanwhile is dropped, counted
    "unreachable", and resent by the core as any lost message).
    """

    def __init__(self, address_of: Callable[[str], str]) -> None:
        self._address_of = address_of
        self._lock = threading.Lock()
        self._results: dict[str, tuple[int, tuple] | OSError] = {}
        self._asked: set[str] = set()
        self._queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def pending(self) -> bool:
        """A host name is being looked up (its dial will come)."""
        with self._lock:
            return bool(self._asked)

    def resolve(self, name: str) -> tuple[int, tuple]:
        """Look `name` up now, on the caller's thread (raises OSError)."""
        return lookup(self._address_of(name))

    def take(self, name: str) -> tuple[int, tuple] | None:
        """`name`'s address now if it is an IP address (OSError if it has
        none); else a finished look-up (raises the OSError it ended with),
        or None: asked."""
        found = numeric(self._address_of(name))
        if found is not None:
            return found
        with self._lock:
            result = self._results.pop(name, None)
            if result is None:
                if name not in self._asked:
                    self._asked.add(name)
                    self._queue.put(name)
                    if self._thread is None:
                        self._thread = threading.Thread(target=self._run, name="resolver", daemon=True)
                        self._thread.start()
                return None
        if isinstance(result, OSError):
            raise result
        return result

    def _run(self) -> None:
        while True:
            name = self._queue.get()
            try:
                result: tuple[int, tuple] | OSError = self.resolve(name)
            except OSError as e:
                result = e
            except Exception as e:  # noqa: BLE001 - a look-up must never kill the thread
                result = OSError(errno.EINVAL, str(e))
            with self._lock:
                self._results[name] = result
                self._asked.discard(name)


def tune(sock: socket.socket, user_timeout_ms: int) -> None:
    """TCP_NODELAY, keepalive, and TCP_USER_TIMEOUT (see the module's docstring)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    idle = max(1, user_timeout_ms // 2000)
    for option, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", idle), ("TCP_KEEPCNT", 2),
                          ("TCP_USER_TIMEOUT", user_timeout_ms)):
        if hasattr(socket, option):  # Linux; elsewhere keepalive's defaults apply
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


class TlsConnection(Connection):
    """A `Connection` over an `ssl.SSLSocket` that finishes its TCP connect
    and TLS handshake itself, inside `read` and `write`.

    Until the handshake is done, `write` steps it and returns True when it
    waits to read (the transport stops watching writability) or False when
    it waits to write; `has_output` stays True while it waits to write, so
    a transport that writes what has output drives it on. A failure leaves
    `failure` set and `read` returns None / `write` raises OSError.
    """

    __slots__ = ("_secured", "_connecting", "_want_write", "expect", "cluster_id")

    WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError)

    def __init__(self, sock: ssl.SSLSocket, limit: int, read_limit: int, *, connecting: bool,
                 expect: Identity | None = None, cluster_id: str | None = None) -> None:
        super().__init__(sock, limit, read_limit)
        #: The TLS handshake is done: frames can be written (a REFUSE saying
        #: why, when the identity check then failed: see `failure`).
        self._secured = False
        self._connecting = connecting
        self._want_write = connecting
        #: The identity the server must have (a dialler), or the cluster a
        #: client certificate must belong to (a listener).
        self.expect = expect
        self.cluster_id = cluster_id

    @property
    def secured(self) -> bool:
        """The TLS handshake is done (the identity check passed unless `failure` says)."""
        return self._secured

    @property
    def has_output(self) -> bool:
        return self._want_write or Connection.has_output.fget(self)  # type: ignore[attr-defined]

    def _fail(self, reason: str, line: str) -> OSError:
        self.failure = (reason, line)
        return OSError(errno.ECONNABORTED, line)

    def _handshake(self) -> bool:
        """One step of the connect and handshake; True once both are done.
        Raises OSError (with `failure` set for a certificate problem)."""
        sock = self.sock
        if self._connecting:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err))
            try:
                sock.getpeername()
            except OSError:  # ENOTCONN: the connect is still under way
                self._want_write = True
                return False
            self._connecting = False
        try:
            sock.do_handshake()  # type: ignore[attr-defined]
        except ssl.SSLWantReadError:
            self._want_write = False
            return False
        except ssl.SSLWantWriteError:
            self._want_write = True
            return False
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionError):
            raise
        except ssl.SSLError as e:
            raise self._fail(*describe_tls_error(e)) from None
        self._want_write = False
        self._secured = True
        try:
            self.identity = peer_identity(sock, cluster_id=self.cluster_id, expect=self.expect)
        except CertificateProblem as p:
            raise self._fail(p.reason, p.message) from None
        return True

    def write(self) -> bool:
        if not self._secured:
            if not self._handshake():
                return not self._want_write
        try:
            return super().write()
        except ssl.SSLError as e:
            if not isinstance(e, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
                self.failure = describe_tls_error(e)  # the peer refused our certificate
            raise

    def read(self) -> list[bytes] | None:
        if not self._secured:
            try:
                if not self._handshake():
                    return []
            except OSError:
                return None
        sock = self.sock
        chunks = []
        size = 0
        eof = False
        try:
            # One recv returns one TLS record (16 KiB at most): read on until
            # the socket has nothing more (SSLWantReadError) or READ_BYTES
            # are in, as one Unix read takes them, so that a loop turn (and
            # its one fsync) handles a whole burst; and never leave bytes
            # OpenSSL already decrypted (`pending`), which select cannot see.
            while size < READ_BYTES or sock.pending():  # type: ignore[attr-defined]
                data = sock.recv(READ_BYTES)
                if not data:
                    eof = True
                    break
                chunks.append(data)
                size += len(data)
        except self.WOULD_BLOCK:
            pass
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            eof = True
        except ssl.SSLError as e:  # the peer refused our certificate after the handshake (TLS 1.3)
            self.failure = describe_tls_error(e)
            return None
        except OSError:
            return None
        if not chunks:
            return None if eof else []
        try:
            return self.reader.feed(b"".join(chunks) if len(chunks) > 1 else chunks[0],
                                    1 if self.awaiting_hello else None)
        except Exception:  # frames.FrameError
            return None


class TlsDialler:
    """Dials agents by name: address (`Resolver`), socket options, a
    non-blocking connect, and a TLS client that requires the agent dialled."""

    def __init__(self, context: ssl.SSLContext, cluster_id: str, resolver: Resolver,
                 user_timeout_ms: int) -> None:
        self.context = context
        self.cluster_id = cluster_id
        self.resolver = resolver
        self.user_timeout_ms = user_timeout_ms

    def dial(self, peer: str, limit: int, read_limit: int, *,
             resolved: tuple[int, tuple] | None = None) -> TlsConnection | None:
        """A connection to agent `peer` under way; None while its address is
        looked up (`resolved` skips the look-up). OSError if it cannot be dialled."""
        if resolved is None:
            resolved = self.resolver.take(peer)
            if resolved is None:
                return None
        family, sockaddr = resolved
        raw = socket.socket(family, socket.SOCK_STREAM)
        try:
            raw.setblocking(False)
            tune(raw, self.user_timeout_ms)
            sock = self.context.wrap_socket(raw, server_side=False, do_handshake_on_connect=False)
        except OSError:
            raw.close()
            raise
        try:
            err = sock.connect_ex(sockaddr)
        except OSError:
            sock.close()
            raise
        if err not in (0, errno.EINPROGRESS, errno.EAGAIN):
            sock.close()
            raise OSError(err, os.strerror(err))
        return TlsConnection(sock, limit, read_limit, connecting=True,
                             expect=Identity(self.cluster_id, "agent", peer))


class TlsNet:
    """An agent's TLS endpoint: listens on `spec.tls.listen`, dials peers by name."""

    secure = True

    def __init__(self, name: str, run_dir: str, tls: TlsSpec, cluster_id: str) -> None:
        self.name = name
        self.run_dir = run_dir
        self.tls = tls
        self.cluster_id = cluster_id
        self.where = tls.listen
        self.server = server_context(tls.cert, tls.key, tls.ca)
        #: Where peers are: the manifest's placements, and those `place` adds.
        self.addresses = dict(tls.addresses)
        self.resolver = Resolver(lambda peer: read_address(run_dir, peer, self.addresses))
        self.dialler = TlsDialler(client_context(tls.cert, tls.key, tls.ca), cluster_id,
                                  self.resolver, tls.user_timeout_ms)
        self._published = False

    def place(self, addresses: Mapping[str, str]) -> None:
        """See `net.Net.place`; the manifest's own placements are kept."""
        for name, address in addresses.items():
            self.addresses.setdefault(name, address)

    @classmethod
    def for_agent(cls, spec: AgentSpec, run_dir: str) -> TlsNet:
        assert spec.tls is not None
        return cls(spec.name, run_dir, spec.tls, spec.cluster_id)

    def listen(self, backlog: int) -> socket.socket:
        host, port = split_address(self.tls.listen)
        family, sockaddr = lookup(self.tls.listen)  # once, before the loop runs
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart rebinds at once
        sock.bind(sockaddr)
        sock.listen(backlog)
        sock.setblocking(False)
        bound = sock.getsockname()
        shown = f"[{bound[0]}]" if family == socket.AF_INET6 else bound[0]
        self.where = f"{shown}:{bound[1]}"
        self._publish()
        return sock

    def _publish(self) -> None:
        """Write `run/<name>.addr` whole (peers read it at each reconnect)."""
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        path = address_file(self.run_dir, self.name)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(self.where + "\n")
        os.replace(tmp, path)
        self._published = True

    def accept(self, sock: socket.socket, limit: int, read_limit: int) -> Connection:
        tune(sock, self.tls.user_timeout_ms)
        sock.setblocking(False)
        wrapped = self.server.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return TlsConnection(wrapped, limit, read_limit, connecting=False, cluster_id=self.cluster_id)

    def dial(self, peer: str, limit: int, read_limit: int) -> Connection | None:
        return self.dialler.dial(peer, limit, read_limit)

    def unpublish(self) -> None:
        if not self._published:
            return
        path = address_file(self.run_dir, self.name)
        try:
            with open(path) as f:
                mine = f.read().strip() == self.where
            if mine:  # a newer incarnation may have published its own meanwhile
                os.unlink(path)
        except OSError:
            pass
