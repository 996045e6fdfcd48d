"""The cluster manifest: a TOML file naming the agents to run and how.

    [cluster]
    name = "demo"                  # required
    state_dir = ".paxosctl/demo"   # optional, relative to this file's folder
    id = "3f9c0a7e5d1b2c48"        # optional; `paxosctl certs init` writes it

    [agents.acceptor]              # one table per group of agents
    role = "acceptor"              # proposer | acceptor | learner | replica
    replicas = 3                   # instances acceptor-0 .. acceptor-2

    [health] [restart] [paxos] [log] [metrics]   # optional; see their classes

    [transport]                    # optional: how agents and clients connect
    kind = "tls"                   # "unix" (default) | "tls": TCP + mutual TLS 1.3
    certs = "certs"                # the folder `paxosctl certs init` wrote (beside this file)
    port = 7100                    # first data port of a host; every templated agent's
    http_port = 9466               # the same for a standalone agent's /healthz, /metrics
    name_template = "{name}.{group}.{namespace}.svc"   # optional; namespace = "default"
    [transport.addresses]          # optional: where an agent listens ("host:port")
    acceptor-0 = "127.0.0.1:7100"
    [transport.hosts.db1]          # optional: a host and the agents it runs, which
    address = "192.0.2.1"          #   get ports port, port+1, ... in this order
    agents = ["acceptor-1", "proposer-0"]
    # unplaced agents: 127.0.0.1, a free port (placement.py: the precedence)

`load_manifest` reads and validates the file into frozen dataclasses. It
only looks at the file. `check_runtime` adds the checks that look at this
machine (is the metrics port free, can state_dir be written) and returns
the warnings; `warnings` returns only the warnings, which need the file
alone.

Every error is a `ManifestError` whose message is ONE line:

    <file>: <key.path>: <what is wrong>; <what is allowed>

for example

    cluster.toml: agents.acceptor.replicas: expected an integer from 1 to 64, got "three"

Errors that concern the whole file (it is missing, or is not TOML) have no
key path. Only the first error found is raised: sections are checked in a
fixed order (cluster, agents, health, restart, paxos, log, metrics, chaos,
transport), the keys of a section mostly in the file's order.

The defaults live in one place: the field defaults of the dataclasses in
model.py, which also say how each key is checked.

This package re-exports the public names of its modules, so
`from paxosctl.manifest import X` works for every X the code base uses:
import from here, not from the modules, which are split by what they hold:

- model.py: the dataclasses (`Manifest`, `AgentSpec`, the settings) and
  the constants the checks use;
- placement.py: `[transport]`'s `TransportSettings`, and `Placement`,
  where one agent listens, with the precedence of the placing keys;
- addresses.py: "host:port", IP literals and DNS names;
- reader.py, cluster.py, settings.py, transport.py: the loader, section by
  section; load.py runs them in order (`load_manifest`);
- checks.py: the checks on a loaded manifest (state_dir, the metrics
  port, certificates) and its warnings;
- messages.py: how errors read; writing.py: TOML values for tools that
  write manifests.
"""

from __future__ import annotations

from .checks import check_certificates, check_runtime, state_dir_error, warnings
from .cluster import endpoint_problem
from .load import load_manifest
from .messages import display_path
from .model import (
    CLUSTER_NAME,
    CLUSTER_NAME_ALLOWED,
    GROUP_NAME,
    GROUP_NAME_ALLOWED,
    KERNEL_FILE_SYSTEMS,
    MAX_DURATION,
    MAX_REPLICAS,
    MAX_VALUE_BYTES,
    MAX_VALUE_BYTES_WHY,
    POLICIES,
    PROTOCOL_ROLES,
    ROLES,
    SECTIONS,
    STATE_DIR_ALLOWED,
    TRANSPORTS,
    AgentSpec,
    Health,
    LogSettings,
    Manifest,
    MetricsSettings,
    PaxosSettings,
    RestartSettings,
)
from .placement import Host, Placement, TransportSettings
from .writing import toml_value

__all__ = [
    "AgentSpec", "CLUSTER_NAME", "CLUSTER_NAME_ALLOWED", "GROUP_NAME", "GROUP_NAME_ALLOWED", "Health",
    "Host", "KERNEL_FILE_SYSTEMS", "LogSettings", "MAX_DURATION", "MAX_REPLICAS", "MAX_VALUE_BYTES",
    "MAX_VALUE_BYTES_WHY", "Manifest", "MetricsSettings", "POLICIES", "PROTOCOL_ROLES", "PaxosSettings",
    "Placement", "ROLES", "RestartSettings", "SECTIONS", "STATE_DIR_ALLOWED", "TRANSPORTS",
    "TransportSettings", "check_certificates", "check_runtime", "display_path", "endpoint_problem",
    "load_manifest", "state_dir_error", "toml_value", "warnings",
]
