"""Certificates and real TLS 1.3 handshakes for the certs tests.

`Pki(folder, cluster_id)` makes a CA with the library functions that
`paxosctl certs` uses and writes leaves as it does (keys 0600); `handshake`
runs one mutual-TLS handshake over a real TCP socket on 127.0.0.1 between
this thread and a server thread, and returns what each side saw.
"""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from paxos_agents.runtime.identity import Identity, client_context, peer_identity, server_context
from paxosctl.certs import write_atomic
from paxosctl.issuing import issue_leaf, make_ca

NOW = datetime.now(timezone.utc)


@dataclass(frozen=True)
class Files:
    cert: Path
    key: Path
    ca: Path

    def server(self) -> ssl.SSLContext:
        return server_context(self.cert, self.key, self.ca)

    def client(self) -> ssl.SSLContext:
        return client_context(self.cert, self.key, self.ca)


class Pki:
    """A cluster CA in `folder`, and leaves issued by it."""

    def __init__(self, folder: Path, cluster_id: str) -> None:
        self.folder = folder
        self.cluster_id = cluster_id
        folder.mkdir(parents=True, exist_ok=True)
        self.ca_pem = make_ca(cluster_id, now=NOW)
        self.ca = folder / "ca.crt"
        self.ca.write_bytes(self.ca_pem[0])

    def leaf(self, kind: str, name: str, *, cluster_id: str | None = None, days: int = 365,
             not_before: datetime | None = None, now: datetime = NOW) -> Files:
        identity = Identity(cluster_id or self.cluster_id, kind, name)
        cert_pem, key_pem = issue_leaf(*self.ca_pem, identity, now=now, days=days, not_before=not_before)
        stem = f"{identity.cluster_id}-{kind}-{name}-{len(list(self.folder.iterdir()))}"
        cert, key = self.folder / f"{stem}.crt", self.folder / f"{stem}.key"
        write_atomic(key, key_pem, 0o600)
        write_atomic(cert, cert_pem, 0o644)
        return Files(cert, key, self.ca)

    def with_uris(self, *uris: str) -> Files:
        """A leaf signed by the CA whose URI SANs are `uris` (none, several,
        foreign): what `certs issue` never makes, built by hand."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        ca_cert = x509.load_pem_x509_certificate(self.ca_pem[0])
        ca_key = serialization.load_pem_private_key(self.ca_pem[1], password=None)
        key = ec.generate_private_key(ec.SECP256R1())
        names = [x509.UniformResourceIdentifier(u) for u in uris] + [x509.DNSName("localhost")]
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "by-hand")]))
                .issuer_name(ca_cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(NOW - timedelta(minutes=5)).not_valid_after(NOW + timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(names), critical=False)
                .sign(ca_key, hashes.SHA256()))
        stem = f"by-hand-{len(list(self.folder.iterdir()))}"
        files = Files(self.folder / f"{stem}.crt", self.folder / f"{stem}.key", self.ca)
        write_atomic(files.key, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()), 0o600)
        write_atomic(files.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return files

    def expired(self, kind: str, name: str) -> Files:
        """Valid for one day, ten days ago."""
        return self.leaf(kind, name, days=1, now=NOW - timedelta(days=10),
                         not_before=NOW - timedelta(days=10))

    def not_yet_valid(self, kind: str, name: str) -> Files:
        """Valid from tomorrow."""
        return self.leaf(kind, name, not_before=NOW + timedelta(days=1))


@dataclass
class Side:
    """What one end of a handshake saw: the peer's identity, or the error."""

    identity: Identity | None = None
    error: BaseException | None = None


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, *, timeout: float = 10,
              server_checks: dict[str, Any] | None = None,
              client_checks: dict[str, Any] | None = None) -> tuple[Side, Side]:
    """One mutual TLS handshake over TCP on 127.0.0.1.

    Each side reads the other's identity with `peer_identity(**checks)`.
    The server then writes one byte: in TLS 1.3 the client's handshake
    ends before the server has verified the client's certificate, so a
    refusal reaches the client only as an alert on its first read.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(timeout)
    port = listener.getsockname()[1]
    server_side, client_side = Side(), Side()

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            conn.settimeout(timeout)
            with server.wrap_socket(conn, server_side=True) as tls:
                server_side.identity = peer_identity(tls, **(server_checks or {}))
                tls.sendall(b"k")
        except BaseException as exc:  # what the server saw is the result
            server_side.error = exc

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
            with client.wrap_socket(raw) as tls:
                client_side.identity = peer_identity(tls, **(client_checks or {}))
                if tls.recv(1) != b"k":
                    raise ConnectionError("the server closed without its byte")
    except BaseException as exc:
        client_side.error = exc
    thread.join(timeout)
    listener.close()
    assert not thread.is_alive(), "the server thread did not finish"
    return server_side, client_side
