"""How a client reaches an agent: one `dial(name)` for Unix sockets and TLS.

`Dialler(endpoints)` picks the kind from endpoints.json (paxosctl.endpoints):

- Unix sockets: `run/<agent>.sock`, connected at once or refused at once;
- TCP + mutual TLS 1.3 (paxos_agents.runtime.tlsnet): the client's
  certificate (`certs/client/client.crt`, checked when the client starts,
  one line naming the file and the fix if it would be refused), a
  non-blocking connect and handshake driven by the connection's own
  reads and writes, and the server required to be the agent dialled: a
  certificate of another name or cluster (an impostor learner) fails the
  connection (`Connection.failure`) before any frame is read from it.

Addresses are looked up on the resolver's thread when dialled from the
I/O thread (`lookup_now=False`: None until the look-up is done), on the
caller's thread when the client starts.
"""

from __future__ import annotations

import socket
import time

from paxos_agents.runtime import frames
from paxos_agents.runtime.connection import MAX_LINK_BYTES, Connection

from ..endpoints import Endpoints
from ..errors import PaxosctlError


class Dialler:
    """Opens connections to the agents of one cluster (see the module docstring)."""

    def __init__(self, endpoints: Endpoints) -> None:
        self.endpoints = endpoints
        self._tls = None
        if endpoints.tls is not None:
            self._tls = self._tls_dialler(endpoints)

    @property
    def secure(self) -> bool:
        return self._tls is not None

    @staticmethod
    def _tls_dialler(endpoints: Endpoints):
        from paxos_agents.runtime.identity import CertificateProblem, Identity, check_files, \
            client_context
        from paxos_agents.runtime.tlsnet import Resolver, TlsDialler, read_address

        tls = endpoints.tls
        assert tls is not None
        cert, key, ca = (tls.certs / "client" / "client.crt", tls.certs / "client" / "client.key",
                         tls.certs / "ca.crt")
        try:
            check_files(cert, key, ca, Identity(endpoints.cluster_id, "client", "client"), time.time())
        except (CertificateProblem, ValueError) as e:
            raise PaxosctlError(str(e)) from None
        run_dir = str(endpoints.run_dir)

        def where(name: str) -> str:
            """The manifest's place for `name` (a template places names `scale`
            added since), else the address the agent published on this host."""
            placed = tls.address(name)
            return placed if placed is not None else read_address(run_dir, name, {})

        resolver = Resolver(where)
        return TlsDialler(client_context(cert, key, ca), endpoints.cluster_id, resolver,
                          tls.user_timeout_ms)

    def pending(self) -> bool:
        """An agent's host name is being looked up: not every dial has failed yet."""
        return self._tls is not None and self._tls.resolver.pending()

    def dial(self, name: str, *, lookup_now: bool) -> Connection | None:
        """A connection to agent `name`, under way; None when it cannot be
        had now (refused, not listening, or its address still looked up)."""
        if self._tls is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                sock.connect(self.endpoints.socket(name))
            except OSError:
                sock.close()
                return None
            return Connection(sock)
        try:
            resolved = self._tls.resolver.resolve(name) if lookup_now else None
            return self._tls.dial(name, MAX_LINK_BYTES, frames.MAX_FRAME_BYTES, resolved=resolved)
        except OSError:
            return None
