"""What an agent process is given to run (`paxos_agents.runtime.spec.AgentSpec`),
built from the manifest: one builder for the supervisor's fleet
(paxosctl.supervisor.fleet, at every spawn) and for `paxosctl agent NAME`
(paxosctl.standalone), so both run an agent of a manifest the same way.

Where its files are follows paxosctl.layout: `state/<name>.db`,
`logs/<name>.log`, endpoints under `run/`.
"""

from __future__ import annotations

import os
from pathlib import Path

from paxos_agents.core.settings import Membership, Settings
from paxos_agents.runtime.spec import AgentSpec as RuntimeSpec
from paxos_agents.runtime.spec import TlsSpec

from .manifest import Manifest


def membership_of(manifest: Manifest) -> Membership:
    """Who plays each protocol role in `manifest`."""
    return Membership(manifest.proposers, manifest.acceptors, manifest.learners)


def protocol_settings(manifest: Manifest) -> Settings:
    """The core's settings (in ticks) from `manifest`'s [paxos] and [log]."""
    p = manifest.paxos
    return Settings(
        heartbeat_ticks=p.ticks("heartbeat"),
        election_ticks=p.ticks("election_timeout"),
        accept_timeout_ticks=p.ticks("accept_timeout"),
        retry_cooldown_ticks=p.ticks("retry_cooldown"),
        gap_ticks=p.ticks("gap_timeout"),
        window=p.window,
        alpha=p.alpha,
        batch=p.batch,
        retain_slots=manifest.log.retain,
    )


def tls_spec(manifest: Manifest, name: str) -> TlsSpec | None:
    """Agent `name`'s TLS endpoint as the manifest says (None: Unix sockets).

    It listens where the manifest places it (`TransportSettings.placement`:
    by address, host or name template), else on 127.0.0.1 at a free port
    (published in run/<name>.addr); TCP_USER_TIMEOUT is twice the election
    timeout, so a link to a vanished host fails in about the time a new
    leader takes."""
    transport = manifest.transport
    if not transport.tls:
        return None
    folder = transport.certs_dir(manifest.path)
    return TlsSpec(listen=transport.placement(name).listen,
                   cert=str(folder / "agent" / f"{name}.crt"), key=str(folder / "agent" / f"{name}.key"),
                   ca=str(folder / "ca.crt"), addresses=manifest.placed_addresses(),
                   user_timeout_ms=max(1000, int(2000 * manifest.paxos.election_timeout)))


def state_file(state_paths: dict[str, Path], name: str) -> Path:
    """Agent `name`'s store (SQLite) under a cluster's paths (layout.paths)."""
    return state_paths["state"] / f"{name}.db"


def log_file(state_paths: dict[str, Path], name: str) -> Path:
    """Agent `name`'s log file under a cluster's paths (layout.paths)."""
    return state_paths["logs"] / f"{name}.log"


def runtime_spec(manifest: Manifest, name: str, *, membership: Membership, settings: Settings,
                 state_paths: dict[str, Path], cluster_id: str, member_id: str = "",
                 has_run: bool = False, configs: list | None = None,
                 bootstrap: bool = False) -> RuntimeSpec:
    """The spec of agent `name` of `manifest`, its files under `state_paths`
    (layout.paths of the state dir); a fresh seed for the core's jitter."""
    return RuntimeSpec(
        name=name,
        membership=membership,
        settings=settings,
        tick_seconds=manifest.paxos.tick,
        heartbeat_seconds=manifest.health.heartbeat_interval,
        state_path=str(state_file(state_paths, name)),
        log_path=str(log_file(state_paths, name)),
        seed=int.from_bytes(os.urandom(8), "big"),
        cluster_id=cluster_id,
        member_id=member_id,
        has_run=has_run,
        run_dir=str(state_paths["run"]),
        max_value_bytes=manifest.paxos.max_value_bytes,
        configs=configs,
        tls=tls_spec(manifest, name),
        bootstrap=bootstrap,
        protocol_records=manifest.paxos.protocol_records,
    )
