"""The launchers of paxosctl/membership/launchers.py against a fake kubectl
and systemctl (scripts that record their arguments and stdin). The render
package (issue 23's contract, another branch) is stood in for by a module
with the contract's names, so these run before it lands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from paxosctl.manifest import AgentSpec, load_manifest
from paxosctl.render import k8s
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


def test_kubernetes_apply_pipes_the_added_agents_objects_and_deletes_a_removed_one(manifest, tmp_path):
    kubectl, log = fake_tool(tmp_path, "kubectl")
    said: list[str] = []
    launcher = KubernetesLauncher(manifest, k8s.Options(namespace="paxos", image="img:1"), True, kubectl, out=said.append, err=said.append)
    launcher.start(ADDED, "scale replica 3 -> 4")
    launcher.stop("replica-0", "scale replica 4 -> 3", False)
    (apply_argv, objects), (delete_argv, _) = calls(log)
    assert apply_argv == ["apply", "-n", "paxos", "-f", "-"]
    [statefulset] = [o for o in yaml.safe_load_all(objects) if o["kind"] == "StatefulSet"]
    assert statefulset["metadata"]["name"] == "far-replica-3"
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "img:1"
    # Added by a change: its peers admit it as such, never as a new cluster's.
    assert container["command"][:3] == ["paxosctl", "agent", "replica-3"]
    assert "--bootstrap" not in container["command"]
    assert delete_argv == ["delete", "statefulset", "far-replica-0", "-n", "paxos", "--ignore-not-found"]
    assert launcher.failed("replica-3") is None


def test_kubernetes_without_apply_prints_the_objects_and_says_what_to_apply(manifest, tmp_path):
    kubectl, log = fake_tool(tmp_path, "kubectl")
    out: list[str] = []
    err: list[str] = []
    KubernetesLauncher(manifest, k8s.Options(namespace="paxos", image="img:1"), False, kubectl, out=out.append, err=err.append).start(
        ADDED, "scale replica 3 -> 4")
    assert [o["kind"] for o in yaml.safe_load_all(out[0])] == ["StatefulSet"]
    assert err == ["apply replica-3's objects above (scale replica 3 -> 4): kubectl apply -n paxos -f -"]
    assert not log.exists()


def test_a_failing_kubectl_is_one_line(manifest, tmp_path):
    kubectl, _ = fake_tool(tmp_path, "kubectl", code=1)
    launcher = KubernetesLauncher(manifest, k8s.Options(namespace="paxos", image="img:1"), True, kubectl, out=print, err=print)
    with pytest.raises(LaunchFailed, match="kubectl apply -n exited 1: boom"):
        launcher.start(ADDED, "scale")


def test_systemd_apply_writes_the_unit_and_enables_it_then_disables_a_removed_one(manifest, tmp_path):
    systemctl, log = fake_tool(tmp_path, "systemctl")
    units = tmp_path / "units"
    launcher = SystemdLauncher(manifest, True, units, systemctl, out=print, err=print)
    launcher.start(ADDED, "scale")
    launcher.stop("replica-0", "scale", False)
    unit = (units / "paxosctl-far-replica-3.service").read_text()
    assert " agent replica-3 " in unit and "--bootstrap" not in unit
    assert [argv for argv, _ in calls(log)] == [
        ["daemon-reload"], ["enable", "--now", "paxosctl-far-replica-3.service"],
        ["disable", "--now", "paxosctl-far-replica-0.service"]]
