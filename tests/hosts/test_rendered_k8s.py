"""The Kubernetes objects of issue 23 run on namespace hosts (kubelet.py): the
example manifest's pods start as their StatefulSets say, get Ready, serve a
client, come back with their volume after a power cut, and a wiped
acceptor's pod ends in CrashLoopBackOff with its refusal as its message.
The objects are `paxosctl.render.k8s`'s, as `paxosctl render k8s` prints them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from paxosctl.render import k8s as K8S
import pytest
from kubelet import Kubelet
from mounts import MOUNT_POINTS, Bind, wrap

from paxosctl.manifest import load_manifest

EXAMPLE = Path(__file__).parents[2] / "examples" / "replicas.toml"
PAXOSCTL = str(Path(sys.executable).parent / "paxosctl")
NAMESPACE = "paxos"


class Cluster:
    """examples/replicas.toml, certified, rendered and applied; a client host for the CLI."""

    def __init__(self, kubelet: Kubelet, folder: Path) -> None:
        self.kubelet = kubelet
        manifest = folder / "replicas.toml"
        shutil.copy(EXAMPLE, manifest)
        made = subprocess.run([PAXOSCTL, "certs", "init", "-f", str(manifest)], capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        self.manifest = load_manifest(manifest)
        self.opts = K8S.Options(namespace=NAMESPACE, secrets_from=folder / "certs")
        self.objects = K8S.cluster_objects(self.manifest, self.opts)
        self.pods = [f"replicas-{a.name}-0" for a in self.manifest.agents]
        # The client's /etc/paxosctl: the pods' manifest and the client certificate.
        self.client_etc = folder / "client-etc"
        (self.client_etc / "certs" / "client").mkdir(parents=True)
        (self.client_etc / "cluster.toml").write_text(K8S.manifest_for_pods(self.manifest, self.opts))
        for name in ("ca.crt", "client/client.crt", "client/client.key"):
            shutil.copy2(folder / "certs" / name, self.client_etc / "certs" / name)
        self.client = kubelet.network["client"]
        self._held = MOUNT_POINTS.hold([(Path("/etc/paxosctl"), False)])

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """`paxosctl ARGS -f /etc/paxosctl/cluster.toml` on the client host."""
        argv = [PAXOSCTL, *args, "-f", "/etc/paxosctl/cluster.toml"]
        command = wrap(argv, [Bind(self.client_etc, Path("/etc/paxosctl"))],
                       env={"PATH": "/usr/bin:/bin"}, cwd="/etc/paxosctl")
        return self.client.run(command, timeout=timeout)

    def objects_of(self, agent: str) -> list[dict]:
        return K8S.agent_objects(self.manifest, agent, self.opts)

    def close(self) -> None:
        MOUNT_POINTS.release(self._held)


@pytest.fixture
def cluster(make_hosts, tmp_path: Path) -> Iterator[Cluster]:
    kubelet = Kubelet(make_hosts(["client"]), time_scale=0.05)
    made = Cluster(kubelet, tmp_path)
    try:
        yield made
    finally:
        kubelet.close()
        made.close()


def test_the_pods_serve_and_a_killed_pod_rejoins_with_its_volume(cluster: Cluster) -> None:
    kubelet = cluster.kubelet
    kubelet.apply(cluster.objects)
    kubelet.wait_ready(cluster.pods, 60)
    first = cluster.cli("propose", "before")
    assert first.returncode == 0, first.stderr
    victim = kubelet.pods["replicas-replica-1-0"]
    store = victim.host.volume / "state" / "replica-1.db"
    assert store.exists()
    victim.host.kill_all()  # its power cut: the kubelet restarts the container after the back-off
    kubelet.wait_for(lambda: victim.status().restarts == 1 and victim.status().ready, 30,
                     "replica-1 restarted and Ready")
    assert victim.status().last_exit_code == 137  # 128 + SIGKILL
    assert store.exists()
    # replica-2 gone for good (its volume retained): a majority needs replica-1 back as a voter.
    kubelet.delete("StatefulSet", "replicas-replica-2", NAMESPACE)
    assert "replicas-replica-2-0" not in kubelet.pods
    second = cluster.cli("propose", "with-replica-1-back", timeout=60)
    assert second.returncode == 0, second.stderr
    # Applied again, it finds its claim's volume (Retain) and rejoins.
    kept = kubelet.network["replicas-replica-2-0"].volume / "state" / "replica-2.db"
    assert kept.exists()
    kubelet.apply(cluster.objects_of("replica-2"))
    kubelet.wait_ready(["replicas-replica-2-0"], 30)


def test_a_wiped_acceptor_pod_ends_in_crash_loop_back_off_with_its_refusal(cluster: Cluster) -> None:
    kubelet = cluster.kubelet
    kubelet.apply(cluster.objects)
    kubelet.wait_ready(cluster.pods, 60)
    assert cluster.cli("propose", "before").returncode == 0
    victim = kubelet.pods["replicas-replica-2-0"]
    victim.host.lose_disk()
    # Kubernetes cannot skip exit 78: the pod is restarted, refused again, and waits in CrashLoopBackOff.
    kubelet.wait_for(lambda: victim.status().last_exit_code == 78 and victim.status().restarts >= 2
                     and victim.status().reason == "CrashLoopBackOff", 30, "replica-2 in CrashLoopBackOff")
    status = victim.status()
    assert not status.ready
    # The agent writes its one refusal line to PAXOSCTL_TERMINATION_LOG: that is
    # the whole message (not FallbackToLogsOnError's log tail).
    assert status.message is not None and len(status.message.strip().splitlines()) == 1, status.message
    assert status.message.startswith("replica-2 starts with an empty store, but ") and \
        status.message.strip().endswith("paxosctl replace replica-2"), status.message
    after = cluster.cli("propose", "after")
    assert after.returncode == 0, after.stderr


#: A kubectl for the client host: `apply -f -` and `delete statefulset` handed
#: to the test's kubelet through a spool folder (the test answers each).
FAKE_KUBECTL = """#!{python}
import json, sys, time
from pathlib import Path
spool = Path({spool!r})
args = sys.argv[1:]
if args[:1] == ["apply"]:
    body = {{"args": args, "yaml": sys.stdin.read()}}
