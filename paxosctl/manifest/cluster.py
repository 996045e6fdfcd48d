"""Loading `[cluster]` and `[agents]`: the cluster's name, state_dir and id,
and the agents, named "<group>-<index>"; with `endpoint_problem`, the one
check that an agent's Unix socket path fits under a state_dir."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from paxos_agents.runtime.identity import CLUSTER_ID, CLUSTER_ID_ALLOWED
from paxosctl.layout import MAX_SOCKET_PATH, paths

from .messages import join_or, show
from .model import (CLUSTER_NAME, CLUSTER_NAME_ALLOWED, GROUP_NAME, GROUP_NAME_ALLOWED,
                    KERNEL_FILE_SYSTEMS, MAX_REPLICAS, PROTOCOL_ROLES, ROLES, STATE_DIR_ALLOWED,
                    AgentSpec)
from .reader import Reader

AGENTS_EXAMPLE = 'add at least one group, e.g. [agents.acceptor] with role = "acceptor" and replicas = 3'


def load_cluster(reader: Reader, table: dict[str, Any]) -> tuple[str, Path, str | None]:
    reader.no_unknown_keys(("cluster",), table, ("name", "state_dir", "id"))
    if "name" not in table:
        raise reader.fail(("cluster", "name"), f'missing required key; add name = "demo" ({CLUSTER_NAME_ALLOWED})')
    name = table["name"]
    if not isinstance(name, str):
        raise reader.fail(("cluster", "name"), f"expected a string, got {show(name)}; allowed: {CLUSTER_NAME_ALLOWED}")
    if not CLUSTER_NAME.fullmatch(name):
        raise reader.fail(("cluster", "name"), f"invalid cluster name {show(name)}; allowed: {CLUSTER_NAME_ALLOWED}")
    raw_dir = table.get("state_dir", f".paxosctl/{name}")
    if not isinstance(raw_dir, str) or not raw_dir or "\0" in raw_dir:
        raise reader.fail(("cluster", "state_dir"),
                          f"expected a folder path, got {show(raw_dir)}; "
                          "allowed: a path, absolute or relative to the manifest's folder")
    try:
        state_dir = (reader.path.parent / Path(raw_dir).expanduser()).resolve()
    except (OSError, RuntimeError) as exc:  # symlink loop, no home directory
        raise reader.fail(("cluster", "state_dir"), f"cannot resolve {show(raw_dir)} ({exc}); "
                                                    "allowed: a path, absolute or relative to the manifest's folder")
    check_state_dir_path(reader, state_dir)
    cluster_id = table.get("id")
    if cluster_id is not None and not (isinstance(cluster_id, str) and CLUSTER_ID.fullmatch(cluster_id)):
        raise reader.fail(("cluster", "id"), f"invalid cluster id {show(cluster_id)}; allowed: {CLUSTER_ID_ALLOWED}")
    return name, state_dir, cluster_id


def check_state_dir_path(reader: Reader, state_dir: Path) -> None:
    """Refuse a state_dir that no machine could hold: under a kernel
    file system, or too long for its control socket's path."""
    for kernel in KERNEL_FILE_SYSTEMS:
        if state_dir.is_relative_to(kernel):
            raise reader.fail(("cluster", "state_dir"),
                              f"{state_dir} is under {kernel}, a kernel file system, not "
                              f"storage; allowed: {STATE_DIR_ALLOWED}")
    socket_bytes = len(os.fsencode(paths(state_dir)["socket"]))
    if socket_bytes > MAX_SOCKET_PATH:
        longest = MAX_SOCKET_PATH - (socket_bytes - len(os.fsencode(state_dir)))
        raise reader.fail(("cluster", "state_dir"),
                          f"{state_dir} is {len(os.fsencode(state_dir))} bytes long: its control "
                          f"socket's path would be {socket_bytes} bytes, over the {MAX_SOCKET_PATH} "
                          f"a Unix socket allows; allowed: a folder path of at most {longest} bytes")


def check_endpoint_paths(reader: Reader, state_dir: Path, agents: tuple[AgentSpec, ...]) -> None:
    """Refuse agents whose endpoint (`run/<agent>.sock`) could not be bound."""
    problem = endpoint_problem(state_dir, [a.name for a in agents])
    if problem is not None:
        raise reader.fail(("cluster", "state_dir"), problem + " or shorter agent group names")


def load_agents(reader: Reader, table: dict[str, Any]) -> tuple[AgentSpec, ...]:
    if not table:
        raise reader.fail(("agents",), "no agent groups; " + AGENTS_EXAMPLE)
    agents: list[AgentSpec] = []
    for group, body in table.items():
        keys = ("agents", group)
        if not GROUP_NAME.fullmatch(group):
            raise reader.fail(keys, f"invalid group name; allowed: {GROUP_NAME_ALLOWED}")
        if not isinstance(body, dict):
            raise reader.fail(keys, f"expected a table ([agents.{group}]) with a role, got {show(body)}")
        reader.no_unknown_keys(keys, body, ("role", "replicas"))
        if "role" not in body:
            raise reader.fail(keys + ("role",), "missing required key; allowed: " + ", ".join(ROLES))
        role = reader.choice(keys + ("role",), body["role"], "role", ROLES)
        replicas = reader.integer(keys + ("replicas",), body.get("replicas", 1), 1, MAX_REPLICAS)
        agents.extend(AgentSpec(f"{group}-{i}", group, role, i) for i in range(replicas))

    # Groups are unique (TOML refuses a table declared twice) and an
    # instance name ends in "-<digits>" after its group, so names cannot
    # collide today; the check keeps that true if naming ever changes.
    seen: set[str] = set()
    for agent in agents:
        if agent.name in seen:
            raise reader.fail(("agents", agent.group), f"duplicate agent name {show(agent.name)}; "
                                                       "allowed: group names whose instances do not collide")
        seen.add(agent.name)

    played = set().union(*(a.roles for a in agents))
    missing = [r for r in PROTOCOL_ROLES if r not in played]
    if missing:
        raise reader.fail(("agents",), f"no {join_or(missing)} in the cluster; it needs at least one proposer, "
                                       "one acceptor and one learner (a replica counts as all three)")
    return tuple(agents)


def endpoint_problem(state_dir: Path, names: Iterable[str]) -> str | None:
    """Why an agent named in `names` could not run under `state_dir`, on
    one line; None if every one can.

    An agent listens at `state_dir/run/<name>.sock`, and a Unix socket's
    path is at most MAX_SOCKET_PATH bytes: a long state_dir leaves room for
    "proposer-9" but not for the "proposer-10" a `scale` would name. The
    one check for every name: the manifest's (load_manifest), and each one
    `topology.resize` allocates (scale, replace, apply) or topology.json
    holds (up: `topology.check_endpoints`).
    """
    longest = max(names, key=lambda n: len(os.fsencode(n)), default=None)
    if longest is None:
        return None
    endpoint = paths(state_dir)["run"] / f"{longest}.sock"
    size = len(os.fsencode(endpoint))
    if size <= MAX_SOCKET_PATH:
        return None
    length = len(os.fsencode(state_dir))
    room = MAX_SOCKET_PATH - (size - length)
    return (f"agent {longest}'s endpoint {endpoint} would be {size} bytes, over the "
            f"{MAX_SOCKET_PATH} a Unix socket allows; allowed: for that name a state_dir of at "
            f"most {room} bytes (it is {length}): choose a shorter cluster.state_dir")
