"""`load_manifest`: the file, read and checked section by section in a
fixed order (cluster, agents, health, restart, paxos, log, metrics, chaos,
transport), into a `Manifest`. The first problem found is raised."""

from __future__ import annotations

import os
from pathlib import Path

from .cluster import AGENTS_EXAMPLE, check_endpoint_paths, load_agents, load_cluster
from .messages import did_you_mean, misplaced
from .model import SECTIONS, Health, LogSettings, Manifest, PaxosSettings, RestartSettings
from .reader import Reader
from .settings import check_orders, load_chaos, load_metrics, load_settings
from .transport import load_transport


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read, parse and validate the manifest at `path`.

    Looks at the file only (see `check_runtime` for the machine). Raises
    ManifestError with a one-line message for the first problem found.
    """
    reader = Reader(Path(os.path.abspath(path)))
    data = reader.read()
    for key in data:
        if key not in SECTIONS:
            raise reader.fail((key,), "unknown section; allowed: " + ", ".join(SECTIONS),
                              hint=did_you_mean(key, SECTIONS) or misplaced(key))
    tables = {name: reader.table((name,), data.get(name)) for name in SECTIONS}
    if "cluster" not in data:
        raise reader.fail(("cluster",), 'missing section; add [cluster] with name = "..."')
    if "agents" not in data:
        raise reader.fail(("agents",), "missing section; " + AGENTS_EXAMPLE)
    name, state_dir, cluster_id = load_cluster(reader, tables["cluster"])
    agents = load_agents(reader, tables["agents"])
    check_endpoint_paths(reader, state_dir, agents)
    health = load_settings(reader, "health", Health, tables["health"])
    restart = load_settings(reader, "restart", RestartSettings, tables["restart"])
    paxos = load_settings(reader, "paxos", PaxosSettings, tables["paxos"])
    check_orders(reader, health, restart, paxos, tables)
    log = load_settings(reader, "log", LogSettings, tables["log"])
    metrics = load_metrics(reader, tables["metrics"])
    names = tuple(a.name for a in agents)
    chaos = load_chaos(reader, tables["chaos"], names)
    transport = load_transport(reader, tables["transport"], names)
    return Manifest(path=reader.path, name=name, state_dir=state_dir, agents=agents,
                    health=health, restart=restart, paxos=paxos, log=log, metrics=metrics,
                    chaos=chaos, cluster_id=cluster_id, transport=transport)
