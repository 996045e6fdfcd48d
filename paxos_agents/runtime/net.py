"""The transport's seam: how an agent listens and dials, and how a client dials.

`Transport` (transport.py) owns everything a connection carries and every
bound on it (links, frame queues, the HELLO, limits, expiry); what kind of
socket carries it is a `Net`'s:

- `UnixNet` (here): Unix stream sockets at `run/<agent>.sock` in a 0700
  folder, as the data path has always been (the file system says who may
  connect; nothing is encrypted).
- `TlsNet` (tlsnet.py): TCP with mutual TLS 1.3; the certificate says who
  is at each end (`identity`), and `Transport` checks a HELLO against it.

A `Net` makes `Connection`s: accepted ones (`accept`) and dialled ones
(`dial`), each already holding its socket's non-blocking state (a TLS one
finishes its TCP connect and handshake inside its own `read`/`write`, as
the selector reports readiness). `make_net(spec)` picks the kind from the
agent's spec; a client dials with `UnixNet.dial` or `tlsnet.TlsDialler`
(paxosctl.client.dialling).
"""

from __future__ import annotations

import errno
import os
import socket
from typing import TYPE_CHECKING, Mapping, Protocol

from .connection import Connection, endpoint

if TYPE_CHECKING:
    from .spec import AgentSpec

#: connect() errors that only mean "not there (yet)": retried quietly.
QUIET_CONNECT_ERRORS = frozenset({errno.ENOENT, errno.ECONNREFUSED, errno.EAGAIN})


class Net(Protocol):
    """Listener and dialler of one agent endpoint."""

    #: True when connections carry a verified certificate (`Connection.identity`):
    #: the transport then checks each HELLO's sender against it.
    secure: bool
    #: Where this endpoint listens, for logs ("run/acceptor-0.sock", "127.0.0.1:40123").
    where: str

    def listen(self, backlog: int) -> socket.socket:
        """Bind and listen (non-blocking); publish where, for peers and clients."""

    def accept(self, sock: socket.socket, limit: int, read_limit: int) -> Connection:
        """A `Connection` for a socket `listener.accept()` returned."""

    def dial(self, peer: str, limit: int, read_limit: int) -> Connection | None:
        """A connection to agent `peer` under way (its first frames may be
        queued at once); None when its address is not known yet (ask again
        soon). Raises OSError when it cannot be reached now."""

    def unpublish(self) -> None:
        """Remove what `listen` published (a clean exit)."""

    def place(self, addresses: "Mapping[str, str]") -> None:
        """Dial these members (name -> "host:port") at these addresses from
        now on: agents a membership change added, which the manifest does
        not place (runtime/members.py)."""


class UnixNet:
    """Unix stream sockets under the cluster's run folder (`run/<name>.sock`)."""

    secure = False

    def __init__(self, run_dir: str, name: str) -> None:
        self.run_dir = run_dir
        self.path = endpoint(run_dir, name)
        self.where = self.path

    def listen(self, backlog: int) -> socket.socket:
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        try:
            os.unlink(self.path)  # a previous incarnation's: it died, nobody listens there
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(self.path)
        os.chmod(self.path, 0o600)  # only the cluster's owner connects (and its folder is 0700)
        sock.listen(backlog)
        sock.setblocking(False)
        return sock

    def accept(self, sock: socket.socket, limit: int, read_limit: int) -> Connection:
        return Connection(sock, limit, read_limit)

    def dial(self, peer: str, limit: int, read_limit: int) -> Connection | None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(endpoint(self.run_dir, peer))
        except OSError:
            sock.close()
            raise
        return Connection(sock, limit, read_limit)

    def place(self, addresses: "Mapping[str, str]") -> None:
        pass  # a Unix socket's path follows from the name alone

    def unpublish(self) -> None:
        try:
            if os.path.exists(self.path):
                os.unlink(self.path)
        except OSError:
            pass


def make_net(spec: "AgentSpec", run_dir: str) -> Net:
    """The agent's `Net`, as its spec says: TLS when `spec.tls` is set."""
    if spec.tls is None:
        return UnixNet(run_dir, spec.name)
    from .tlsnet import TlsNet

    return TlsNet.for_agent(spec, run_dir)

