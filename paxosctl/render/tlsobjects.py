"""The certificates a pod mounts: Secret `C-ca` (key `ca.crt`, the cluster
CA) and, per agent, Secret `C-agent-<agent>` (type kubernetes.io/tls).

By default they are referenced, not rendered: the operator creates them
from what `paxosctl certs init` wrote. `secrets_from` renders them from
that folder (checked first as the agent will check them), `cert_manager`
renders a cert-manager `Certificate` per agent instead, with the SANs
`paxosctl certs issue` gives (paxosctl.issuing.default_sans) plus the
pod's DNS name, and leaves `C-ca` to the operator: it must hold the CA of
the issuer (paxos_agents.runtime.identity checks the leaf against it).

A peer is checked by the one spiffe:// URI its certificate carries, never
by the name it was dialled at (identity.py: `check_hostname` is off and
`peer_identity` compares the URI), so a certificate naming `acceptor-0`
is accepted at `C-acceptor-0-0.C.N.svc.cluster.local`; the DNS SANs are
for other tools that check names.
"""

from __future__ import annotations

import base64
import ipaddress
import time
from pathlib import Path
from typing import Any

from paxos_agents.runtime.identity import CertificateProblem, Identity, check_files

from ..errors import UsageError
from ..issuing import LEAF_DAYS, default_sans
from ..manifest import Manifest, display_path
from ..manifest.addresses import is_dns_name
from . import names


def ca_secret_name(cluster: str) -> str:
    return f"{cluster}-ca"


def agent_secret_name(cluster: str, agent: str) -> str:
    return f"{cluster}-agent-{agent}"


def needs_id(manifest: Manifest, option: str) -> str:
    """The cluster id certificates carry; UsageError if the manifest has none yet."""
    if manifest.cluster_id is None:
        raise UsageError(f"{option}: {display_path(manifest.path)} has no [cluster] id, which the "
                         f"certificates carry; allowed: run `paxosctl certs init -f "
                         f"{display_path(manifest.path)}` first (it adds one)")
    return manifest.cluster_id


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _read(path: Path, fix: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise UsageError(f"--secrets: {path}: cannot read it ({e.strerror or e}); allowed: {fix}") from None


def ca_secret(manifest: Manifest, certs: Path, meta: dict[str, Any]) -> dict[str, Any]:
    ca = _read(certs / "ca.crt", f"run `paxosctl certs init -f {display_path(manifest.path)}`")
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": ca_secret_name(manifest.name), **meta},
            "type": "Opaque", "data": {"ca.crt": _b64(ca)}}


def agent_secret(manifest: Manifest, agent: str, certs: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Agent's Secret from `certs`, refused (one line naming the file and
    the fix) if the agent would refuse those files when it starts."""
    cluster_id = needs_id(manifest, "--secrets")
    cert, key, ca = certs / "agent" / f"{agent}.crt", certs / "agent" / f"{agent}.key", certs / "ca.crt"
    try:
        check_files(cert, key, ca, expect=Identity(cluster_id, "agent", agent), now=time.time())
    except CertificateProblem as e:
        raise UsageError(f"--secrets: {e}") from None
    fix = f"`paxosctl certs issue {agent} -f {display_path(manifest.path)}`"
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": agent_secret_name(manifest.name, agent), **meta},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": _b64(_read(cert, fix)), "tls.key": _b64(_read(key, fix))}}


def issuer_ref(issuer: str) -> dict[str, str]:
    """`NAME` (an Issuer of the namespace) or `ClusterIssuer/NAME`."""
    kind, _, name = issuer.rpartition("/")
    kind = kind or "Issuer"
    if kind not in ("Issuer", "ClusterIssuer") or not is_dns_name(name) or name != name.lower():
        raise UsageError(f"--cert-manager: {issuer!r:.80} is not an issuer; allowed: NAME (an Issuer in the "
                         "namespace) or ClusterIssuer/NAME")
    return {"name": name, "kind": kind, "group": "cert-manager.io"}


def ca_note(manifest: Manifest, issuer: str) -> str:
    return (f"Secret {ca_secret_name(manifest.name)} (key ca.crt) must hold the CA certificate of "
            f"{issuer}: the agents check each other's certificates against it")


def certificate(manifest: Manifest, agent: str, issuer: str, namespace: str, domain: str,
                meta: dict[str, Any]) -> dict[str, Any]:
    """A cert-manager Certificate writing agent's Secret: its spiffe URI,
    the DNS and IP names `certs issue` gives, its pod's DNS name; ECDSA
    P-256 in PKCS#8, as `certs init` makes them."""
    identity = Identity(needs_id(manifest, "--cert-manager"), "agent", agent)
    sans = [*default_sans(identity), names.pod_dns(manifest.name, agent, namespace, domain)]
    ips = [s for s in sans if _is_ip(s)]
    secret = agent_secret_name(manifest.name, agent)
    return {
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": secret, **meta, "annotations": {"paxosctl.dev/note": ca_note(manifest, issuer)}},
        "spec": {
            "secretName": secret,
            "secretTemplate": {"labels": meta["labels"]},
            "issuerRef": issuer_ref(issuer),
            "commonName": agent,
            "uris": [identity.uri],
            "dnsNames": [s for s in sans if s not in ips],
            "ipAddresses": ips,
            "duration": f"{LEAF_DAYS * 24}h",
            "renewBefore": "720h",
            "privateKey": {"algorithm": "ECDSA", "size": 256, "encoding": "PKCS8", "rotationPolicy": "Always"},
            "usages": ["digital signature", "server auth", "client auth"],
        },
    }


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
