"""Every example manifest, rendered as the README says (plain, --secrets,
--cert-manager, --pod-monitor), passes `kubernetes-validate --strict`
against the newest Kubernetes it bundles (offline schemas).

cert-manager's Certificate and the Prometheus operator's PodMonitor are
custom resources: kubernetes-validate has no schema for them (it warns and
skips them), so their required fields are checked by hand here, from
their CRDs (cert-manager.io/v1 Certificate: spec.secretName, spec.issuerRef.name,
and a subject name; monitoring.coreos.com/v1 PodMonitor: spec.selector,
spec.podMetricsEndpoints)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from rendering import EXAMPLES, example, render_k8s

VALIDATE = str(Path(sys.executable).parent / "kubernetes-validate")
CUSTOM = {"Certificate", "PodMonitor"}
VARIANTS = {
    "as-is": (False, ()),
    "secrets": (True, ("--secrets",)),
    "cert-manager": (True, ("--cert-manager", "paxos-ca")),
    "pod-monitor": (False, ("--pod-monitor", "--storage-class", "fast", "--namespace", "db")),
}


def newest_kubernetes() -> str:
    """The newest Kubernetes version whose strict schemas kubernetes-validate bundles."""
    import kubernetes_validate

    bundled = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    found = [m.group(1) for p in bundled.iterdir() if (m := re.fullmatch(r"v(\d+\.\d+\.\d+)-local-strict", p.name))]
    return max(found, key=lambda v: tuple(map(int, v.split("."))))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("manifest", EXAMPLES)
def test_rendered_objects_pass_kubernetes_validate_strict(tmp_short, manifest, variant):
    certs, flags = VARIANTS[variant]
    example(tmp_short, manifest, certs=certs)
    text, objects = render_k8s(tmp_short, manifest, *flags)
    rendered = tmp_short / "rendered.yaml"
    rendered.write_text(text)
    version = newest_kubernetes()
    done = subprocess.run([VALIDATE, "--strict", "-k", version, str(rendered)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    passed = re.findall(r"passed for resource (\S+) against", done.stdout + done.stderr)
    expected = [f"{o['kind'].lower()}/{o['metadata']['name']}" for o in objects if o["kind"] not in CUSTOM]
    assert passed == expected, done.stdout + done.stderr
    for o in objects:
        if o["kind"] in CUSTOM:
            _check_custom(o)
    assert {o["kind"] for o in objects} & CUSTOM == (
        {"Certificate"} if variant == "cert-manager" else {"PodMonitor"} if variant == "pod-monitor" else set())


def _check_custom(o: dict) -> None:
    spec, meta = o["spec"], o["metadata"]
    assert meta["name"] and meta["namespace"]
    if o["kind"] == "Certificate":
        assert o["apiVersion"] == "cert-manager.io/v1"
        assert spec["secretName"] == meta["name"] and spec["issuerRef"]["name"] == "paxos-ca"
        assert spec["issuerRef"]["kind"] in ("Issuer", "ClusterIssuer")
        assert spec["uris"] and spec["dnsNames"] and spec["commonName"]
        assert set(spec["usages"]) <= {"digital signature", "server auth", "client auth"}
        assert spec["privateKey"] == {"algorithm": "ECDSA", "size": 256, "encoding": "PKCS8",
                                      "rotationPolicy": "Always"}
    else:
        assert o["apiVersion"] == "monitoring.coreos.com/v1"
        assert spec["selector"]["matchLabels"]
        assert spec["podMetricsEndpoints"] == [{"port": "http", "path": "/metrics"}]


def test_the_strict_run_refuses_what_kubernetes_would(tmp_short):
    """The check can fail: an unknown field is refused by --strict."""
    example(tmp_short, "replicas.toml", certs=False)
    text, _ = render_k8s(tmp_short, "replicas.toml")
    bad = tmp_short / "bad.yaml"
    bad.write_text(text.replace("  publishNotReadyAddresses: true\n",
                                "  publishNotReadyAddresses: true\n  publishNotReady: true\n"))
    done = subprocess.run([VALIDATE, "--strict", "-k", newest_kubernetes(), str(bad)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0 and "'publishNotReady' was unexpected" in done.stdout + done.stderr
