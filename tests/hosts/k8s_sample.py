"""The Kubernetes objects of issue 23's contract (/work/briefs/i23-contract.md),
written by hand until `paxosctl.render.k8s` lands (not a test module).

Same names and signatures as the render module's, so a test switches with
one import: `from paxosctl.render import k8s` for `import k8s_sample as k8s`.
Only what the contract fixes is here; `secrets_from` is the one way of
giving certificates (cert-manager and PodMonitor are the render's).
"""

from __future__ import annotations

import base64
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paxosctl.manifest import Manifest, toml_value

PORT, HTTP_PORT = 7100, 9466


@dataclass(frozen=True, slots=True)
class Options:
    namespace: str = "paxos"
    image: str = "paxosctl:latest"
    storage_class: str | None = None
    storage: str = "1Gi"
    cluster_domain: str = "cluster.local"
    cert_manager: str | None = None
    secrets_from: Path | None = None
    pod_monitor: bool = False


def _toml(table: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[str]:
    lines = [f"{key} = {toml_value(v)}" for key, v in table.items() if not isinstance(v, dict)]
    for key, sub in ((k, v) for k, v in table.items() if isinstance(v, dict)):
        lines += ["", f"[{'.'.join((*prefix, key))}]", *_toml(sub, (*prefix, key))]
    return lines


def manifest_for_pods(cluster: Manifest, opts: Options) -> str:
    """The manifest with `[transport]` rewritten for pods (the ConfigMap's cluster.toml)."""
    with open(cluster.path, "rb") as f:
        table = tomllib.load(f)
    c = cluster.name
    table["transport"] = {
        "kind": "tls", "certs": "/etc/paxosctl/certs", "port": PORT, "http_port": HTTP_PORT,
        "name_template": f"{c}-{{name}}-0.{c}.{{namespace}}.svc.{opts.cluster_domain}",
        "namespace": opts.namespace}
    return "\n".join(_toml(table)).lstrip() + "\n"


def _labels(cluster: Manifest) -> dict[str, str]:
    return {"app.kubernetes.io/name": "paxosctl", "app.kubernetes.io/instance": cluster.name}


def _meta(cluster: Manifest, opts: Options, name: str, **extra: str) -> dict[str, Any]:
    return {"name": name, "namespace": opts.namespace, "labels": {**_labels(cluster), **extra}}


def _secret(cluster: Manifest, opts: Options, name: str, kind: str, data: dict[str, bytes]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(cluster, opts, name), "type": kind,
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}


def agent_objects(cluster: Manifest, name: str, opts: Options, *, bootstrap: bool = True) -> list[dict[str, Any]]:
    """What one agent adds: its Secret (with `secrets_from`) and its StatefulSet."""
    c = cluster.name
    objects = []
    if opts.secrets_from is not None:
        folder = Path(opts.secrets_from) / "agent"
        objects.append(_secret(cluster, opts, f"{c}-agent-{name}", "kubernetes.io/tls", {
            "tls.crt": (folder / f"{name}.crt").read_bytes(), "tls.key": (folder / f"{name}.key").read_bytes()}))
    acceptor = "true" if name in cluster.acceptors else "false"
    pod_labels = {**_labels(cluster), "paxosctl.dev/agent": name, "paxosctl.dev/acceptor": acceptor}
    probe = {"httpGet": {"path": "/healthz", "port": "http"}}
    container = {
        "name": "agent", "image": opts.image,
        "command": ["paxosctl", "agent", name, "-f", "/etc/paxosctl/cluster.toml",
                    "--state-dir", "/var/lib/paxosctl", *(["--bootstrap"] if bootstrap else []),
                    "--http", f"0.0.0.0:{HTTP_PORT}"],
        "env": [{"name": "PAXOSCTL_TERMINATION_LOG", "value": "/dev/termination-log"}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "ports": [{"name": "paxos", "containerPort": PORT}, {"name": "http", "containerPort": HTTP_PORT}],
        "volumeMounts": [
            {"name": "data", "mountPath": "/var/lib/paxosctl"},
            {"name": "manifest", "mountPath": "/etc/paxosctl", "readOnly": True},
            {"name": "certs", "mountPath": "/etc/paxosctl/certs", "readOnly": True}],
        "startupProbe": {**probe, "periodSeconds": 5, "failureThreshold": 120},
        "livenessProbe": {**probe, "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5,
                           "timeoutSeconds": 2, "failureThreshold": 2},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
    }
    volumes = [
        {"name": "manifest", "configMap": {"name": f"{c}-manifest"}},
        # 0400: the agent refuses a key others can read (Kubernetes' default is 0644).
        {"name": "certs", "projected": {"defaultMode": 0o400, "sources": [
            {"secret": {"name": f"{c}-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"secret": {"name": f"{c}-agent-{name}", "items": [
                {"key": "tls.crt", "path": f"agent/{name}.crt"},
                {"key": "tls.key", "path": f"agent/{name}.key"}]}}]}}]
    claim = {"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": opts.storage}},
        **({"storageClassName": opts.storage_class} if opts.storage_class else {})}}
    annotations = {} if opts.pod_monitor else {
        "prometheus.io/scrape": "true", "prometheus.io/port": str(HTTP_PORT), "prometheus.io/path": "/metrics"}
    objects.append({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": _meta(cluster, opts, f"{c}-{name}", **{"paxosctl.dev/agent": name}),
        "spec": {
            "replicas": 1, "serviceName": c, "podManagementPolicy": "Parallel",
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "selector": {"matchLabels": {**_labels(cluster), "paxosctl.dev/agent": name}},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": annotations},
                "spec": {
                    "restartPolicy": "Always",
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "fsGroup": 65532},
                    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                        "weight": 100, "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": _labels(cluster)}}}]}},
                    "containers": [container], "volumes": volumes}},
            "volumeClaimTemplates": [claim]}})
    return objects


def cluster_objects(cluster: Manifest, opts: Options) -> list[dict[str, Any]]:
    """Every object, in apply order."""
    c = cluster.name
    objects: list[dict[str, Any]] = [{
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(cluster, opts, f"{c}-manifest"),
        "data": {"cluster.toml": manifest_for_pods(cluster, opts)}}]
    if opts.secrets_from is not None:
        objects.append(_secret(cluster, opts, f"{c}-ca", "Opaque",
                               {"ca.crt": (Path(opts.secrets_from) / "ca.crt").read_bytes()}))
    objects.append({
        "apiVersion": "v1", "kind": "Service", "metadata": _meta(cluster, opts, c),
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": _labels(cluster),
                 "ports": [{"name": "paxos", "port": PORT}, {"name": "http", "port": HTTP_PORT}]}})
    for agent in cluster.agents:
        objects += agent_objects(cluster, agent.name, opts)
    objects.append({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _meta(cluster, opts, f"{c}-acceptors"),
        "spec": {"minAvailable": len(cluster.acceptors) // 2 + 1,
                 "selector": {"matchLabels": {**_labels(cluster), "paxosctl.dev/acceptor": "true"}}}})
    return objects