elif args[:2] == ["delete", "statefulset"]:
    body = {{"args": args}}
else:
    sys.exit(f"kubectl (test): {{' '.join(args)}} is not modelled")
request = spool / f"{{time.time_ns()}}.req"
request.with_suffix(".tmp").write_text(json.dumps(body))
request.with_suffix(".tmp").rename(request)
answer, deadline = request.with_suffix(".done"), time.monotonic() + 60
while not answer.exists():
    if time.monotonic() > deadline:
        sys.exit("kubectl (test): the kubelet did not answer")
    time.sleep(0.02)
if answer.read_text():
    sys.exit(answer.read_text())
"""


class KubectlSpool:
    """The test's side of FAKE_KUBECTL: applies and deletes on the kubelet."""

    def __init__(self, kubelet: Kubelet, folder: Path) -> None:
        import threading

        self.kubelet, self.folder = kubelet, folder
        folder.mkdir()
        self.calls: list[list[str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        import json

        import yaml

        while not self._stop.wait(0.02):
            for request in sorted(self.folder.glob("*.req")):
                body = json.loads(request.read_text())
                args = body["args"]
                namespace = args[args.index("-n") + 1] if "-n" in args else "default"
                error = ""
                try:
                    if args[0] == "apply":
                        self.kubelet.apply([o for o in yaml.safe_load_all(body["yaml"]) if o])
                    elif ("StatefulSet", namespace, args[2]) in self.kubelet.objects:
                        self.kubelet.delete("StatefulSet", args[2], namespace)
                except Exception as e:  # noqa: BLE001 - the CLI shows it as kubectl's error
                    error = f"error: {e}"
                self.calls.append(args)
                request.with_suffix(".done").write_text(error)
                request.unlink()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def test_scale_and_replace_through_kubectl(cluster: Cluster, tmp_path: Path) -> None:
    """`paxosctl scale replica=5 --engine k8s --apply` from the client host:
    the added agents' StatefulSets rendered and applied (kubectl, here the
    test's kubelet), the change in force, then 5 -> 3 deletes them; a wiped
    replica replaced by a new name, and the retired name refused for good."""
    kubelet = cluster.kubelet
    kubelet.apply(cluster.objects)
    kubelet.wait_ready(cluster.pods, 60)
    # The operator's part before a scale: a certificate for each new name (on the
    # admin machine, here the client's certs/ too: --secrets renders its Secret).
    folder = cluster.manifest.path.parent
    copied = ["operator/operator.crt", "operator/operator.key"]
    for name in ("replica-3", "replica-4"):
        issued = subprocess.run([PAXOSCTL, "certs", "issue", name, "-f", str(cluster.manifest.path)],
                                capture_output=True, text=True)
        assert issued.returncode == 0, issued.stderr
        copied += [f"agent/{name}.crt", f"agent/{name}.key"]
    for name in copied:
        (cluster.client_etc / "certs" / name).parent.mkdir(exist_ok=True)
        shutil.copy2(folder / "certs" / name, cluster.client_etc / "certs" / name)
    spool = KubectlSpool(kubelet, tmp_path / "spool")
    kubectl = cluster.client_etc / "kubectl"
    kubectl.write_text(FAKE_KUBECTL.format(python=sys.executable, spool=str(spool.folder)))
    kubectl.chmod(0o755)
    try:
        grown = cluster.cli("scale", "replica=5", "--engine", "k8s", "--apply", "--secrets", "-n", NAMESPACE,
                            "--kubectl", "/etc/paxosctl/kubectl", "--timeout", "90", timeout=120)
        assert grown.returncode == 0, grown.stderr
        assert [c[:1] for c in spool.calls] == [["apply"], ["apply"]], spool.calls
        kubelet.wait_ready(["replicas-replica-3-0", "replicas-replica-4-0"], 30)
        assert ("Secret", NAMESPACE, "replicas-agent-replica-3") in kubelet.objects
        pod = kubelet.objects[("StatefulSet", NAMESPACE, "replicas-replica-3")]
        assert "--bootstrap" not in pod["spec"]["template"]["spec"]["containers"][0]["command"]
        status = cluster.cli("status", "-o", "json")
        assert status.returncode == 0, status.stdout  # all five answer
        assert cluster.cli("propose", "with-five").returncode == 0
        shrunk = cluster.cli("scale", "replica=3", "--engine", "k8s", "--apply", "-n", NAMESPACE,
                             "--kubectl", "/etc/paxosctl/kubectl", "--timeout", "90", timeout=120)
        assert shrunk.returncode == 0, shrunk.stderr
        assert sorted(c[2] for c in spool.calls if c[0] == "delete") == [
            "replicas-replica-3", "replicas-replica-4"]
        assert "replicas-replica-3-0" not in kubelet.pods and "replicas-replica-4-0" not in kubelet.pods
        after = cluster.cli("propose", "with-three")
        assert after.returncode == 0, after.stderr
        # replica-2's disk lost: its pod loops on its refusal until it is replaced
        # by the group's next name never used (replica-5), with its volume kept.
        victim = kubelet.pods["replicas-replica-2-0"]
        victim.host.lose_disk()
        kubelet.wait_for(lambda: victim.status().last_exit_code == 78, 30, "replica-2 refused")
        issued = subprocess.run([PAXOSCTL, "certs", "issue", "replica-5", "-f", str(cluster.manifest.path)],
                                capture_output=True, text=True)
        assert issued.returncode == 0, issued.stderr
        for name in ("agent/replica-5.crt", "agent/replica-5.key"):
            shutil.copy2(folder / "certs" / name, cluster.client_etc / "certs" / name)
        replaced = cluster.cli("replace", "replica-2", "--engine", "k8s", "--apply", "--secrets", "-n",
                               NAMESPACE, "--kubectl", "/etc/paxosctl/kubectl", "--timeout", "90",
                               timeout=120)
        assert replaced.returncode == 0, replaced.stderr
        assert "replace replica-2 by replica-5: in force after" in replaced.stdout, replaced.stdout
        assert "replicas-replica-2-0" not in kubelet.pods and ("StatefulSet", NAMESPACE,
                                                               "replicas-replica-2") not in kubelet.objects
        kubelet.wait_ready(["replicas-replica-5-0"], 30)
        last = cluster.cli("propose", "with-replica-5")
        assert last.returncode == 0, last.stderr
        # The retired name is refused by every member, even with its StatefulSet applied again.
        kubelet.apply(cluster.objects_of("replica-2"))
        again = kubelet.pods["replicas-replica-2-0"]
        kubelet.wait_for(lambda: again.status().last_exit_code == 78, 30, "replica-2 refused again")
        assert "retired" in (again.status().message or ""), again.status().message
    finally:
        spool.close()
