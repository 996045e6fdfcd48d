"""Where a running cluster's data path is: `state_dir/run/endpoints.json`.

The supervisor writes it (whole, then renamed into place) when it starts
the cluster, and so does each `paxosctl agent` started in the state dir
(the same body, from the same manifest: see `endpoints_body`); clients read it to reach the proposers and learners
directly, each at `run/<agent>.sock` (paxos_agents.runtime.transport), or,
when it has a "transport" of kind "tls", over TCP + mutual TLS at the
address the manifest places it at or that it published in
`run/<agent>.addr`, with the client certificate of the "certs" folder.
Reading it needs no supervisor: a stopped supervisor stops no client.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import NotRunning, PaxosctlError

if TYPE_CHECKING:
    from .manifest import Manifest

#: The format of endpoints.json; a client refuses one it does not know.
#: Version 2 is a cluster over TCP + TLS (the "transport" key): a client of
#: 0.2, which reads only version 1, then refuses it with its one line
#: instead of dialling Unix sockets that are not there. A Unix-socket
#: cluster still writes version 1, which every client reads.
ENDPOINTS_VERSION = 1
ENDPOINTS_TLS_VERSION = 2
_READS = (ENDPOINTS_VERSION, ENDPOINTS_TLS_VERSION)


@dataclass(frozen=True, slots=True)
class Endpoints:
    """A running cluster's data-path endpoints and the client-side settings."""

    run_dir: Path
    cluster: str
    cluster_id: str
    proposers: tuple[str, ...]
    learners: tuple[str, ...]
    #: A client resends a command it has no answer for this often.
    retry_seconds: float
    max_value_bytes: int
    retain_slots: int
    #: None: Unix sockets. Else TCP + mutual TLS: the certificates folder,
    #: the agents the manifest places, and TCP_USER_TIMEOUT.
    tls: "TlsEndpoints | None" = None

    def socket(self, agent: str) -> str:
        return str(self.run_dir / f"{agent}.sock")


@dataclass(frozen=True, slots=True)
class TlsEndpoints:
    """How a client reaches the agents over TLS (endpoints.json's "transport")."""

    certs: Path
    addresses: tuple[tuple[str, str], ...]
    user_timeout_ms: int
    #: The manifest's `name_template` (with its namespace and port): where an
    #: agent it does not list is, one that `scale` added since (None: none).
    name_template: str | None = None
    namespace: str = "default"
    port: int = 7100

    def address(self, name: str) -> str | None:
        """Where agent `name` listens, as the manifest places it (its address,
        host or template); None for a name it cannot place."""
        given = dict(self.addresses).get(name)
        if given is not None or self.name_template is None:
            return given
        from .manifest.addresses import join_address
        from .manifest.placement import render_template

        try:
            return join_address(render_template(self.name_template, name, self.namespace), self.port)
        except ValueError:
            return None


def from_manifest(manifest: "Manifest", cluster_file: str) -> Endpoints | None:
    """The data path of a cluster nobody supervises on this host: agents
    placed by the manifest over TLS (`paxosctl agent NAME` on their hosts).

    None when the manifest cannot say where they are: Unix sockets (a
    local cluster: its supervisor writes endpoints.json), no cluster id,
    or a proposer or learner the manifest does not place. The membership
    is the manifest's: a cluster `scale`d since is reached by the names
    its manifest still holds."""
    transport = manifest.transport
    if not transport.tls or not manifest.cluster_id:
        return None
    placed = dict(manifest.placed_addresses())
    if any(name not in placed for name in (*manifest.proposers, *manifest.learners)):
        return None
    body = endpoints_body(manifest, manifest.cluster_id, manifest.proposers, manifest.learners,
                          manifest.log.retain)
    return _parse(body, manifest.state_dir / "run", cluster_file)


