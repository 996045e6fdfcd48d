"""Where a running cluster's data path is: `state_dir/run/endpoints.json`.

The supervisor writes it (whole, then renamed into place) when it starts
the cluster; clients read it to reach the proposers and learners
directly, each at `run/<agent>.sock` (paxos_agents.runtime.transport).
Reading it needs no supervisor: a stopped supervisor stops no client.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import NotRunning, PaxosctlError

#: The format of endpoints.json; a client refuses one it does not know.
ENDPOINTS_VERSION = 1


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

    def socket(self, agent: str) -> str:
        return str(self.run_dir / f"{agent}.sock")


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
    if not isinstance(body, dict) or body.get("version") != ENDPOINTS_VERSION:
        raise PaxosctlError(f"{path} is of another paxosctl version "
                            f"({body.get('version') if isinstance(body, dict) else '?'}; "
                            f"this one reads {ENDPOINTS_VERSION})",
                            hint="use the paxosctl that runs the cluster")
    try:
        return Endpoints(run_dir=run_dir, cluster=str(body["cluster"]),
                         cluster_id=str(body["cluster_id"]),
                         proposers=tuple(body["proposers"]), learners=tuple(body["learners"]),
                         retry_seconds=float(body["retry_seconds"]),
                         max_value_bytes=int(body["max_value_bytes"]),
                         retain_slots=int(body.get("retain_slots", 0)))
    except (KeyError, TypeError, ValueError) as e:
        raise PaxosctlError(f"{path} is malformed ({e})") from None
