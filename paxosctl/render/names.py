"""The Kubernetes names of a cluster's objects, the DNS names of its pods,
and the checks that they are names Kubernetes accepts.

For cluster C (the manifest's `[cluster] name`) in namespace N: the Service
is `C`, agent A's StatefulSet `C-A`, its one pod `C-A-0`, which the
headless Service makes reachable as `C-A-0.C.N.svc.<cluster domain>`.
Checked here, once, for every name a render will use, so that `kubectl
apply` never refuses half of what was rendered.
"""

from __future__ import annotations

import re
from typing import Iterable

from ..errors import UsageError
from ..manifest import Manifest, display_path
from ..manifest.addresses import DNS_NAME_ALLOWED, is_dns_name

#: A Service's name is an RFC 1035 label: a letter first, then letters,
#: digits and "-", not ending with "-", at most 63 characters.
SERVICE_NAME = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
#: A namespace is an RFC 1123 label.
NAMESPACE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
NAMESPACE_ALLOWED = 'a DNS label: 1 to 63 lowercase letters, digits or "-", not starting or ending with "-"'
#: The longest StatefulSet name: its pods carry the label
#: controller-revision-hash = "<name>-<10 characters>", and a label value
#: is at most 63 characters.
MAX_STATEFULSET_NAME = 52


def statefulset(cluster: str, agent: str) -> str:
    return f"{cluster}-{agent}"


def pod(cluster: str, agent: str) -> str:
    """The StatefulSet's one pod (ordinal 0)."""
    return f"{statefulset(cluster, agent)}-0"


def pod_dns(cluster: str, agent: str, namespace: str, domain: str) -> str:
    """Where the headless Service `cluster` makes agent's pod reachable."""
    return f"{pod(cluster, agent)}.{cluster}.{namespace}.svc.{domain}"


def name_template(cluster: str, domain: str) -> str:
    """The manifest's `name_template` giving every agent its pod's DNS name
    (`{namespace}` comes from `[transport] namespace`)."""
    return f"{cluster}-{{name}}-0.{cluster}.{{namespace}}.svc.{domain}"


def check_namespace(namespace: str) -> None:
    if not NAMESPACE.fullmatch(namespace):
        raise UsageError(f"--namespace: {namespace!r:.80} is not a namespace name; allowed: {NAMESPACE_ALLOWED}")


def check_domain(domain: str) -> None:
    if not is_dns_name(domain) or domain != domain.lower():
        raise UsageError(f"--cluster-domain: {domain!r:.80} is not a DNS name; allowed: lowercase "
                         f"{DNS_NAME_ALLOWED}")


def check_cluster(manifest: Manifest, agents: Iterable[str], namespace: str, domain: str) -> None:
    """Refuse a cluster name (or an agent name) that would make a name
    Kubernetes refuses: the Service's, a StatefulSet's, a pod's DNS name."""
    where = f"{display_path(manifest.path)}: cluster.name"
    name = manifest.name
    if not SERVICE_NAME.fullmatch(name):
        raise UsageError(f"{where}: {name!r} is not DNS-safe for Kubernetes: the Service is named after "
                         'it; allowed: a lowercase letter first, then lowercase letters, digits or "-", '
                         'not ending with "-"')
    for agent in agents:
        set_name = statefulset(name, agent)
        if len(set_name) > MAX_STATEFULSET_NAME:
            raise UsageError(f"{where}: {name!r} is too long for Kubernetes: agent {agent}'s StatefulSet "
                             f"{set_name} has {len(set_name)} characters; allowed: at most "
                             f"{MAX_STATEFULSET_NAME} (a shorter cluster name)")
        dns = pod_dns(name, agent, namespace, domain)
        if not is_dns_name(dns):
            raise UsageError(f"{where}: agent {agent}'s pod would be {dns}, not a DNS name; allowed: "
                             f"shorter names ({DNS_NAME_ALLOWED})")