def read_endpoints(run_dir: Path, cluster_file: str) -> Endpoints:
    """The endpoints of the cluster whose run folder is `run_dir`.

    Raises `NotRunning` if there is none (never started, or `down`),
    `PaxosctlError` if the file is of another version.
    """
    path = run_dir / "endpoints.json"
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        raise NotRunning(f"no cluster running for {cluster_file} "
                         f"(start it with: paxosctl up {cluster_file})") from None
    except (OSError, ValueError) as e:
        raise PaxosctlError(f"cannot read {path}: {e}") from None
    return _parse(body, run_dir, cluster_file)


def _parse(body: object, run_dir: Path, cluster_file: str) -> Endpoints:
    path = run_dir / "endpoints.json"
    if not isinstance(body, dict) or body.get("version") not in _READS:
        raise PaxosctlError(f"{path} is of another paxosctl version "
                            f"({body.get('version') if isinstance(body, dict) else '?'}; "
                            f"this one reads {' and '.join(map(str, _READS))})",
                            hint="use the paxosctl that runs the cluster")
    if (body.get("transport") is not None) != (body["version"] == ENDPOINTS_TLS_VERSION):
        raise PaxosctlError(f"{path} is malformed (version {body['version']} "
                            f"{'without' if body['version'] == ENDPOINTS_TLS_VERSION else 'with'} "
                            "a transport)")
    try:
        return Endpoints(run_dir=run_dir, cluster=str(body["cluster"]),
                         cluster_id=str(body["cluster_id"]),
                         proposers=tuple(body["proposers"]), learners=tuple(body["learners"]),
                         retry_seconds=float(body["retry_seconds"]),
                         max_value_bytes=int(body["max_value_bytes"]),
                         retain_slots=int(body.get("retain_slots", 0)),
                         tls=_tls(body.get("transport")))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise PaxosctlError(f"{path} is malformed ({e})") from None


def _tls(transport: object) -> TlsEndpoints | None:
    if transport is None:
        return None
    if not isinstance(transport, dict) or transport.get("kind") != "tls":
        raise ValueError(f"unknown transport {transport!r}")
    template = transport.get("name_template")
    return TlsEndpoints(certs=Path(str(transport["certs"])),
                        addresses=tuple((str(k), str(v)) for k, v in dict(transport.get("addresses", {})).items()),
                        user_timeout_ms=int(transport.get("user_timeout_ms", 2000)),
                        name_template=None if template is None else str(template),
                        namespace=str(transport.get("namespace", "default")),
                        port=int(transport.get("port", 7100)))


def endpoints_body(manifest: "Manifest", cluster_id: str, proposers: tuple[str, ...] | list[str],
                   learners: tuple[str, ...] | list[str], retain_slots: int) -> dict[str, Any]:
    """endpoints.json's content for the cluster `manifest` describes, whose
    proposers and learners are these now."""
    p = manifest.paxos
    body: dict[str, Any] = {
        "version": ENDPOINTS_VERSION,
        "cluster": manifest.name,
        "cluster_id": cluster_id,
        "proposers": list(proposers),
        "learners": list(learners),
        "retry_seconds": max(1.0, 4 * p.election_timeout),
        "max_value_bytes": p.max_value_bytes,
        "retain_slots": retain_slots,
    }
    transport = manifest.transport
    if transport.tls:
        # Clients dial the agents over TLS with the client certificate, at
        # the addresses the manifest places them at (by address, host or
        # template) or, on the supervisor's host, published in run/<name>.addr.
        body["transport"] = {
            "kind": "tls", "certs": str(transport.certs_dir(manifest.path)),
            "addresses": dict(manifest.placed_addresses()),
            "user_timeout_ms": max(1000, int(2000 * p.election_timeout))}
        if transport.name_template is not None:  # optional keys: older clients ignore them
            body["transport"].update(name_template=transport.name_template,
                                     namespace=transport.namespace, port=transport.port)
        body["version"] = ENDPOINTS_TLS_VERSION
    return body


def write_endpoints(target: Path, body: dict[str, Any]) -> None:
    """Write endpoints.json whole, then rename it into place (readers see the
    old file or the new one). The temporary name is this process's own, so
    agents started at once in one state dir never write over each other's."""
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(body, indent=1) + "\n")
    os.replace(tmp, target)
