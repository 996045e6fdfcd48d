"""The rendered Kubernetes objects keep the contract (issue 23's
contract, README "On Kubernetes"): what each object must say for the
cluster to run, read back from `paxosctl render k8s` and from the API the
membership driver calls (`agent_objects`)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from clusters import manifest_text
from rendering import example, paxosctl, render_k8s

from paxosctl.errors import UsageError
from paxosctl.manifest import load_manifest
from paxosctl.render import k8s, names

INSTANCE = {"app.kubernetes.io/name": "paxosctl", "app.kubernetes.io/instance": "demo"}


def _manifest(folder, acceptors: int = 3, name: str = "demo", extra: str = ""):
    path = folder / "cluster.toml"
    path.write_text(manifest_text("roles", name, groups={"proposer": ("proposer", 2),
                                                          "acceptor": ("acceptor", acceptors),
                                                          "learner": ("learner", 1)}) + extra)
    return load_manifest(path)


def _by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


@pytest.mark.parametrize(("acceptors", "min_available"), [(1, 1), (3, 2), (4, 3), (5, 3), (7, 4)],
                         ids=["1->1", "3->2", "4->3", "5->3", "7->4"])
def test_the_disruption_budget_keeps_a_majority_of_acceptors(tmp_short, acceptors, min_available):
    objects = k8s.cluster_objects(_manifest(tmp_short, acceptors), k8s.Options())
    [pdb] = _by_kind(objects, "PodDisruptionBudget")
    assert pdb["metadata"]["name"] == "demo-acceptors"
    assert pdb["spec"] == {"minAvailable": min_available,
                           "selector": {"matchLabels": {**INSTANCE, "paxosctl.dev/acceptor": "true"}}}
    acceptor_pods = [s for s in _by_kind(objects, "StatefulSet")
                     if s["spec"]["template"]["metadata"]["labels"]["paxosctl.dev/acceptor"] == "true"]
    assert len(acceptor_pods) == acceptors


def test_the_service_is_headless_and_publishes_pods_before_they_are_ready(tmp_short):
    [service] = _by_kind(k8s.cluster_objects(_manifest(tmp_short), k8s.Options()), "Service")
    assert service["metadata"]["name"] == "demo"
    spec = service["spec"]
    assert spec["clusterIP"] == "None" and spec["publishNotReadyAddresses"] is True
    assert spec["selector"] == INSTANCE
    assert [(p["name"], p["port"]) for p in spec["ports"]] == [("paxos", 7100), ("http", 9466)]


def test_one_statefulset_per_agent_runs_it_with_its_volume_certificates_and_probes(tmp_short):
    manifest = _manifest(tmp_short)
    objects = k8s.cluster_objects(manifest, k8s.Options(namespace="db", storage="5Gi", storage_class="fast",
                                                        image="reg/paxosctl:1"))
    sets = _by_kind(objects, "StatefulSet")
    assert [s["metadata"]["name"] for s in sets] == [f"demo-{a.name}" for a in manifest.agents]
    for s, agent in zip(sets, manifest.agents):
        spec = s["spec"]
        assert s["metadata"]["namespace"] == "db"
        assert (spec["replicas"], spec["serviceName"], spec["podManagementPolicy"]) == (1, "demo", "Parallel")
        assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
        [claim] = spec["volumeClaimTemplates"]
        assert claim["metadata"]["name"] == "data"
        assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
        assert claim["spec"]["storageClassName"] == "fast"
        pod = spec["template"]
        labels = pod["metadata"]["labels"]
        assert labels == {**INSTANCE, "paxosctl.dev/agent": agent.name,
                          "paxosctl.dev/acceptor": "true" if agent.role == "acceptor" else "false"}
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        assert pod["spec"]["restartPolicy"] == "Always"
        [c] = pod["spec"]["containers"]
        assert c["name"] == "agent" and c["image"] == "reg/paxosctl:1"
        assert c["command"] == ["paxosctl", "agent", agent.name, "-f", "/etc/paxosctl/cluster.toml",
                                "--state-dir", "/var/lib/paxosctl", "--bootstrap", "--http", "0.0.0.0:9466"]
        assert {"name": "PAXOSCTL_TERMINATION_LOG", "value": "/dev/termination-log"} in c["env"]
        assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
        mounts = {m["name"]: (m["mountPath"], m.get("readOnly", False)) for m in c["volumeMounts"]}
        assert mounts == {"data": ("/var/lib/paxosctl", False), "manifest": ("/etc/paxosctl", True),
                          "certs": ("/etc/paxosctl/certs", True)}
        assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert (c["startupProbe"]["periodSeconds"], c["startupProbe"]["failureThreshold"]) == (5, 120)
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["securityContext"]["runAsNonRoot"] and c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        # The certificates: Secrets projected for the init container, copied 0600 for the agent.
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        sources = volumes["tls"]["projected"]["sources"]
        assert sources[0]["secret"] == {"name": "demo-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
        assert sources[1]["secret"] == {"name": f"demo-agent-{agent.name}", "items": [
            {"key": "tls.crt", "path": f"agent/{agent.name}.crt"},
            {"key": "tls.key", "path": f"agent/{agent.name}.key"}]}
        [init] = pod["spec"]["initContainers"]
        assert f"install -D -m 0600 /run/paxosctl/tls/agent/{agent.name}.key " \
               f"/etc/paxosctl/certs/agent/{agent.name}.key" in init["command"][-1]
        assert volumes["manifest"]["configMap"]["name"] == "demo-manifest"
        anti = pod["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        assert anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"


def test_the_configmap_toml_loads_and_places_every_agent_at_its_pod(tmp_short):
    _manifest(tmp_short, extra='\n[transport]\nkind = "unix"\n')  # Unix sockets become TLS
    (tmp_short / "cluster.toml").write_text((tmp_short / "cluster.toml").read_text().replace(
        '[cluster]\nname = "demo"\n', '[cluster]\nname = "demo"\nid = "feedc0de"\n'))
    manifest = load_manifest(tmp_short / "cluster.toml")
    opts = k8s.Options(namespace="db", cluster_domain="k8s.example")
    [config] = _by_kind(k8s.cluster_objects(manifest, opts), "ConfigMap")
    assert config["metadata"]["name"] == "demo-manifest"
    assert config["data"]["cluster.toml"] == k8s.manifest_for_pods(manifest, opts)
    pods_file = tmp_short / "pods" / "cluster.toml"
    pods_file.parent.mkdir()
    pods_file.write_text(config["data"]["cluster.toml"])
    seen = load_manifest(pods_file)  # paxosctl's own loader: every check it makes
    assert seen.transport.tls and seen.cluster_id == "feedc0de"
    assert seen.transport.certs_dir(pods_file) == pods_file.parent / "certs"  # beside it, wherever it is
    assert seen.transport.certs_dir(Path("/etc/paxosctl/cluster.toml")) == Path("/etc/paxosctl/certs")
    assert [a.name for a in seen.agents] == [a.name for a in manifest.agents]
    assert "state_dir" not in config["data"]["cluster.toml"]  # the pod's --state-dir; elsewhere beside it
    for agent in seen.agents:
        placed = seen.transport.placement(agent.name)
        assert placed.address == f"demo-{agent.name}-0.demo.db.svc.k8s.example:7100"
        assert placed.address == names.pod_dns("demo", agent.name, "db", "k8s.example") + ":7100"
        assert placed.listen == "0.0.0.0:7100"
    # Settings the operator wrote reach the pods as written.
    assert seen.paxos == manifest.paxos and seen.health == manifest.health


def test_an_added_agent_starts_without_bootstrap(tmp_short):
    manifest = _manifest(tmp_short)
    [added] = k8s.agent_objects(manifest, "acceptor-3", k8s.Options())
    assert added["metadata"]["name"] == "demo-acceptor-3"
    [c] = added["spec"]["template"]["spec"]["containers"]
    assert "--bootstrap" not in c["command"] and c["command"][:3] == ["paxosctl", "agent", "acceptor-3"]
    assert added["spec"]["template"]["metadata"]["labels"]["paxosctl.dev/acceptor"] == "true"
    [own] = k8s.agent_objects(manifest, "acceptor-0", k8s.Options())
    assert "--bootstrap" in own["spec"]["template"]["spec"]["containers"][0]["command"]
    with pytest.raises(UsageError, match="no group for agent 'witness-0'.*proposer, acceptor, learner"):
        k8s.agent_objects(manifest, "witness-0", k8s.Options())


def test_secrets_carry_the_certificates_certs_init_wrote(tmp_short):
    example(tmp_short, "hosts.toml", certs=True)
    _, objects = render_k8s(tmp_short, "hosts.toml", "--secrets")
    secrets = {o["metadata"]["name"]: o for o in _by_kind(objects, "Secret")}
    assert objects[0]["metadata"]["name"] == "hosts-ca"  # first: the pods mount it
    assert base64.b64decode(secrets["hosts-ca"]["data"]["ca.crt"]) == (tmp_short / "certs" / "ca.crt").read_bytes()
    agent = secrets["hosts-agent-acceptor-1"]
    assert agent["type"] == "kubernetes.io/tls"
    assert base64.b64decode(agent["data"]["tls.key"]) == (tmp_short / "certs/agent/acceptor-1.key").read_bytes()
    assert len(secrets) == 1 + 7


def test_secrets_refuse_certificates_the_agent_would_refuse(tmp_short):
    example(tmp_short, "hosts.toml", certs=True)
    (tmp_short / "certs" / "agent" / "learner-1.crt").write_bytes(
        (tmp_short / "certs" / "agent" / "learner-0.crt").read_bytes())
    done = paxosctl(tmp_short, "render", "k8s", "-f", "hosts.toml", "--secrets")
    assert done.returncode == 2 and done.stdout == "", done
    assert done.stderr.count("\n") == 1 and "learner-1.crt" in done.stderr and "expected spiffe://" in done.stderr


def test_cert_manager_certificates_name_what_certs_issue_names(tmp_short):
    manifest = load_manifest(example(tmp_short, "replicas.toml", certs=True))
    objects = k8s.cluster_objects(manifest, k8s.Options(cert_manager="ClusterIssuer/paxos-ca"))
    certificates = _by_kind(objects, "Certificate")
    assert [c["spec"]["secretName"] for c in certificates] == [f"replicas-agent-replica-{i}" for i in range(3)]
    spec = certificates[1]["spec"]
    assert spec["uris"] == [f"spiffe://{manifest.cluster_id}/agent/replica-1"]
    assert spec["dnsNames"] == ["replica-1", "localhost", "replicas-replica-1-0.replicas.paxos.svc.cluster.local"]
    assert spec["ipAddresses"] == ["127.0.0.1"]
    assert spec["issuerRef"] == {"name": "paxos-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert not _by_kind(objects, "Secret")


def test_json_is_a_v1_list_of_the_same_objects(tmp_short):
    example(tmp_short, "cluster.toml", certs=False)
    _, objects = render_k8s(tmp_short, "cluster.toml")
    done = paxosctl(tmp_short, "render", "k8s", "-f", "cluster.toml", "-o", "json")
    assert done.returncode == 0, done
    assert json.loads(done.stdout) == {"apiVersion": "v1", "kind": "List", "items": objects}
    assert "no [cluster] id" in done.stderr  # the pods would refuse: said, not hidden


@pytest.mark.parametrize(("name", "flags", "message"), [
    ("1st", (), "'1st' is not DNS-safe for Kubernetes: the Service is named after it"),
    ("x" * 45, (), "is too long for Kubernetes: agent proposer-0's StatefulSet"),
    ("demo", ("--namespace", "Paxos"), "--namespace: 'Paxos' is not a namespace name"),
    ("demo", ("--cluster-domain", "-bad"), "--cluster-domain: '-bad' is not a DNS name"),
    ("demo", ("-o", "xml"), "xml"),
    ("demo", ("--cert-manager", "a/b/c"), "--cert-manager: 'a/b/c' is not an issuer"),
    ("demo", ("--secrets",), "--secrets: no certificates folder"),
    ("demo", ("--cert-manager", "ca"), "--cert-manager: cluster.toml has no [cluster] id"),
], ids=["digit-first", "too-long", "namespace", "domain", "format", "issuer", "no-certs", "no-id"])
def test_bad_input_is_one_line_and_exit_2(tmp_short, name, flags, message):
    _manifest(tmp_short, name=name)
    done = paxosctl(tmp_short, "render", "k8s", "-f", "cluster.toml", *flags)
    assert done.returncode == 2 and done.stdout == "", done
    lines = [l for l in done.stderr.splitlines() if not l.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr
