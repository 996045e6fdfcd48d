"""Who is at the other end of a TLS link: SPIFFE-style identities, mutual TLS 1.3
contexts, and the up-front check of an agent's certificate files.

An identity is a URI, `spiffe://<cluster-id>/<kind>/<name>`, carried as the
one URI subject-alternative name of a certificate (as SPIFFE X.509-SVIDs and
etcd's peer certificates carry theirs). The cluster id is part of it, so a
CA shared by two clusters cannot let one cluster's agent join the other:
the CA says "this key is someone", the URI says who and in which cluster.

- `Identity` parses and renders the URI, strictly (one-line errors).
- `server_context` / `client_context` build `ssl.SSLContext`s for mutual
  TLS 1.3 only: both sides present a certificate, both verify it against
  the cluster CA. Host names are not checked by the library: the caller
  checks the peer's URI with `peer_identity` instead (an agent dialled by
  name must present that agent's identity, whatever its DNS names).
- `check_files` loads and checks the files before an agent or client
  starts, so a bad certificate is one line naming the file and the fix,
  not a handshake failure on the first connection.
- `describe_tls_error` turns a failed handshake into the same reasons
  (`REASONS`) and their counter names, for the listener's log and metrics.

Every refusal is a `CertificateProblem`: a `reason` (a key of `REASONS`)
and a one-line message. The standard `ssl` module cannot read a
certificate file's fields without a connection, so `check_files` uses the
`cryptography` library; it and `ssl` are imported inside the functions
that need them: importing this module costs ~1 ms, and commands that never
touch TLS (`paxosctl status`) never load either.

Runtime side: imported by agents and clients; it must not import paxosctl.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    import ssl

SCHEME = "spiffe://"
#: What an identity may be: an agent of the cluster, an operator (may send
#: admin frames: membership, chaos, reconfiguration), a client (may propose
#: and read).
KINDS = ("agent", "operator", "client")
#: A cluster id is one DNS label (SPIFFE trust domains are lowercase):
#: `certs init` makes 16 hex characters.
CLUSTER_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
CLUSTER_ID_ALLOWED = 'lowercase letters, digits and "-", 1 to 63 characters, not starting with "-"'
#: Names are at least as strict as the manifest's agent names ("acceptor-2").
NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")
NAME_ALLOWED = 'a lowercase letter, then up to 62 lowercase letters, digits or "-"'

#: Why a certificate (ours or a peer's) is refused: reason -> (counter, fix).
#: The counter is what a listener increments for a handshake refused for
#: that reason; the fix ends the one-line message.
REASONS: Mapping[str, tuple[str, str]] = {
    "unreadable": ("tls_unreadable", "make it readable by this user (`paxosctl certs init` writes it)"),
    "key_permissions": ("tls_key_permissions", "chmod 600 it: a key readable by others is refused"),
    "not_pem": ("tls_bad_certificate", "point to the PEM file `paxosctl certs init` or `certs issue` wrote"),
    "unknown_ca": ("tls_unknown_ca", "use a certificate issued by this cluster's CA (`paxosctl certs issue NAME`) "
                                     "or the CA file of the cluster it belongs to"),
    "no_identity": ("tls_no_identity", "issue it with `paxosctl certs issue NAME` (one spiffe:// URI SAN)"),
    "wrong_cluster": ("tls_wrong_cluster", "use a certificate issued for this cluster (`paxosctl certs issue NAME` "
                                           "with this cluster's manifest)"),
    "wrong_identity": ("tls_wrong_identity", "use the certificate issued for this name and kind "
                                             "(`paxosctl certs issue NAME --kind KIND`)"),
    "expired": ("tls_expired", "issue a new one: `paxosctl certs rotate` (or `certs issue NAME`)"),
    "not_yet_valid": ("tls_not_yet_valid", "check this machine's clock, or wait until the certificate's start"),
    "key_mismatch": ("tls_key_mismatch", "use the key written beside this certificate (same name, .key)"),
    "bad_certificate": ("tls_bad_certificate", "check the peer's certificate files (`paxosctl certs issue NAME`)"),
    "protocol": ("tls_protocol", "the peer must speak TLS 1.3 with a client certificate (paxosctl 0.3 or newer)"),
}


class CertificateProblem(Exception):
    """A certificate refused, ours or a peer's: `reason` (a key of `REASONS`),
    `message` one line naming what is wrong and the fix, `counter` the
    name a listener counts it under."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    @property
    def counter(self) -> str:
        return REASONS[self.reason][0]

    def __str__(self) -> str:
        return self.message


def _problem(reason: str, what: str) -> CertificateProblem:
    return CertificateProblem(reason, f"{what}; fix: {REASONS[reason][1]}")


@dataclass(frozen=True, slots=True)
class Identity:
    """`spiffe://<cluster_id>/<kind>/<name>`: who holds a certificate, in which cluster.

    Built only valid: a bad field raises ValueError with one line naming
    the field and what is allowed.
    """

    cluster_id: str
    kind: str
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.cluster_id, str) or not CLUSTER_ID.fullmatch(self.cluster_id):
            raise ValueError(f"invalid cluster id {self.cluster_id!r}; allowed: {CLUSTER_ID_ALLOWED}")
        if self.kind not in KINDS:
            raise ValueError(f"invalid kind {self.kind!r}; allowed: {', '.join(KINDS)}")
        if not isinstance(self.name, str) or not NAME.fullmatch(self.name):
            raise ValueError(f"invalid {self.kind} name {self.name!r}; allowed: {NAME_ALLOWED}")

    @classmethod
    def parse(cls, uri: str) -> Identity:
        """The identity `uri` names; ValueError (one line) if it is not exactly
        `spiffe://<cluster-id>/<kind>/<name>` (no port, query, fragment,
        user, trailing slash or upper case: a URI compared as text must
        have one spelling)."""
        if not isinstance(uri, str) or not uri.startswith(SCHEME):
            raise ValueError(f"not a spiffe URI: {uri!r}; allowed: spiffe://<cluster-id>/<kind>/<name>")
        parts = uri[len(SCHEME):].split("/")
        if len(parts) != 3:
            raise ValueError(f"expected spiffe://<cluster-id>/<kind>/<name>, got {uri!r} "
                             f"({len(parts) - 1} path segments, allowed: 2)")
        return cls(*parts)

    @property
    def uri(self) -> str:
        return f"{SCHEME}{self.cluster_id}/{self.kind}/{self.name}"

    def __str__(self) -> str:
        return self.uri


# -- TLS contexts -------------------------------------------------------------


def _context(purpose: Any, cert: str | os.PathLike[str], key: str | os.PathLike[str],
             ca: str | os.PathLike[str]) -> ssl.SSLContext:
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if purpose is ssl.Purpose.CLIENT_AUTH
                         else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    # Names are checked by `peer_identity` (the URI SAN), not by host name:
    # agents are dialled by address, and an address proves nothing.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(os.fspath(cert), os.fspath(key))
    ctx.load_verify_locations(cafile=os.fspath(ca))
    return ctx


def server_context(cert: str | os.PathLike[str], key: str | os.PathLike[str],
                   ca: str | os.PathLike[str]) -> ssl.SSLContext:
    """A listener's context: TLS 1.3 only, a client certificate required and
    verified against `ca`. Check the files first with `check_files`: this
    raises `ssl.SSLError`/`OSError`, whose messages name no file."""
    import ssl

    return _context(ssl.Purpose.CLIENT_AUTH, cert, key, ca)


def client_context(cert: str | os.PathLike[str], key: str | os.PathLike[str],
                   ca: str | os.PathLike[str]) -> ssl.SSLContext:
    """A dialler's context: TLS 1.3 only, presents `cert`, verifies the
    server's against `ca`; no host name check (call `peer_identity`)."""
    import ssl

    return _context(ssl.Purpose.SERVER_AUTH, cert, key, ca)


