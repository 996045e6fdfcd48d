"""`paxosctl render k8s`: a cluster's Kubernetes objects, as plain dicts in
apply order, for one namespace.

For cluster C (the manifest's `[cluster] name`) in namespace N:

- the certificates (tlsobjects.py): Secrets `C-ca` and `C-agent-<agent>`
  when `secrets_from` is given, cert-manager Certificates writing the
  agents' Secrets when `cert_manager` is; otherwise only referenced;
- ConfigMap `C-manifest` (key `cluster.toml`, podmanifest.py);
- Service `C`: headless, `publishNotReadyAddresses` (an agent must reach
  its peers before any is ready: readiness needs a majority), ports
  `paxos` 7100 and `http` 9466;
- PodDisruptionBudget `C-acceptors`: a majority of the acceptors stays up
  through voluntary disruptions (drains, upgrades);
- one StatefulSet per agent (pods.py);
- a PodMonitor when `pod_monitor` (else the pods carry scrape annotations).

Every object is labelled `app.kubernetes.io/name: paxosctl` and
`app.kubernetes.io/instance: C`. The Kubernetes engine places, starts,
restarts and keeps the volumes; Paxos decides who votes: `agent_objects`
renders what one agent added by `scale` or `replace` needs (no
`--bootstrap`: it is admitted by the change, never by starting empty).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..manifest import Manifest, display_path
from ..manifest.placement import split_agent_name
from . import names, podmanifest, pods, tlsobjects, yamltext

__all__ = ["Options", "agent_objects", "cluster_objects", "majority", "manifest_for_pods", "to_json",
           "to_yaml"]


@dataclass(frozen=True, slots=True)
class Options:
    """What the flags of `render k8s` choose.

    - `cert_manager`: an Issuer's name (or `ClusterIssuer/NAME`): render a
      cert-manager Certificate per agent;
    - `secrets_from`: a certificates folder (`paxosctl certs init`'s):
      render the Secrets with that material;
    - `pod_monitor`: a PodMonitor instead of scrape annotations.
    """

    namespace: str = "paxos"
    image: str = "paxosctl:latest"
    storage_class: str | None = None
    storage: str = "1Gi"
    cluster_domain: str = "cluster.local"
    cert_manager: str | None = None
    secrets_from: Path | None = None
    pod_monitor: bool = False


def majority(count: int) -> int:
    return count // 2 + 1


def _meta(cluster: Manifest, opts: Options) -> dict[str, Any]:
    return {"namespace": opts.namespace, "labels": pods.instance_labels(cluster.name)}


def _check(cluster: Manifest, agents: list[str], opts: Options) -> None:
    names.check_namespace(opts.namespace)
    names.check_domain(opts.cluster_domain)
    names.check_cluster(cluster, agents, opts.namespace, opts.cluster_domain)
    if opts.cert_manager is not None and opts.secrets_from is not None:
        raise UsageError("--cert-manager and --secrets both render the agents' Secrets; allowed: one of them")
    if opts.cert_manager is not None:
        tlsobjects.issuer_ref(opts.cert_manager)
        tlsobjects.needs_id(cluster, "--cert-manager")


def _role(cluster: Manifest, agent: str) -> tuple[str, bool]:
    """(role, is one of the manifest's own agents) of `agent`, which may be
    a name `scale` adds (acceptor-3): the role of its group."""
    for spec in cluster.agents:
        if spec.name == agent:
            return spec.role, True
    try:
        group, _ = split_agent_name(agent)
    except ValueError:
        group = ""
    for spec in cluster.agents:
        if spec.group == group:
            return spec.role, False
    raise UsageError(f"{display_path(cluster.path)} has no group for agent {agent!r}; allowed: "
                     "<group>-<index> of a group: " + ", ".join(dict.fromkeys(a.group for a in cluster.agents)))


def _tls_objects(cluster: Manifest, agent: str, opts: Options) -> list[dict[str, Any]]:
    meta = _meta(cluster, opts)
    if opts.secrets_from is not None:
        return [tlsobjects.agent_secret(cluster, agent, opts.secrets_from, meta)]
    if opts.cert_manager is not None:
        return [tlsobjects.certificate(cluster, agent, opts.cert_manager, opts.namespace,
                                       opts.cluster_domain, meta)]
    return []


def _agent(cluster: Manifest, agent: str, opts: Options) -> list[dict[str, Any]]:
    role, bootstrap = _role(cluster, agent)
    return [*_tls_objects(cluster, agent, opts),
            pods.statefulset(cluster.name, agent, acceptor=role in ("acceptor", "replica"), bootstrap=bootstrap,
                             image=opts.image, storage=opts.storage, storage_class=opts.storage_class,
                             pod_monitor=opts.pod_monitor, meta=_meta(cluster, opts))]


def agent_objects(cluster: Manifest, name: str, opts: Options) -> list[dict[str, Any]]:
    """What agent `name` adds to a rendered cluster: its Certificate or
    Secret (if rendered) and its StatefulSet. `name` may be one the
    manifest does not list (`scale`, `replace`): no `--bootstrap` then."""
    _check(cluster, [name], opts)
    return _agent(cluster, name, opts)


def manifest_for_pods(cluster: Manifest, opts: Options) -> str:
    """The TOML of ConfigMap `C-manifest` (podmanifest.py)."""
    return podmanifest.manifest_for_pods(cluster, opts.namespace, opts.cluster_domain)


def cluster_objects(cluster: Manifest, opts: Options) -> list[dict[str, Any]]:
    """Every object of the cluster, in apply order (what they need first)."""
    agents = [a.name for a in cluster.agents]
    _check(cluster, agents, opts)
    meta = _meta(cluster, opts)
    c = cluster.name
    selector = pods.instance_labels(c)
    objects: list[dict[str, Any]] = []
    if opts.secrets_from is not None:
        objects.append(tlsobjects.ca_secret(cluster, opts.secrets_from, meta))
    objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{c}-manifest", **meta},
                    "data": {podmanifest.MANIFEST_KEY: manifest_for_pods(cluster, opts)}})
    objects.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": c, **meta}, "spec": {
        "clusterIP": "None",
        "publishNotReadyAddresses": True,
        "selector": selector,
        "ports": [{"name": "paxos", "port": podmanifest.PORT, "targetPort": "paxos", "protocol": "TCP"},
                  {"name": "http", "port": podmanifest.HTTP_PORT, "targetPort": "http", "protocol": "TCP"}]}})
    objects.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                    "metadata": {"name": f"{c}-acceptors", **meta}, "spec": {
                        "minAvailable": majority(len(cluster.acceptors)),
                        "selector": {"matchLabels": {**selector, "paxosctl.dev/acceptor": "true"}}}})
    for agent in agents:
        objects += _agent(cluster, agent, opts)
    if opts.pod_monitor:
        objects.append({"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
                        "metadata": {"name": c, **meta}, "spec": {
                            "selector": {"matchLabels": selector},
                            "podMetricsEndpoints": [{"port": "http", "path": "/metrics"}]}})
    return objects


def to_yaml(objects: list[dict[str, Any]]) -> str:
    """A YAML stream, one document per object (`kubectl apply -f -`)."""
    return yamltext.dump(objects)


def to_json(objects: list[dict[str, Any]]) -> str:
    """A v1 List holding the objects."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2) + "\n"
