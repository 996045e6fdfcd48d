"""The launchers of paxosctl/membership/launchers.py against a fake kubectl
and systemctl (scripts that record their arguments and stdin). The render
package (issue 23's contract, another branch) is stood in for by a module
with the contract's names, so these run before it lands."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from paxosctl.manifest import AgentSpec, load_manifest
from paxosctl.membership.launchers import KubernetesLauncher, LaunchFailed, SystemdLauncher

MANIFEST = """\
[cluster]
name = "far"
id = "far-1"
[agents.replica]
role = "replica"
replicas = 3
[transport]
kind = "tls"
name_template = "{name}.far.svc"
"""
ADDED = AgentSpec("replica-3", "replica", "replica", 3)


@pytest.fixture
def render(monkeypatch):
    """A stand-in `paxosctl.render`: agent_objects names the agent and the agents it saw."""
    k8s = types.SimpleNamespace(
        Options=lambda **kw: kw,
        agent_objects=lambda cluster, name, opts: [
            {"kind": "StatefulSet", "metadata": {"name": f"{cluster.name}-{name}",
                                                 "namespace": opts["namespace"]},
             "agents": [a.name for a in cluster.agents]}],
        to_yaml=lambda objects: json.dumps(objects) + "\n")
    systemd = types.SimpleNamespace(
        Options=lambda **kw: kw,
        unit_name=lambda cluster, agent: f"paxosctl-{cluster.name}-{agent}.service",
        units=lambda cluster, host, opts: {f"paxosctl-{cluster.name}-{a.name}.service":
                                           f"[Service]\nExecStart=paxosctl agent {a.name}\n"
                                           for a in cluster.agents})
    module = types.ModuleType("paxosctl.render")
    module.k8s, module.systemd = k8s, systemd
    monkeypatch.setitem(sys.modules, "paxosctl.render", module)


def fake_tool(tmp_path: Path, name: str, code: int = 0) -> tuple[str, Path]:
    """A script that appends its argv and stdin to a log, then exits `code`."""
    log = tmp_path / f"{name}.log"
    script = tmp_path / name
    script.write_text(f"#!{sys.executable}\nimport json, sys\n"
                      f"data = sys.stdin.read() if '-' in sys.argv else ''\n"
                      f"open({str(log)!r}, 'a').write(json.dumps([sys.argv[1:], data]) + '\\n')\n"
                      f"print('boom', file=sys.stderr) if {code} else None\nsys.exit({code})\n")
    script.chmod(0o755)
    return str(script), log


def calls(log: Path) -> list:
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture
def manifest(tmp_path):
    (tmp_path / "cluster.toml").write_text(MANIFEST)
    return load_manifest(tmp_path / "cluster.toml")


def test_kubernetes_apply_pipes_the_added_agents_objects_and_deletes_a_removed_one(render, manifest, tmp_path):
    kubectl, log = fake_tool(tmp_path, "kubectl")
    said: list[str] = []
    launcher = KubernetesLauncher(manifest, "paxos", "img:1", True, kubectl, out=said.append, err=said.append)
    launcher.start(ADDED, "scale replica 3 -> 4")
    launcher.stop("replica-0", "scale replica 4 -> 3", False)
    (apply_argv, objects), (delete_argv, _) = calls(log)
    assert apply_argv == ["apply", "-n", "paxos", "-f", "-"]
    assert json.loads(objects)[0]["metadata"]["name"] == "far-replica-3"
    assert json.loads(objects)[0]["agents"] == ["replica-0", "replica-1", "replica-2", "replica-3"]
    assert delete_argv == ["delete", "statefulset", "far-replica-0", "-n", "paxos", "--ignore-not-found"]
    assert launcher.failed("replica-3") is None


def test_kubernetes_without_apply_prints_the_objects_and_says_what_to_apply(render, manifest, tmp_path):
    kubectl, log = fake_tool(tmp_path, "kubectl")
    out: list[str] = []
    err: list[str] = []
    KubernetesLauncher(manifest, "paxos", "img:1", False, kubectl, out=out.append, err=err.append).start(
        ADDED, "scale replica 3 -> 4")
    assert json.loads(out[0])[0]["kind"] == "StatefulSet"
    assert err == ["apply replica-3's objects above (scale replica 3 -> 4): kubectl apply -n paxos -f -"]
    assert not log.exists()


def test_a_failing_kubectl_is_one_line(render, manifest, tmp_path):
    kubectl, _ = fake_tool(tmp_path, "kubectl", code=1)
    launcher = KubernetesLauncher(manifest, "paxos", "img:1", True, kubectl, out=print, err=print)
    with pytest.raises(LaunchFailed, match="kubectl apply -n exited 1: boom"):
        launcher.start(ADDED, "scale")


def test_systemd_apply_writes_the_unit_and_enables_it_then_disables_a_removed_one(render, manifest, tmp_path):
    systemctl, log = fake_tool(tmp_path, "systemctl")
    units = tmp_path / "units"
    launcher = SystemdLauncher(manifest, True, units, systemctl, out=print, err=print)
    launcher.start(ADDED, "scale")
    launcher.stop("replica-0", "scale", False)
    assert (units / "paxosctl-far-replica-3.service").read_text().endswith("agent replica-3\n")
    assert [argv for argv, _ in calls(log)] == [
        ["daemon-reload"], ["enable", "--now", "paxosctl-far-replica-3.service"],
        ["disable", "--now", "paxosctl-far-replica-0.service"]]