def peer_identity(ssl_object: Any, *, cluster_id: str | None = None,
                  expect: Identity | None = None) -> Identity:
    """The identity in the peer certificate of a completed handshake
    (`ssl.SSLSocket` or `ssl.SSLObject`).

    Refused (`CertificateProblem`) if the certificate carries no spiffe URI
    SAN or several, if it names another cluster than `cluster_id`, or
    another identity than `expect` (whose cluster is checked too).
    """
    peer = ssl_object.getpeercert()
    if not peer:
        raise _problem("no_identity", "the peer presented no certificate")
    uris = [value for kind, value in peer.get("subjectAltName", ()) if kind == "URI"]
    spiffe = [u for u in uris if u.startswith(SCHEME)]
    if len(spiffe) != 1:
        raise _problem("no_identity", f"the peer's certificate has {len(spiffe)} spiffe:// URI SANs "
                                      f"(allowed: exactly 1)")
    try:
        found = Identity.parse(spiffe[0])
    except ValueError as exc:
        raise _problem("no_identity", f"the peer's certificate: {exc}") from None
    _compare(found, cluster_id if expect is None else expect.cluster_id, expect, "the peer")
    return found


def _compare(found: Identity, cluster_id: str | None, expect: Identity | None, who: str) -> None:
    if cluster_id is not None and found.cluster_id != cluster_id:
        wanted = f"expected {expect.uri}" if expect is not None else f"expected cluster {cluster_id}"
        raise _problem("wrong_cluster", f"{who} is {found.uri}, of another cluster ({wanted})")
    if expect is not None and found != expect:
        raise _problem("wrong_identity", f"{who} is {found.uri}, expected {expect.uri}")


# -- checking files before starting -------------------------------------------


def _read(path: str | os.PathLike[str], what: str, *, secret: bool = False) -> bytes:
    """The bytes of `path`; a key (`secret`) must be a regular file that only
    its owner can read or write (0600 or stricter), as ssh refuses one."""
    shown = os.fspath(path)
    try:
        if secret:
            mode = os.stat(path).st_mode
            if stat.S_IMODE(mode) & 0o077:
                raise _problem("key_permissions", f"{shown}: {what} has mode {stat.S_IMODE(mode):04o}, "
                                                  f"readable or writable by others (allowed: 0600 or stricter)")
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise _problem("unreadable", f"{shown}: cannot read the {what}: {reason}") from None


def _utc(moment: float | datetime) -> datetime:
    if isinstance(moment, datetime):
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(moment, timezone.utc)


def spiffe_uris(cert: Any) -> list[str]:
    """The spiffe:// URI SANs of a `cryptography` certificate."""
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [u for u in san.get_values_for_type(x509.UniformResourceIdentifier) if u.startswith(SCHEME)]


