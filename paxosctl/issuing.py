"""Building certificates, bytes in and bytes out: the cluster CA and its
leaves, as `paxosctl certs` writes them (paxosctl.certs holds the files).

Everything is ECDSA P-256 signed with SHA-256. The CA may sign leaves only
(path length 0) and carries its trust domain, `spiffe://<cluster-id>`, as
its URI SAN; a leaf carries its identity (paxos_agents.runtime.identity)
as its one spiffe URI SAN, plus DNS/IP SANs, and serves both ends of a
link (server and client auth). `cryptography` is imported inside each
function: importing this module loads nothing heavy.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta
from typing import Any, Sequence

from paxos_agents.runtime.identity import Identity

CA_DAYS = 3650
LEAF_DAYS = 365


def _new_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    pem: bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
    return pem


def _cert_pem(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    pem: bytes = cert.public_bytes(serialization.Encoding.PEM)
    return pem


def make_ca(cluster_id: str, *, now: datetime, days: int = CA_DAYS) -> tuple[bytes, bytes]:
    """(certificate, key) PEM of a new cluster CA: self-signed, ECDSA P-256,
    may sign leaves only (path length 0), its URI SAN `spiffe://<cluster_id>`
    (the trust domain) so that `issue` can tell a CA of another cluster."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "paxosctl"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"paxosctl cluster CA {cluster_id}")])
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))  # clocks a little behind ours
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"spiffe://{cluster_id}")]), critical=False)
            .sign(key, hashes.SHA256()))
    return _cert_pem(cert), _key_pem(key)


def default_sans(identity: Identity) -> list[str]:
    """The DNS/IP SANs every leaf gets besides its URI: an agent's name,
    `localhost` and 127.0.0.1 (the one-machine cluster)."""
    return ([identity.name] if identity.kind == "agent" else []) + ["localhost", "127.0.0.1"]


def issue_leaf(ca_cert_pem: bytes, ca_key_pem: bytes, identity: Identity, *, now: datetime,
               days: int = LEAF_DAYS, not_before: datetime | None = None,
               extra_sans: Sequence[str] = ()) -> tuple[bytes, bytes]:
    """(certificate, key) PEM of a new leaf for `identity`, signed by the CA.

    Valid from `not_before` (default: 5 minutes before `now`) for `days`
    days from `now`. SANs: the identity's URI, then `default_sans` and
    `extra_sans` (IP addresses as IP SANs, anything else as DNS names).
    Usable for both ends of a link (server and client auth).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    key = _new_key()
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.uri)]
    for san in dict.fromkeys([*default_sans(identity), *extra_sans]):  # in order, once each
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            names.append(x509.DNSName(san))
    start = not_before if not_before is not None else now - timedelta(minutes=5)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "paxosctl"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, identity.name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),  # type: ignore[arg-type]
                           critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    return _cert_pem(cert), _key_pem(key)


def other_sans(cert_pem: bytes, identity: Identity) -> list[str]:
    """The DNS/IP SANs of an existing leaf beyond `default_sans`: what a
    caller added, which `rotate` keeps."""
    from cryptography import x509

    san = x509.load_pem_x509_certificate(cert_pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    found = [*san.get_values_for_type(x509.DNSName),
             *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))]
    return [s for s in found if s not in default_sans(identity)]
