"""What `paxosctl apply` (or SIGHUP) would change in a running cluster: the plan.

`plan(running, wanted)` compares the manifest the supervisor runs with the
file on disk, setting by setting, and sorts every difference into one of

- LIVE: the supervisor puts it in force at once, touching no agent
  ([health] timeouts, [restart], [metrics], [chaos]), or by telling the
  running agents (the number of proposers and learners: a membership
  change, paxosctl.membership: new agents start, then removed ones stop);
- RESTART: the agents read it at spawn, so the ones that use it are
  restarted one at a time ([paxos] timers and sizes,
  health.heartbeat_interval; see paxosctl.supervisor.rollout for the order and how
  the acceptors keep a majority);
- REFUSED: unsafe or impossible while the cluster runs (the acceptors,
  an agent's role, log.retain, the cluster's name, id and state_dir, the
  [transport]). One
  refusal refuses the whole apply: nothing changes.

`SETTINGS` classifies every key of every settings section once; a test
checks that no key of the manifest is left out.

`drifted(reply, file)` is what `status` asks: does the file on disk still
describe what the supervisor runs?
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..durations import format_duration
from ..manifest import AgentSpec, Manifest, display_path, load_manifest
from ..membership.plan import changes_acceptors
from .ownership import manifest_digest


class Kind(StrEnum):
    LIVE = "live"
    RESTART = "restart"
    REFUSED = "refused"


#: The roles whose agents read a RESTART setting at spawn (a replica plays all three).
ALL_ROLES = frozenset({"proposer", "acceptor", "learner"})
PROPOSERS = frozenset({"proposer"})


@dataclass(frozen=True, slots=True)
class Setting:
    """How one manifest key changes in a running cluster.

    `roles`: for RESTART, the agents to restart (those playing one of them);
    `why`: for REFUSED, the reason and what to do instead, one line.
    """

    kind: Kind
    roles: frozenset[str] = frozenset()
    why: str = ""


_DOWN_UP = "to change it: paxosctl down, edit, then paxosctl up"

#: Every key of the settings sections, "section.key" -> how it changes live.
SETTINGS: dict[str, Setting] = {
    "cluster.name": Setting(Kind.REFUSED, why=(
        "every store and endpoint of the running cluster records its name; "
        "put it back (a renamed cluster is a new one: paxosctl down, then up)")),
    "cluster.id": Setting(Kind.REFUSED, why=(
        "every store, endpoint and certificate of the running cluster carries its id; "
        "put it back (a cluster with another id is another cluster: paxosctl down, then up)")),
    "cluster.state_dir": Setting(Kind.REFUSED, why=(
        "the running cluster's state lives there; put it back (to move it: "
        "paxosctl down, move the folder, edit, then paxosctl up)")),
    "health.heartbeat_interval": Setting(Kind.RESTART, ALL_ROLES),
    "health.heartbeat_timeout": Setting(Kind.LIVE),
    "health.start_timeout": Setting(Kind.LIVE),
    "restart.policy": Setting(Kind.LIVE),
    "restart.backoff_initial": Setting(Kind.LIVE),
    "restart.backoff_max": Setting(Kind.LIVE),
    "restart.stable_after": Setting(Kind.LIVE),
    "restart.max_restarts": Setting(Kind.LIVE),
    # Timers and sizes: any mix of old and new values during the rolling
    # restart is safe (they decide when things happen, never what is chosen).
    "paxos.tick": Setting(Kind.RESTART, ALL_ROLES),
    "paxos.heartbeat": Setting(Kind.RESTART, PROPOSERS),
    "paxos.election_timeout": Setting(Kind.RESTART, PROPOSERS),
    "paxos.accept_timeout": Setting(Kind.RESTART, PROPOSERS),
    "paxos.retry_cooldown": Setting(Kind.RESTART, PROPOSERS),
    "paxos.gap_timeout": Setting(Kind.RESTART, frozenset({"learner"})),
    "paxos.window": Setting(Kind.RESTART, PROPOSERS),
    "paxos.batch": Setting(Kind.RESTART, PROPOSERS),
    "paxos.max_value_bytes": Setting(Kind.RESTART, PROPOSERS),
    "paxos.protocol_records": Setting(Kind.RESTART, ALL_ROLES),
    "paxos.alpha": Setting(Kind.REFUSED, why=(
        "it is fixed for the cluster's life (every configuration change takes effect "
        "alpha slots after its own, for every agent alike); put it back, and keep "
        "window at most alpha")),
    "log.retain": Setting(Kind.REFUSED, why=(
        "every learner must use the same value (it decides which request ids "
        f"are deduplicated or expired), so no learner may run with the old one; {_DOWN_UP}")),
    "metrics.listen": Setting(Kind.LIVE),
    "metrics.enabled": Setting(Kind.LIVE),
    "chaos.drop": Setting(Kind.LIVE),
    "chaos.duplicate": Setting(Kind.LIVE),
    "chaos.delay": Setting(Kind.LIVE),
    "chaos.partition": Setting(Kind.LIVE),
    "chaos.drop_kinds": Setting(Kind.LIVE),
    "chaos.drop_to": Setting(Kind.LIVE),
    "chaos.seed": Setting(Kind.LIVE),
    # Every agent and client of a cluster must speak one transport with one
    # set of certificates and find each agent where it listens: no agent can
    # change alone while its peers run, so none changes while the cluster runs.
    "transport.kind": Setting(Kind.REFUSED, why=(
        f"every agent and client must switch at once; {_DOWN_UP}")),
    "transport.certs": Setting(Kind.REFUSED, why=(
        f"the running agents and clients hold certificates from the folder they started with; "
        f"{_DOWN_UP}")),
    "transport.addresses": Setting(Kind.REFUSED, why=(
        f"peers and clients find each agent where it listens; {_DOWN_UP}")),
    # Placement by host and template (issue 22): the same reason as addresses.
    **{f"transport.{key}": Setting(Kind.REFUSED, why=(
        f"peers and clients find each agent where it listens; {_DOWN_UP}"))
       for key in ("port", "http_port", "host_tables", "name_template", "namespace")},
}

#: The sections `SETTINGS` covers, with the attribute of `Manifest` that holds each.
SECTIONS = ("health", "restart", "paxos", "log", "metrics", "chaos", "transport")

MIXED_WHY = ("the acceptors change through the membership-change protocol, which runs "
             "alone; apply the agent counts and the other settings in two steps")
ROLE_WHY = ("an agent's store holds the state of its role; put the role back, "
            "or give the group a new name (new agents)")


@dataclass(frozen=True, slots=True)
class Difference:
    """One line of the plan: what changes and how it is put in force."""

    key: str
    line: str


@dataclass(frozen=True, slots=True)
class Plan:
    """What applying `wanted` over `running` does. Empty: nothing differs."""

    running: Manifest
    wanted: Manifest
    changes: tuple[Difference, ...]
    refused: tuple[str, ...]
    #: Agents to start, and to stop (stores and member records kept).
    added: tuple[AgentSpec, ...]
    removed: tuple[AgentSpec, ...]
    #: Agents to restart one at a time, for RESTART settings (not added ones).
    restart: tuple[str, ...]
    live_keys: frozenset[str]
    #: The acceptors change (a new configuration is proposed; nothing else
    #: may change with it). Agents that come or go are always a membership
    #: change (paxosctl.membership), whether or not the acceptors change.
    reconfigure: bool = False

    @property
    def empty(self) -> bool:
        return not self.changes and not self.refused

    @property
    def membership_changed(self) -> bool:
        return bool(self.added or self.removed)


def plan(running: Manifest, wanted: Manifest) -> Plan:
    """Compare `running` (what the supervisor runs) with `wanted` (the file)."""
    changes: list[Difference] = []
    refused: list[str] = []
    restart_roles: set[str] = set()
    live: set[str] = set()
    file = display_path(wanted.path)

    def refuse(key: str, before: Any, after: Any, why: str) -> None:
        refused.append(f"{file}: {key}: cannot change from {_show(before)} to {_show(after)} "
                       f"while the cluster runs: {why}")

    for key, before, after in _cluster_diffs(running, wanted):
        refuse(key, before, after, SETTINGS[key].why)

    # -- agents --
    reconfigure = changes_acceptors(running.acceptors, wanted.agents)
    old = {a.name: a for a in running.agents}
    new = {a.name: a for a in wanted.agents}
    for name in old.keys() & new.keys():
        if old[name].role != new[name].role:
            refuse(f"agents.{new[name].group}.role", old[name].role, new[name].role, ROLE_WHY)
    added = tuple(a for a in wanted.agents if a.name not in old)
    removed = tuple(a for a in running.agents if a.name not in new)
    for spec in added:
        changes.append(Difference("agents", f"agents: {spec.name} added ({spec.role})"))
    for spec in removed:
        changes.append(Difference("agents", f"agents: {spec.name} removed ({spec.role}; its "
                                        "store is kept for when it comes back)"))

    # -- settings sections --
    for key, before, after in _settings_diffs(running, wanted):
        setting = SETTINGS[key]
        if setting.kind is Kind.REFUSED:
            refuse(key, before, after, setting.why)
            continue
        how = "live" if setting.kind is Kind.LIVE else "rolling restart"
        changes.append(Difference(key, f"{key}: {_show(before)} -> {_show(after)} ({how})"))
        if setting.kind is Kind.LIVE:
            live.add(key)
        else:
            restart_roles |= setting.roles

    if reconfigure:
        others = [c.key for c in changes if c.key != "agents"]
        if others:
            refused.append(f"{file}: the acceptors and {', '.join(others)} change together: {MIXED_WHY}")
        changes.insert(0, Difference("agents", f"acceptors: {_names(running.acceptors)} -> "
                                           f"{_names(wanted.acceptors)} (membership change)"))
    staying = [a for a in wanted.agents if a.name in old]
    restart = tuple(a.name for a in staying if a.roles & restart_roles)
    return Plan(running=running, wanted=wanted, changes=tuple(changes), refused=tuple(refused),
                added=added, removed=removed, restart=restart, live_keys=frozenset(live),
                reconfigure=reconfigure)


def drifted(status: dict[str, Any], file: str | Path) -> bool:
    """True if the manifest at `file` is not what the supervisor whose
    `status` reply this is runs (see ops.describe: "manifest"). An
    unreadable or invalid file counts as different; a reply without the
    digest (an older supervisor) never does."""
    running = status.get("manifest")
    if not isinstance(running, dict) or "digest" not in running:
        return False
    try:
        return manifest_digest(load_manifest(file)) != running["digest"]
    except Exception:  # noqa: BLE001 - any reason the file cannot be read is a difference
        return True


# -- helpers --------------------------------------------------------------------


def _cluster_diffs(running: Manifest, wanted: Manifest) -> list[tuple[str, Any, Any]]:
    out = []
    if running.name != wanted.name:
        out.append(("cluster.name", running.name, wanted.name))
    if running.cluster_id != wanted.cluster_id:
        out.append(("cluster.id", running.cluster_id or "(none)", wanted.cluster_id or "(none)"))
    if running.state_dir != wanted.state_dir:
        out.append(("cluster.state_dir", str(running.state_dir), str(wanted.state_dir)))
    return out


def _settings_diffs(running: Manifest, wanted: Manifest) -> list[tuple[str, Any, Any]]:
    out = []
    for section in SECTIONS:
        before, after = getattr(running, section), getattr(wanted, section)
        for f in dataclasses.fields(before):
            a, b = getattr(before, f.name), getattr(after, f.name)
            if a != b:
                out.append((f"{section}.{f.name}", _display(f, a), _display(f, b)))
    return out


def _display(f: dataclasses.Field, value: Any) -> Any:
    """A value as the manifest writes it (durations as text, not seconds)."""
    if f.metadata.get("kind") == "duration" or (f.name == "delay" and isinstance(value, float)):
        return format_duration(value)
    return value


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(names) if names else "none"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(map(str, value)) + "]"
    if isinstance(value, str) and ("," in value or not value):
        return value or '""'
    return str(value)