def check_files(cert: str | os.PathLike[str], key: str | os.PathLike[str], ca: str | os.PathLike[str],
                expect: Identity | None, now: float | datetime) -> Identity:
    """Check an agent's (or client's) TLS files before it starts; the identity
    its certificate carries.

    Refuses (`CertificateProblem`, one line naming the file and the fix): a
    file that cannot be read, a key readable by others, a file that is not
    PEM, a certificate not signed by `ca` (or a CA not valid at `now`), a
    certificate without exactly one spiffe URI SAN, another identity or
    cluster than `expect`, a certificate expired or not yet valid at `now`
    (seconds since the epoch, or an aware datetime), a key that is not the
    certificate's.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert_s, key_s, ca_s = os.fspath(cert), os.fspath(key), os.fspath(ca)
    ca_pem = _read(ca, "CA certificate")
    cert_pem = _read(cert, "certificate")
    key_pem = _read(key, "private key", secret=True)
    try:
        ca_cert = x509.load_pem_x509_certificate(ca_pem)
    except ValueError:
        raise _problem("not_pem", f"{ca_s}: not a PEM certificate") from None
    try:
        leaf = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise _problem("not_pem", f"{cert_s}: not a PEM certificate") from None
    try:
        private = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise _problem("not_pem", f"{key_s}: not an unencrypted PEM private key") from None

    at = _utc(now)
    _check_validity(ca_cert, ca_s, "CA certificate", at)
    try:
        leaf.verify_directly_issued_by(ca_cert)
    except Exception:  # ValueError (issuer name), InvalidSignature, TypeError (key type)
        raise _problem("unknown_ca", f"{cert_s}: not signed by the CA in {ca_s}") from None
    uris = spiffe_uris(leaf)
    if len(uris) != 1:
        raise _problem("no_identity", f"{cert_s}: {len(uris)} spiffe:// URI SANs (allowed: exactly 1)")
    try:
        found = Identity.parse(uris[0])
    except ValueError as exc:
        raise _problem("no_identity", f"{cert_s}: {exc}") from None
    if expect is not None:
        _compare(found, expect.cluster_id, expect, f"{cert_s}")
    _check_validity(leaf, cert_s, "certificate", at)
    if private.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo) != \
            leaf.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo):
        raise _problem("key_mismatch", f"{key_s}: not the key of the certificate {cert_s}")
    return found


def _check_validity(cert: Any, shown: str, what: str, at: datetime) -> None:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if at > end:
        raise _problem("expired", f"{shown}: the {what} expired at {end:%Y-%m-%d %H:%M:%S}Z")
    if at < start:
        raise _problem("not_yet_valid", f"{shown}: the {what} is not valid before {start:%Y-%m-%d %H:%M:%S}Z")


# -- handshake failures --------------------------------------------------------

#: OpenSSL's verify codes (X509_V_ERR_*) -> reason, for the side that verified.
_VERIFY_CODES: Mapping[int, str] = {
    2: "unknown_ca",    # unable to get issuer certificate
    7: "unknown_ca",    # certificate signature failure
    9: "not_yet_valid",
    10: "expired",
    18: "unknown_ca",   # self-signed certificate
    19: "unknown_ca",   # self-signed certificate in the chain
    20: "unknown_ca",   # unable to get local issuer certificate
    21: "unknown_ca",   # unable to verify the first certificate
}
#: OpenSSL reason strings (ssl.SSLError.reason) -> reason: the alerts a peer
#: sends when it refused our certificate, and what a listener sees when a
#: dialler offers no certificate or no TLS 1.3.
_ALERTS: Mapping[str, str] = {
    "TLSV1_ALERT_UNKNOWN_CA": "unknown_ca",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "expired",
    "SSLV3_ALERT_BAD_CERTIFICATE": "bad_certificate",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "bad_certificate",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "bad_certificate",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "bad_certificate",
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "bad_certificate",
    "TLSV1_ALERT_PROTOCOL_VERSION": "protocol",
    "UNSUPPORTED_PROTOCOL": "protocol",
    "WRONG_VERSION_NUMBER": "protocol",
    "NO_SHARED_CIPHER": "protocol",
    "HTTP_REQUEST": "protocol",
}


def describe_tls_error(exc: BaseException) -> tuple[str, str]:
    """(reason, one line) for a failed handshake: `reason` is a key of
    `REASONS` (its counter is `REASONS[reason][0]`), the line says what the
    peer's certificate lacked and the fix. A listener prefixes the peer's
    address; an error it does not know is ("protocol", its text)."""
    if isinstance(exc, CertificateProblem):
        return exc.reason, exc.message
    code = getattr(exc, "verify_code", None)
    if isinstance(code, int) and code in _VERIFY_CODES:
        reason = _VERIFY_CODES[code]
        detail = getattr(exc, "verify_message", "") or reason
        return reason, f"the peer's certificate was refused: {detail}; fix: {REASONS[reason][1]}"
    alert = getattr(exc, "reason", None)
    if isinstance(alert, str) and alert in _ALERTS:
        reason = _ALERTS[alert]
        # An alert is the peer's verdict on what we sent: our certificate,
        # unless the peer refused the protocol itself.
        what = "the handshake" if reason == "protocol" else "our certificate"
        return reason, f"the peer refused {what} ({alert.lower()}); fix: {REASONS[reason][1]}"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return "protocol", f"TLS handshake failed: {text}; fix: {REASONS['protocol'][1]}"
