"""Checks on a loaded manifest: what the file alone cannot tell (this
machine: the metrics port, state_dir; the certificates on disk) and the
warnings about a valid file."""

from __future__ import annotations

import errno
import os
import socket
from datetime import datetime

from paxosctl.errors import ManifestError

from .addresses import is_loopback
from .messages import display_path, error, show
from .model import STATE_DIR_ALLOWED, Manifest


def check_runtime(manifest: Manifest) -> list[str]:
    """Check what the file alone cannot tell, then return `warnings(manifest)`.

    Raises ManifestError if the metrics address cannot be bound right now
    (skipped when metrics are disabled) or if state_dir cannot be created or
    written. Creates nothing. The port check is advisory: something else may
    take the port between this check and the supervisor's bind.
    """
    _check_state_dir(manifest)
    if manifest.metrics.enabled:
        _check_metrics_port(manifest)
    check_certificates(manifest)
    return warnings(manifest)


def check_certificates(manifest: Manifest) -> None:
    """With `[transport] kind = "tls"`: the manifest has a cluster id and
    every agent's certificate, the client's and the CA are there and valid
    now (`identity.check_files`). ManifestError, one line naming the file
    and the fix, otherwise. Nothing to check for Unix sockets."""
    if not manifest.transport.tls:
        return
    from datetime import timezone

    from paxos_agents.runtime.identity import CertificateProblem, Identity, check_files

    keys = ("transport", "kind")
    file = display_path(manifest.path)
    if manifest.cluster_id is None:
        raise error(manifest.path, keys, '"tls" needs the cluster id in the certificates, and '
                    f"[cluster] has no id; allowed: run `paxosctl certs init -f {file}` (it adds it)")
    folder = manifest.transport.certs_dir(manifest.path)
    ca = folder / "ca.crt"
    if not ca.is_file():
        raise error(manifest.path, ("transport", "certs"), f"{ca}: no CA certificate; allowed: run "
                    f"`paxosctl certs init -f {file}` (it writes {folder})")
    now = datetime.now(timezone.utc)
    wanted = [("agent", a.name) for a in manifest.agents] + [("client", "client")]
    for kind, name in wanted:
        cert, key = folder / kind / f"{name}.crt", folder / kind / f"{name}.key"
        if not cert.is_file():
            raise error(manifest.path, ("transport", "certs"), f"{cert}: no certificate for {kind} "
                        f"{name}; allowed: run `paxosctl certs issue {name} --kind {kind} -f {file}`")
        try:
            check_files(cert, key, ca, Identity(manifest.cluster_id, kind, name), now)
        except CertificateProblem as exc:
            raise error(manifest.path, ("transport", "certs"), exc.message) from None


def warnings(manifest: Manifest) -> list[str]:
    """Warnings about a valid manifest, each one line. File only; no OS calls.

    - fewer than 3 acceptors: no failure can be tolerated;
    - metrics on a non-loopback address: anyone on the network can read them.
    """
    file = display_path(manifest.path)
    found = []
    count = len(manifest.acceptors)
    if count < 3:
        found.append(f"{file}: only {count} acceptor(s): the cluster tolerates no failure (3 tolerate one)")
    metrics = manifest.metrics
    if metrics.enabled and not is_loopback(metrics.host):
        found.append(f"{file}: metrics.listen: {show(metrics.listen)} is not a loopback address: "
                     "anyone on the network can read the metrics")
    return found


def state_dir_error(manifest: Manifest, problem: str) -> ManifestError:
    """The one-line error blaming cluster.state_dir, for `problem` (which
    should end with "; allowed: ...")."""
    return error(manifest.path, ("cluster", "state_dir"), problem)


def _check_state_dir(manifest: Manifest) -> None:
    """state_dir must exist as a writable folder, or be creatable: its
    nearest existing ancestor is a folder we may write and enter."""
    def fail(problem: str) -> ManifestError:
        return state_dir_error(manifest, f"{problem}; allowed: {STATE_DIR_ALLOWED}")

    target = manifest.state_dir
    probe = target
    try:
        while not probe.exists():
            probe = probe.parent
    except OSError as exc:
        raise fail(f"cannot inspect {probe} ({(exc.strerror or str(exc)).lower()})") from None
    if not probe.is_dir():
        raise fail(f"{target} is not a folder" if probe == target
                   else f"{target} cannot be created: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise fail(f"{target} is not writable" if probe == target
                   else f"{target} cannot be created: {probe} is not writable")


def _check_metrics_port(manifest: Manifest) -> None:
    """Bind (without listening) a TCP socket on the metrics address, as the
    metrics server will (Metrics.serve: same address lookup, same options)."""
    def fail(problem: str) -> ManifestError:
        return error(manifest.path, ("metrics", "listen"), problem)

    listen, host, port = manifest.metrics.listen, manifest.metrics.host, manifest.metrics.port
    allowed = "allowed: a free port, port 0 for any free port, or metrics.enabled = false"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (OSError, UnicodeError) as exc:
        raise fail(f"cannot resolve host {show(host)} ({exc}); allowed: an IP address or a known host name") from None
    with socket.socket(family, kind, proto) as sock:
        # SO_REUSEADDR on, as the real server sets it (prometheus_client's
        # is an http.server.HTTPServer: allow_reuse_address). Off, the
        # TIME_WAIT connections of a scrape in the last minute make this
        # check fail where the server would bind fine; on Linux, on or off,
        # it still fails while another socket listens on the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise fail(f"{listen} is already in use; {allowed}") from None
            raise fail(f"cannot bind {listen} ({(exc.strerror or str(exc)).lower()}); {allowed}") from None

