"""The agents a cluster runs once `scale`, `replace` or `apply` changed them.

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

No file (a cluster never changed, or one made by 0.3 or older) means the
manifest's agents. Writes are atomic (a temporary file, fsync, rename).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .errors import PaxosctlError, UsageError
from .layout import paths
from .manifest import AgentSpec, Manifest, endpoint_problem

#: topology.json's format version; another is refused with a way out.
FORMAT = 1


class TopologyError(PaxosctlError):
    """topology.json cannot be read; one line naming the file and the way out."""


@dataclass(frozen=True, slots=True)
class Change:
    """A membership change in progress: the agents it ends with, the names it
    retires, and what the operator asked for (one phrase)."""

    target: tuple[AgentSpec, ...]
    retire: frozenset[str]
    why: str


@dataclass(frozen=True, slots=True)
class Topology:
    """What topology.json holds (see the module docstring)."""

    agents: tuple[AgentSpec, ...]
    retired: frozenset[str] = frozenset()
    history: list | None = None
    change: Change | None = None

    def to_json(self) -> dict[str, Any]:
        change = None
        if self.change is not None:
            change = {"target": _specs_json(self.change.target),
                      "retire": sorted(self.change.retire), "why": self.change.why}
        return {"format": FORMAT, "agents": _specs_json(self.agents),
                "retired": sorted(self.retired), "history": self.history, "change": change}


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
        return Topology(
            agents=_specs(data["agents"]),
            retired=frozenset(str(n) for n in data.get("retired", ())),
            history=data.get("history"),
            change=None if change is None else Change(
                _specs(change["target"]), frozenset(map(str, change["retire"])), str(change["why"])),
        )
    except (KeyError, TypeError, ValueError):
        raise TopologyError(f"{path} is corrupt (bad agent entry); {way_out}") from None


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


def with_agents(manifest: Manifest, agents: Iterable[AgentSpec]) -> Manifest:
    """`manifest`, running `agents` instead of the names it derives."""
    return dataclasses.replace(manifest, agents=tuple(agents))


def project(wanted: Manifest, running: Manifest, taken: Iterable[str]) -> Manifest:
    """`wanted` (a manifest file) with the names the running cluster uses.

    For a group both run, the running names are kept in order; a larger
    count adds the group's next unused indices (never a name in `taken`:
    every name that ever ran here, retired ones included), a smaller one
    drops the highest. A group only `wanted` has is named as the manifest
    says, unless a name is taken: then it too gets fresh indices.
    Raises `UsageError` for a name whose endpoint would be too long (`resize`).
    """
    taken = set(taken)
    agents: list[AgentSpec] = []
    for group in _groups(wanted.agents):
        specs = [a for a in wanted.agents if a.group == group]
        current = [a for a in running.agents if a.group == group and a.role == specs[0].role]
        if not current:
            current = [a for a in specs if a.name not in taken]
        agents.extend(resize(current, len(specs), group, specs[0].role, taken,
                             running.state_dir))
    return with_agents(wanted, agents)


def resize(current: list[AgentSpec], count: int, group: str, role: str,
           taken: Iterable[str], state_dir: Path) -> list[AgentSpec]:
    """`current` grown (fresh indices, none in `taken`) or shrunk (highest first) to `count`.

    Raises `UsageError` (exit 2) if a new name's endpoint under `state_dir`
    would be too long for a Unix socket (`manifest.endpoint_problem`):
    refused here, where names are made, before anything starts.
    """
    out = sorted(current, key=lambda a: a.index)[:count]
    used = {a.name for a in out} | set(taken)
    index = max((a.index for a in current), default=-1) + 1
    new = []
    while len(out) < count:
        name = f"{group}-{index}"
        if name not in used:
            out.append(AgentSpec(name, group, role, index))
            new.append(name)
            used.add(name)
        index += 1
    problem = endpoint_problem(state_dir, new)
    if problem is not None:
        raise UsageError(problem)
    return out


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


def _groups(agents: Iterable[AgentSpec]) -> list[str]:
    seen: list[str] = []
    for a in agents:
        if a.group not in seen:
            seen.append(a.group)
    return seen


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
