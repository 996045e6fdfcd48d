"""A pod is dialled at its DNS name (`C-acceptor-0-0.C.N.svc.cluster.local`)
while its certificate, from `paxosctl certs init`, names `acceptor-0`: the
agents check the peer's spiffe:// URI (identity.peer_identity), not the
dialled name, so the handshake and the identity check pass. Real TLS over
a real socket with the files `certs init` writes."""

from __future__ import annotations

import socket
import ssl
import threading

import pytest

from clusters import PAXOSCTL, manifest_text
import subprocess

from paxos_agents.runtime.identity import CertificateProblem, Identity, client_context, peer_identity, \
    server_context
from paxosctl.manifest import load_manifest
from paxosctl.render import names


def _certs(folder):
    (folder / "cluster.toml").write_text(manifest_text("roles", "demo", state_dir="st",
                                                       transport={"kind": "tls"}))
    done = subprocess.run([PAXOSCTL, "certs", "init", "-f", "cluster.toml"], cwd=folder,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done
    return load_manifest(folder / "cluster.toml")


def _handshake(certs, dialled: str, client: ssl.SSLContext) -> ssl.SSLSocket:
    server = server_context(certs / "agent" / "acceptor-0.crt", certs / "agent" / "acceptor-0.key",
                            certs / "ca.crt")
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[BaseException | None] = []

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
            accepted.append(None)
        except (OSError, ssl.SSLError) as e:
            accepted.append(e)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    raw = socket.create_connection(listener.getsockname(), timeout=10)
    try:
        return client.wrap_socket(raw, server_hostname=dialled)
    finally:
        listener.close()


def test_an_agent_dialled_at_its_pod_dns_name_is_accepted_by_its_identity(tmp_short):
    manifest = _certs(tmp_short)
    certs = tmp_short / "certs"
    dialled = names.pod_dns("demo", "acceptor-0", "paxos", "cluster.local")
    client = client_context(certs / "agent" / "proposer-0.crt", certs / "agent" / "proposer-0.key",
                            certs / "ca.crt")
    with _handshake(certs, dialled, client) as tls:
        found = peer_identity(tls, expect=Identity(manifest.cluster_id, "agent", "acceptor-0"))
        assert found.name == "acceptor-0"
        # The other end is acceptor-0, and no one else passes for it.
        with pytest.raises(CertificateProblem, match="expected spiffe://.*/agent/acceptor-1"):
            peer_identity(tls, expect=Identity(manifest.cluster_id, "agent", "acceptor-1"))
        tls.sendall(b"x")


def test_a_host_name_check_would_refuse_it(tmp_short):
    """The control: the certificate does not name the pod's DNS name, so the
    test above passes only because names are checked by URI."""
    _certs(tmp_short)
    certs = tmp_short / "certs"
    client = client_context(certs / "agent" / "proposer-0.crt", certs / "agent" / "proposer-0.key",
                            certs / "ca.crt")
    client.check_hostname = True
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        _handshake(certs, names.pod_dns("demo", "acceptor-0", "paxos", "cluster.local"), client)
