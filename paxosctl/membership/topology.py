"""topology.json: the agents a cluster runs once `scale`, `replace` or `apply`
changed them. This module holds the file alone (its format, reading,
writing); names are made in `membership.names`.

    state_dir/topology.json
    {"format": 1,
     "agents": [["acceptor-0", "acceptor", "acceptor", 0], ...],
     "retired": ["acceptor-1"],
     "history": [1, 64, 120, [[0, 0, ["acceptor-0", ...]], [1, 77, [...]]]],
     "change": {"target": [[name, group, role, index], ...], "retire": [...],
                "why": "scale acceptor 3 -> 5"} | null}

The manifest says how many agents each group has; after a membership
change the names the cluster runs are no longer always "<group>-0" to
"<group>-(n-1)": a replaced agent's name is retired for good (its old
disk must never vote again; see paxos_agents/core/configs.py) and its
successor takes the group's next unused index. So the supervisor records
the agents it runs here, with the retired names and the configuration
history as it last heard it (for agents that start with an empty store),
and `up` runs these agents rather than the manifest's names when the file
exists. `change` is the membership change in progress, which a restarted
supervisor finishes.

It is a cache: what the cluster records (the decided configurations, the
agents' reports and stores) is the truth; the file lets a supervisor that
starts with nothing running know which agents to start, and which change
to finish, before any agent has reported.

No file (a cluster never changed, or one made by 0.3 or older) means the
manifest's agents. Writes are atomic (a temporary file, fsync, rename).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from paxos_agents.core.configs import ConfigError, History

from ..errors import PaxosctlError, UsageError
from ..layout import paths
from ..manifest import AgentSpec, Manifest, endpoint_problem
from .plan import Asked

#: topology.json's format version; another is refused with a way out.
FORMAT = 1


class TopologyError(PaxosctlError):
    """topology.json cannot be read; one line naming the file and the way out."""


@dataclass(frozen=True, slots=True)
class Topology:
    """What topology.json holds (see the module docstring)."""

    agents: tuple[AgentSpec, ...]
    retired: frozenset[str] = frozenset()
    history: History | None = None
    change: Asked | None = None

    def to_json(self) -> dict[str, Any]:
        change = None
        if self.change is not None:
            change = {"target": _specs_json(self.change.target),
                      "retire": sorted(self.change.retire), "why": self.change.why}
        return {"format": FORMAT, "agents": _specs_json(self.agents),
                "retired": sorted(self.retired),
                "history": self.history.to_json() if self.history is not None else None,
                "change": change}


def load(path: Path) -> Topology | None:
    """The topology stored at `path`; None if there is none (the manifest's agents)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TopologyError(f"{path} is unreadable ({exc.strerror}); fix its permissions") from None
    way_out = ("restore it from a copy; without it paxosctl runs the manifest's agents, "
               "which is wrong after a scale or replace")
    try:
        data = json.loads(text)
    except ValueError:
        raise TopologyError(f"{path} is not JSON; {way_out}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else "?"
        raise TopologyError(f"{path} has format {found}; this paxosctl reads {FORMAT} "
                            "(written by a newer paxosctl? use that one)")
    try:
        change = data.get("change")
        agents = _specs(data["agents"])
        retired = frozenset(str(n) for n in data.get("retired", ()))
        asked = None if change is None else Asked(
            _specs(change["target"]), frozenset(map(str, change["retire"])), str(change["why"]))
    except (KeyError, TypeError, ValueError):
        raise TopologyError(f"{path} is corrupt (bad agent entry); {way_out}") from None
    history = data.get("history")
    try:
        history = None if history is None else History.from_json(history)
    except ConfigError as exc:
        raise TopologyError(f"{path}: {exc}; {way_out}") from None
    return Topology(agents=agents, retired=retired, history=history, change=asked)


def save(path: Path, topology: Topology) -> None:
    """Write `topology` at `path` atomically (a crash leaves the old file or the new)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(topology.to_json(), f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_endpoints(manifest: Manifest) -> None:
    """Refuse (`UsageError`, exit 2) to start the agents topology.json names,
    or those of its change in progress, if one could not bind its endpoint
    under `manifest.state_dir` (a state_dir moved to a longer path since a
    scale named them): `up` calls this before it starts anything. Raises
    `TopologyError` if topology.json cannot be read."""
    topology = load(paths(manifest.state_dir)["topology"])
    if topology is None:
        return
    names = [a.name for a in topology.agents]
    if topology.change is not None:
        names += [a.name for a in topology.change.target]
    problem = endpoint_problem(manifest.state_dir, names)
    if problem is not None:
        raise UsageError(f"{paths(manifest.state_dir)['topology']}: {problem}")


def _specs_json(agents: Iterable[AgentSpec]) -> list:
    return [[a.name, a.group, a.role, a.index] for a in agents]


def _specs(rows: Any) -> tuple[AgentSpec, ...]:
    out = []
    for name, group, role, index in rows:
        if not (isinstance(name, str) and isinstance(group, str) and isinstance(role, str)
                and type(index) is int):
            raise ValueError(name)
        out.append(AgentSpec(name, group, role, index))
    return tuple(out)
