"""One agent's StatefulSet: a single pod, named for the agent, that runs
`paxosctl agent` with its volume, the manifest and its certificates.

One StatefulSet per agent rather than one for all: an agent's name is its
identity in Paxos (a retired name or its volume must never vote again),
while a StatefulSet's ordinals are dense and reused; with one replica each,
a name is never handed to another pod. `podManagementPolicy: Parallel`
because readiness needs a majority: ordered start-up would wait forever
for the first pod's readiness.

The certificates. The agent refuses a key that its group or others may
read (identity.check_files, as ssh does). Kubernetes writes a Secret's
files owned by root, and with an `fsGroup` (which a non-root pod needs to
read them) adds group read whatever `defaultMode` says (kubernetes issue
57923). So an init container, `certs`, copies them from the projected
Secret volume `tls` into the memory volume `certs`, owned by the agent's
user, mode 0600; a new certificate is picked up when the pod is recreated.
"""

from __future__ import annotations

from typing import Any

from .podmanifest import CERTS_DIR, HTTP_PORT, MANIFEST_DIR, MANIFEST_KEY, MANIFEST_PATH, PORT, STATE_DIR
from . import names, tlsobjects

#: The image's user (Containerfile: `useradd --uid 10001`).
USER_ID = 10001
TERMINATION_LOG = "/dev/termination-log"
#: Where the init container reads the Secrets (not under /etc/paxosctl,
#: the agent's read-only manifest folder).
TLS_DIR = "/run/paxosctl/tls"
#: What one agent asks for: a Python process, its SQLite store and a few
#: hundred connections at most. Memory is limited (an agent that grows past
#: it is restarted), CPU is not (a throttled leader misses heartbeats).
RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
#: The startup probe gives a migration that replays a large store up to
#: 10 minutes (5 s x 120) before liveness applies.
STARTUP = {"periodSeconds": 5, "failureThreshold": 120, "timeoutSeconds": 2}

CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,  # it writes only its volume (state_dir)
    "runAsNonRoot": True,
    "runAsUser": USER_ID,
    "runAsGroup": USER_ID,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def instance_labels(cluster: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "paxosctl", "app.kubernetes.io/instance": cluster}


def pod_labels(cluster: str, agent: str, acceptor: bool) -> dict[str, str]:
    return {**instance_labels(cluster), "paxosctl.dev/agent": agent,
            "paxosctl.dev/acceptor": "true" if acceptor else "false"}


def command(agent: str, *, bootstrap: bool) -> list[str]:
    """The agent's command line; `--bootstrap` only for the manifest's own
    agents: one that `scale` or `replace` adds is admitted by the change."""
    return ["paxosctl", "agent", agent, "-f", MANIFEST_PATH, "--state-dir", STATE_DIR,
            *(["--bootstrap"] if bootstrap else []), "--http", f"0.0.0.0:{HTTP_PORT}"]


def _probe(path: str, **timing: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, **timing}


def _copy_certs(agent: str) -> list[str]:
    """The init container's command: the three files, owned by the agent's user, 0600."""
    files = [("ca.crt", "ca.crt"), (f"agent/{agent}.crt", f"agent/{agent}.crt"),
             (f"agent/{agent}.key", f"agent/{agent}.key")]
    script = " && ".join(f"install -D -m 0600 {TLS_DIR}/{src} {CERTS_DIR}/{dst}" for src, dst in files)
    return ["sh", "-c", script]


def statefulset(cluster: str, agent: str, *, acceptor: bool, bootstrap: bool, image: str,
                storage: str, storage_class: str | None, pod_monitor: bool,
                meta: dict[str, Any]) -> dict[str, Any]:
    """Agent's StatefulSet in `meta`'s namespace (`meta`: namespace and labels)."""
    labels = pod_labels(cluster, agent, acceptor)
    annotations = {} if pod_monitor else {
        "prometheus.io/scrape": "true", "prometheus.io/port": str(HTTP_PORT), "prometheus.io/path": "/metrics"}
    container = {
        "name": "agent",
        "image": image,
        "command": command(agent, bootstrap=bootstrap),
        "env": [{"name": "PAXOSCTL_TERMINATION_LOG", "value": TERMINATION_LOG}],
        "ports": [{"name": "paxos", "containerPort": PORT, "protocol": "TCP"},
                  {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "volumeMounts": [{"name": "data", "mountPath": STATE_DIR},
                         {"name": "manifest", "mountPath": MANIFEST_DIR, "readOnly": True},
                         {"name": "certs", "mountPath": CERTS_DIR, "readOnly": True}],
        "startupProbe": _probe("/healthz", **STARTUP),
        "livenessProbe": _probe("/healthz", periodSeconds=10, timeoutSeconds=2, failureThreshold=3),
        "readinessProbe": _probe("/readyz", periodSeconds=5, timeoutSeconds=2, failureThreshold=2),
        "resources": RESOURCES,
        "terminationMessagePath": TERMINATION_LOG,
        # The refusal line when the agent wrote one, its log's tail after any other failure.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": CONTAINER_SECURITY,
    }
    init = {"name": "certs", "image": image, "command": _copy_certs(agent),
            "volumeMounts": [{"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
                             {"name": "certs", "mountPath": CERTS_DIR}],
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
            "securityContext": CONTAINER_SECURITY}
    tls = {"projected": {"defaultMode": 0o440, "sources": [
        {"secret": {"name": tlsobjects.ca_secret_name(cluster), "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"secret": {"name": tlsobjects.agent_secret_name(cluster, agent), "items": [
            {"key": "tls.crt", "path": f"agent/{agent}.crt"}, {"key": "tls.key", "path": f"agent/{agent}.key"}]}},
    ]}}
    claim: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}}
    if storage_class is not None:
        claim["storageClassName"] = storage_class
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": names.statefulset(cluster, agent), **meta, "labels": labels},
        "spec": {
            "replicas": 1,
            "serviceName": cluster,
            "podManagementPolicy": "Parallel",
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "selector": {"matchLabels": {**instance_labels(cluster), "paxosctl.dev/agent": agent}},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                    "enableServiceLinks": False,  # a Service named like an env var would shadow ours
                    "securityContext": {"runAsNonRoot": True, "runAsUser": USER_ID, "runAsGroup": USER_ID,
                                        "fsGroup": USER_ID, "fsGroupChangePolicy": "OnRootMismatch",
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 100, "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": instance_labels(cluster)}}}]}},
                    "initContainers": [init],
                    "containers": [container],
                    "volumes": [
                        {"name": "manifest", "configMap": {
                            "name": f"{cluster}-manifest", "items": [{"key": MANIFEST_KEY, "path": MANIFEST_KEY}]}},
                        {"name": "tls", **tls},
                        {"name": "certs", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                    ],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data", "labels": instance_labels(cluster)},
                "spec": claim,
            }],
        },
    }
