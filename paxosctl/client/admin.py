"""Admin frames to one agent: `send_admin(target, frame)`.

An admin frame steers an agent itself, as the supervisor's pipe does
(paxos_agents.runtime.clients): `{"op": "members", "version": n,
"proposers": [...], "acceptors": [...], "learners": [...]}` (the
membership as a versioned record: refused unless n is newer than the
agent's), `{"op": "reconfig", "acceptors": [...]}` and `{"op": "chaos",
"settings": {...}}`. Agents run by `paxosctl agent` have no supervisor,
so this is how they are changed.

Who may send one: over TLS, only a connection presenting the operator
certificate (`certs/operator/operator.crt`, which `paxosctl certs init`
makes); over Unix sockets, whoever can open the agent's socket (its folder
is 0700: the cluster's owner). The agent is required to be the one named
(its certificate is checked, as `DataClient` checks it), so an impostor
cannot take the frame.

One blocking connection per call: admin frames are rare, and an operator's
tool wants a plain answer, not a pipeline.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paxos_agents.runtime import clientwire as wire
from paxos_agents.runtime import frames
from paxos_agents.runtime.handshake import CLIENT, hello

from ..endpoints import Endpoints
from ..errors import PaxosctlError


class AdminRefused(PaxosctlError):
    """The agent refused the admin frame; `code` is "forbidden" (not the
    operator), "refused" (e.g. an old membership version) or "bad_request"."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class AdminTarget:
    """How to reach agent `agent`: its Unix socket, or its TCP address with
    the certificate (`cert`, `key`) to present and the cluster CA."""

    agent: str
    cluster_id: str = ""
    socket_path: str | None = None
    address: str | None = None
    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None

    @classmethod
    def of(cls, endpoints: Endpoints, agent: str, kind: str = "operator") -> "AdminTarget":
        """Agent `agent` of the cluster `endpoints` describes (endpoints.json),
        with the operator's certificate over TLS (`kind` "client" shows what a
        client certificate gets: a refusal)."""
        if endpoints.tls is None:
            return cls(agent, endpoints.cluster_id, socket_path=endpoints.socket(agent))
        from paxos_agents.runtime.tlsnet import read_address

        try:
            address = read_address(str(endpoints.run_dir), agent, dict(endpoints.tls.addresses))
        except OSError as e:
            raise PaxosctlError(f"{agent}: no address placed or published ({e})") from None
        certs = endpoints.tls.certs
        return cls(agent, endpoints.cluster_id, address=address,
                   cert=certs / kind / f"{kind}.crt", key=certs / kind / f"{kind}.key",
                   ca=certs / "ca.crt")

    @property
    def where(self) -> str:
        return self.socket_path or self.address or "?"


def send_admin(target: AdminTarget, frame: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """Send one admin `frame` to `target`'s agent and return its answer
    ({"ok": true, "op": ...}). Raises `AdminRefused` with the agent's one
    line when it refuses, `PaxosctlError` when it cannot be reached or is
    not the agent named."""
    deadline = time.monotonic() + timeout
    sock = _connect(target, timeout)
    try:
        reader = frames.FrameReader()
        sock.sendall(frames.pack([hello(target.cluster_id, CLIENT, 0, target.agent)]))
        first = _next_frame(sock, reader, deadline, target)
        if first[:1] == frames.REFUSE:
            raise AdminRefused(f"{target.agent} refused the connection: "
                               f"{first[1:].decode(errors='replace')}", "forbidden")
        if first[:1] != frames.WELCOME:
            raise PaxosctlError(f"{target.agent} at {target.where} did not answer the handshake")
        sock.sendall(frames.pack([wire.ADMIN + json.dumps(frame).encode()]))
        while True:
            answer = _next_frame(sock, reader, deadline, target)
            if answer[:1] == wire.REPLY:
                break  # anything else (a proposer's LEADER hint) is not the answer
    finally:
        sock.close()
    body = json.loads(answer[1:])
    if "error" in body:
        raise AdminRefused(f"{target.agent}: {body['error']}", str(body.get("code", "")))
    return body


def _connect(target: AdminTarget, timeout: float) -> socket.socket:
    try:
        if target.socket_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(target.socket_path)
            except OSError:
                sock.close()
                raise
            return sock
        return _connect_tls(target, timeout)
    except OSError as e:
        raise PaxosctlError(f"cannot reach {target.agent} at {target.where}: "
                            f"{e.strerror or e}") from None


def _connect_tls(target: AdminTarget, timeout: float) -> socket.socket:
    from paxos_agents.runtime.identity import CertificateProblem, Identity, check_files, \
        client_context, peer_identity
    from paxos_agents.runtime.tlsnet import split_address

    assert target.address is not None and target.cert and target.key and target.ca
    try:
        check_files(target.cert, target.key, target.ca, None, time.time())  # whoever it names
        host, port = split_address(target.address)
    except (CertificateProblem, ValueError) as e:
        raise PaxosctlError(str(e)) from None
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        sock = client_context(target.cert, target.key, target.ca).wrap_socket(raw)
    except OSError:
        raw.close()
        raise
    try:
        peer_identity(sock, expect=Identity(target.cluster_id, "agent", target.agent))
    except CertificateProblem as e:
        sock.close()
        raise PaxosctlError(f"{target.where}: {e}") from None
    return sock


def _next_frame(sock: socket.socket, reader: frames.FrameReader, deadline: float,
                target: AdminTarget) -> bytes:
    """The next frame from the agent, read until `deadline`."""
    pending = reader.feed(b"", 1)
    while not pending:
        left = deadline - time.monotonic()
        if left <= 0:
            raise PaxosctlError(f"{target.agent} at {target.where} did not answer in time")
        sock.settimeout(left)
        try:
            data = sock.recv(1 << 16)
        except socket.timeout:
            continue
        except OSError as e:
            raise PaxosctlError(f"lost the connection to {target.agent}: {e.strerror or e}") from None
        if not data:
            raise PaxosctlError(f"{target.agent} closed the connection")
        pending = reader.feed(data, 1)
    return pending[0]
