"""Names for new agents: a group resized, an agent replaced, a manifest
projected onto the names a running cluster uses. Pure, no file.

A name that ran before is never handed to a new member unless it is the
same member coming back (`scale` may bring back a name it removed, with
its files: its promises and votes intact); a retired name never is.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable

from ..faults import Fault, OpError
from ..errors import UsageError
from ..manifest import AgentSpec, Manifest, endpoint_problem


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


def scale_target(running: Manifest, group: str, replicas: int,
                 taken: set[str]) -> tuple[AgentSpec, ...]:
    """`running`'s agents with `group` resized to `replicas` (OpError if unknown
    or out of range); new names avoid `taken`."""
    groups = list(dict.fromkeys(a.group for a in running.agents))
    if group not in groups:
        raise OpError(Fault.BAD_REQUEST, f"no agent group {group!r}; groups: {', '.join(groups)}")
    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 0 <= replicas <= 64:
        raise OpError(Fault.BAD_REQUEST, f"replicas: expected an integer from 0 to 64, got {replicas!r}")
    current = [a for a in running.agents if a.group == group]
    resized = _resize(current, replicas, group, current[0].role, taken, running)
    out: list[AgentSpec] = []
    for a in running.agents:
        if a.group == group:
            out.extend(resized)
            resized = []
        else:
            out.append(a)
    return tuple(out)


def replace_target(running: Manifest, name: str,
                   taken: set[str]) -> tuple[tuple[AgentSpec, ...], AgentSpec]:
    """`running`'s agents with `name` swapped for its group's next name not
    in `taken` (every name that ever ran here: the new member starts empty)."""
    old = next(a for a in running.agents if a.name == name)
    new, = _resize([], 1, old.group, old.role, taken, running)
    return tuple(new if a.name == name else a for a in running.agents), new


def _resize(current: list[AgentSpec], count: int, group: str, role: str, taken: set[str],
            running: Manifest) -> list[AgentSpec]:
    """`resize`; a name too long for its endpoint is a bad request."""
    try:
        return resize(current, count, group, role, taken, running.state_dir)
    except UsageError as e:
        raise OpError(Fault.BAD_REQUEST, e.message) from None


def _groups(agents: Iterable[AgentSpec]) -> list[str]:
    seen: list[str] = []
    for a in agents:
        if a.group not in seen:
            seen.append(a.group)
    return seen
