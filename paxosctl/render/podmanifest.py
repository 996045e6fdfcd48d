"""The manifest as the pods read it: the ConfigMap's `cluster.toml`.

The operator's manifest, section by section as they wrote it (durations
keep their text), with two changes: `[transport]` is replaced by TCP with
mutual TLS at the pods' DNS names (a `name_template` that the headless
Service makes true, ports 7100 and 9466, the certificates where the pod
mounts them: `certs/` beside this file), and `[cluster] state_dir` is
left out (the pod's `--state-dir` is its volume). So the same text, saved
beside a `certs/` folder with the client or operator certificate
(`paxosctl render k8s -o manifest`), is what the CLI reads from any host
that reaches the pods; its own state (a `scale`'s topology.json) then
goes beside it, in `.paxosctl/<cluster>`. A manifest of Unix sockets
becomes TLS here: pods share no folder for sockets.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from ..errors import UsageError
from ..manifest import Manifest, display_path, toml_value
from . import names

#: Where the pod mounts things (the StatefulSet in pods.py uses the same).
MANIFEST_DIR = "/etc/paxosctl"
MANIFEST_KEY = "cluster.toml"
MANIFEST_PATH = f"{MANIFEST_DIR}/{MANIFEST_KEY}"
#: The certificates, relative to the manifest: the pod mounts them at /etc/paxosctl/certs.
CERTS = "certs"
CERTS_DIR = f"{MANIFEST_DIR}/{CERTS}"
STATE_DIR = "/var/lib/paxosctl"
PORT = 7100
HTTP_PORT = 9466

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def pod_transport(cluster: str, namespace: str, domain: str) -> dict[str, Any]:
    return {"kind": "tls", "certs": CERTS, "port": PORT, "http_port": HTTP_PORT,
            "name_template": names.name_template(cluster, domain), "namespace": namespace}


def manifest_for_pods(manifest: Manifest, namespace: str, domain: str) -> str:
    """The TOML text of the ConfigMap for `manifest` (read again from its
    file, so that what the operator wrote is what the pods read)."""
    try:
        with open(manifest.path, "rb") as f:
            table = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"{display_path(manifest.path)}: cannot read it again ({e})") from None
    cluster = dict(table["cluster"])
    cluster.pop("state_dir", None)  # the pod's --state-dir wins; elsewhere, beside the file
    table = {**table, "cluster": cluster, "transport": pod_transport(manifest.name, namespace, domain)}
    lines = [f"# {display_path(manifest.path)} for the pods of cluster {manifest.name}, rendered by",
             "# `paxosctl render k8s`: [transport] places every agent at its pod's DNS name.", ""]
    for section, body in table.items():
        _table(lines, (section,), body)
    return "\n".join(lines).rstrip("\n") + "\n"


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else toml_value(key)


def _table(lines: list[str], header: tuple[str, ...], body: dict[str, Any]) -> None:
    """`[header]` with its values, then its sub-tables as `[header.sub]`."""
    values = [(k, v) for k, v in body.items() if not isinstance(v, dict)]
    tables = [(k, v) for k, v in body.items() if isinstance(v, dict)]
    if values or not tables:
        lines.append("[" + ".".join(_key(h) for h in header) + "]")
        lines += [f"{_key(k)} = {toml_value(v)}" for k, v in values]
        lines.append("")
    for key, sub in tables:
        _table(lines, header + (key,), sub)
