"""Kubernetes objects run on namespace hosts, as a kubelet and the StatefulSet
controller would run them, and nothing more (not a test module).

    kubelet = Kubelet(make_hosts(["client"]), time_scale=0.05)
    kubelet.apply(objects)                      # plain dicts, the Kubernetes API's shapes
    kubelet.wait_ready(["demo-replica-0-0", ...])
    kubelet.pods["demo-replica-0-0"].status()   # phase, ready, restarts, last exit, message
    kubelet.delete("StatefulSet", "demo-replica-0")

What each kind does here:
- ConfigMap, Secret: kept; their data is written as files when a pod that
  mounts them starts (data, binaryData, a Secret's base64 data and
  stringData). A change reaches pods started after it only.
- Service: must be headless with `publishNotReadyAddresses: true` (the
  only kind modelled): each pod of a StatefulSet naming it in
  `serviceName` is `<pod>.<service>.<namespace>.svc.<cluster_domain>` in
  every host's hosts file from the moment the pod exists.
- StatefulSet: pods `<name>-0` .. `<name>-<replicas-1>`, each a namespace
  host of its own named for the pod (its own address); started all at
  once (`podManagementPolicy: Parallel`) or each once the one before is
  Ready (`OrderedReady`, the default). A change of `replicas` adds or
  removes the highest pods; another change of the template is refused
  (rolling updates are not modelled). `delete` stops its pods; their
  volume stays (a PVC's Retain) and a pod made again gets it back.
- PodDisruptionBudget: ignored. It only limits voluntary evictions (a
  drain), and nothing here evicts a pod.
- Anything else: refused with KubeletError, naming what is run.

A pod's init containers run first, once per pod, in order, each to a
zero exit (a failure is KubeletError: the kubelet's retry is not
modelled), with their own volumeMounts; an `emptyDir` is a folder of the
pod's, kept across container restarts. Then its one container runs its own `command` + `args` (with `$(VAR)`
expanded from its env), its `env` (values only) plus PATH (the test
venv's bin first: that is the image), HOSTNAME and HOME, nothing of the
test run's, in `workingDir` (default /), under the pod's name as host
name, in a private mount namespace (`mounts.py`) where its volumeMounts
are real: a `volumeClaimTemplates` claim is the host's volume (kept
across restarts and deletes: `wipe()` it to lose the disk), a ConfigMap,
Secret or projected volume is a folder of files bind-mounted (read-only
if `readOnly`), with `defaultMode`/`mode` honoured (0644 by default, as
Kubernetes does), and `terminationMessagePath` (default
/dev/termination-log) is a per-pod file, emptied before each start.

Restarts: `restartPolicy: Always` (the only one a StatefulSet allows):
every exit is restarted, exit 78 included, after the CrashLoopBackOff
back-off: 10 s doubling to 300 s, back to 10 s after 10 min of running,
all multiplied by `time_scale` so tests stay quick (0.05: 0.5 s to 15 s,
reset after 30 s). While it waits, the container is `waiting` with reason
`CrashLoopBackOff`. When a run ends, its termination message is the file
at terminationMessagePath (4096 bytes at most) or, with
`terminationMessagePolicy: FallbackToLogsOnError`, an empty file and a
non-zero exit, the last 80 lines (2048 bytes at most) of its log.

Probes: startupProbe (until it succeeds the others wait; failureThreshold
failures kill the container), livenessProbe (failureThreshold failures in
a row kill it: SIGTERM, SIGKILL after the grace period), readinessProbe
(the `ready` flag: successThreshold successes make it, failureThreshold
failures unmake it; false after each start). httpGet only (a named port
is looked up in the container's ports), sent from inside the pod's
network namespace to the pod's own address. initialDelaySeconds,
periodSeconds and the grace period are multiplied by `time_scale`;
timeoutSeconds is not (a busy machine must not fail a probe for being
quick).

Not modelled (accepted and ignored, as on a one-node cluster whose
runtime runs everything as root): image and its pull, resources,
securityContext (the processes run as root), affinity, annotations,
updateStrategy, persistentVolumeClaimRetentionPolicy (always Retain),
storage classes and sizes. The pod also sees the machine's file system
outside its mounts, where a container would see only its image.
"""

from __future__ import annotations

import base64
import copy
import ctypes
import http.client
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hosts import Host, Network, RunState, Runner
from mounts import MOUNT_POINTS, Bind, wrap

#: The "image": the test venv's programs first, then the usual system ones.
BIN = Path(sys.executable).parent
IMAGE_PATH = f"{BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: The kubelet's CrashLoopBackOff, before `time_scale`: initial, cap, and
#: how long a run must last for the back-off to start over.
BACKOFF_SECONDS, MAX_BACKOFF_SECONDS, BACKOFF_RESET_SECONDS = 10.0, 300.0, 600.0
#: Kubernetes' limits on a termination message and on its fallback from the log.
MESSAGE_BYTES, LOG_TAIL_BYTES, LOG_TAIL_LINES = 4096, 2048, 80

_CLONE_NEWNET = 0x40000000
_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
#: The line Host.popen writes to a log before each start.
_START_LINE = re.compile(rb"^--- \d\d:\d\d:\d\d .*\n", re.MULTILINE)


class KubeletError(RuntimeError):
    """An object this kubelet cannot run, or a pod that did not get where asked."""


def _meta(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    if "name" not in meta:
        raise KubeletError(f"a {obj.get('kind')} without metadata.name")
    return meta.get("namespace", "default"), meta["name"]


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)`: a defined variable's value, an undefined one left as written, `$$` -> `$`."""
    return _VAR.sub(lambda m: "$" if m[0] == "$$" else env.get(m[1], m[0]), text)


@dataclass(frozen=True, slots=True)
class Probe:
    """One of a container's probes (httpGet), Kubernetes' defaults filled in."""

    path: str
    port: int
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int

    @classmethod
    def of(cls, spec: Mapping[str, Any] | None, ports: Mapping[str, int], scale: float) -> Probe | None:
        if spec is None:
            return None
        if set(spec) & {"exec", "tcpSocket", "grpc"} or "httpGet" not in spec:
            raise KubeletError(f"probe {spec}: only httpGet probes are modelled")
        get = spec["httpGet"]
        if get.get("scheme", "HTTP") != "HTTP" or "host" in get:
            raise KubeletError(f"probe {get}: only HTTP to the pod's own address is modelled")
        port = get["port"]
        if isinstance(port, str):
            if port not in ports:
                raise KubeletError(f"probe port {port!r}: the container has no port of that name; "
                                   f"it has: {', '.join(ports) or 'none'}")
            port = ports[port]
        return cls(path=get.get("path", "/"), port=int(port),
                   initial_delay=spec.get("initialDelaySeconds", 0) * scale,
                   period=spec.get("periodSeconds", 10) * scale,
                   timeout=float(spec.get("timeoutSeconds", 1)),
                   success_threshold=spec.get("successThreshold", 1),
                   failure_threshold=spec.get("failureThreshold", 3))


@dataclass(frozen=True, slots=True)
class PodStatus:
    """What `kubectl get pod` / `describe` would show of a pod and its one container."""

    phase: str                  # Pending (not started yet), Running (restartPolicy Always never ends)
    ready: bool
    restarts: int
    state: str                  # waiting | running
    reason: str | None          # ContainerCreating | CrashLoopBackOff while waiting
    last_exit_code: int | None  # of the last run that ended (128 + signal when killed by one)
    message: str | None         # its termination message


class Pod:
    """One pod of a StatefulSet on a namespace host of its own; made by `Kubelet`."""

    def __init__(self, kubelet: Kubelet, namespace: str, name: str, template: Mapping[str, Any],
                 host: Host, owner: str) -> None:
        self.kubelet = kubelet
        self.namespace, self.name = namespace, name
        #: Its StatefulSet's name.
        self.owner = owner
        self.host = host
        self.spec = template["spec"]
        self.labels = dict((template.get("metadata") or {}).get("labels") or {})
        containers = self.spec.get("containers") or []
        if len(containers) != 1:
            raise KubeletError(f"pod {name}: one container (and its init containers) is modelled")
        #: Run once, in order, each to a zero exit, before the container's first start.
        self.init_containers = list(self.spec.get("initContainers") or [])
        if self.spec.get("restartPolicy", "Always") != "Always":
            raise KubeletError(f"pod {name}: restartPolicy {self.spec['restartPolicy']!r}; "
                               "a StatefulSet's pods allow only Always")
        self.container = containers[0]
        if not self.container.get("command"):
            raise KubeletError(f"pod {name}: no command (the image's entrypoint is not modelled)")
        scale = kubelet.time_scale
        ports = {p["name"]: p["containerPort"] for p in self.container.get("ports", []) if "name" in p}
        self.startup = Probe.of(self.container.get("startupProbe"), ports, scale)
        self.liveness = Probe.of(self.container.get("livenessProbe"), ports, scale)
        self.readiness = Probe.of(self.container.get("readinessProbe"), ports, scale)
        self.grace = self.spec.get("terminationGracePeriodSeconds", 30) * scale
        #: Per pod, outside the host's volume (which is the PVC's).
        self.folder = host.folder / "pod"
        self.termination_log = self.folder / "termination-log"
        self.runner: Runner | None = None
        self._ready = False
        self._message: str | None = None
        self._last_exit: int | None = None
        self._held: list[Path] = []
        self._stop = threading.Event()
        self._prober = threading.Thread(target=self._probe_loop, name=f"prober-{name}", daemon=True)

    def __repr__(self) -> str:
        return f"Pod({self.name}, {self.status()})"

    # ------------------------------------------------------------ starting

    def _env(self, container: Mapping[str, Any] | None = None) -> dict[str, str]:
        env = {"PATH": IMAGE_PATH, "HOSTNAME": self.name, "HOME": "/root"}
        for item in (container or self.container).get("env", []):
            if "value" not in item:
                raise KubeletError(f"pod {self.name}: env {item.get('name')}: only `value` is modelled")
            env[item["name"]] = expand(str(item["value"]), env)
        return env

    def _volumes(self) -> dict[str, Path]:
        """Each volume of the pod as a machine folder, its files written now."""
        claims = [c["metadata"]["name"] for c in self.kubelet.claims_of(self)]
        if len(claims) > 1:
            raise KubeletError(f"pod {self.name}: one volume claim (the host's volume) is modelled, got {claims}")
        folders = {claim: self.host.volume for claim in claims}
        for volume in self.spec.get("volumes", []):
            folder = self.folder / "volumes" / volume["name"]
            folder.mkdir(parents=True, exist_ok=True)
            if "configMap" in volume or "secret" in volume:
                source = volume.get("configMap") or volume["secret"]
                kind = "ConfigMap" if "configMap" in volume else "Secret"
                name = source.get("name") or source.get("secretName")
                self._project(folder, kind, name, source.get("items"), source.get("defaultMode", 0o644))
            elif "emptyDir" in volume:
                pass  # the folder itself: the pod's, kept across container restarts
            elif "projected" in volume:
                mode = volume["projected"].get("defaultMode", 0o644)
                for src in volume["projected"]["sources"]:
                    (kind, body), = src.items()
                    kinds = {"secret": "Secret", "configMap": "ConfigMap"}
                    if kind not in kinds:
                        raise KubeletError(f"pod {self.name}: projected {kind}: only secret and configMap")
                    self._project(folder, kinds[kind], body["name"], body.get("items"), mode)
            else:
                raise KubeletError(f"pod {self.name}: volume {volume['name']}: only configMap, secret, "
                                   "projected, emptyDir and volume claims are modelled")
            folders[volume["name"]] = folder
        return folders

    def _project(self, folder: Path, kind: str, name: str, items: list[dict[str, Any]] | None,
                 mode: int) -> None:
        data = self.kubelet.data_of(kind, self.namespace, name)
        chosen = items if items is not None else [{"key": key, "path": key} for key in data]
        for item in chosen:
            if item["key"] not in data:
                raise KubeletError(f"pod {self.name}: {kind} {name} has no key {item['key']!r}")
            path = folder / item["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data[item["key"]])
            path.chmod(item.get("mode", mode))

    def _binds(self, volumes: Mapping[str, Path], container: Mapping[str, Any] | None = None) -> list[Bind]:
        """The container's volumeMounts as binds (the main container's, with its
        termination message file, unless `container` names an init container)."""
        binds = []
        init = container is not None
        container = container or self.container
        mounts = sorted(container.get("volumeMounts", []), key=lambda m: len(Path(m["mountPath"]).parts))
        for mount in mounts:  # parents first: /etc/paxosctl before /etc/paxosctl/certs
            if "subPath" in mount or mount["name"] not in volumes:
                raise KubeletError(f"pod {self.name}: volumeMount {mount}: no such volume, or a subPath")
            target = Path(mount["mountPath"])
            outer = next((b for b in reversed(binds) if target.is_relative_to(b.target)), None)
            if outer is not None:  # the mount point lies in a volume of ours: made there
                (outer.source / target.relative_to(outer.target)).mkdir(parents=True, exist_ok=True)
            else:
                self._held += MOUNT_POINTS.hold([(target, False)])
            binds.append(Bind(volumes[mount["name"]], target, mount.get("readOnly", False)))
        if init:
            return binds
        path = Path(self.container.get("terminationMessagePath", "/dev/termination-log"))
        self._held += MOUNT_POINTS.hold([(path, True)])
        binds.append(Bind(self.termination_log, path))
        return binds

    def start(self) -> None:
        """Write the volumes, then run the container (and its probes) from now on."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.termination_log.touch()
        volumes = self._volumes()
        for init in self.init_containers:
            self._run_init(init, volumes)
        env = self._env()
        argv = [expand(a, env) for a in [*self.container["command"], *self.container.get("args", [])]]
        command = wrap(argv, self._binds(volumes), env=env, hostname=self.name,
                       cwd=self.container.get("workingDir", "/"),
                       before=[f": > '{self.termination_log}'"])
        scale = self.kubelet.time_scale
        self.runner = self.host.keep_running(
            self.container["name"], command, backoff=BACKOFF_SECONDS * scale,
            max_backoff=MAX_BACKOFF_SECONDS * scale, stable_after=BACKOFF_RESET_SECONDS * scale,
            restart_if=lambda code: True, on_exit=self._ended)
        self._prober.start()

    def _run_init(self, init: Mapping[str, Any], volumes: Mapping[str, Path]) -> None:
        """Run one init container to its end (once per pod, as the kubelet does:
        a restart of the main container does not run it again). A non-zero
        exit is KubeletError: the kubelet would retry it with a back-off,
        which is not modelled (a test would only wait longer to fail)."""
        env = self._env(init)
        argv = [expand(a, env) for a in [*init["command"], *init.get("args", [])]]
        result = self.host.run(wrap(argv, self._binds(volumes, init), env=env, hostname=self.name,
                                    cwd=init.get("workingDir", "/")), timeout=60)
        if result.returncode != 0:
            raise KubeletError(f"pod {self.name}: init container {init.get('name')} exited "
                               f"{result.returncode}: {result.stderr.strip()[-300:]}")

    def _ended(self, code: int) -> None:
        """A run ended (the runner's thread, before the back-off): its exit and message."""
        self._ready = False
        self._last_exit = 128 - code if code < 0 else code
        message = self.termination_log.read_bytes()[:MESSAGE_BYTES]
        policy = self.container.get("terminationMessagePolicy", "File")
        if not message.strip() and policy == "FallbackToLogsOnError" and code != 0:
            tail = self.log().encode()[-LOG_TAIL_BYTES:]
            message = b"\n".join(tail.splitlines()[-LOG_TAIL_LINES:])
        self._message = message.decode(errors="replace")

    def log(self) -> str:
        """The output of the current run, or of the last one (`kubectl logs`)."""
        path = self.host.log_path(self.container["name"])
        text = path.read_bytes() if path.exists() else b""
        starts = list(_START_LINE.finditer(text))
        return text[starts[-1].end():].decode(errors="replace") if starts else ""

    # -------------------------------------------------------------- probes

    def _probe_loop(self) -> None:
        """Probe each run of the container from inside the pod's network namespace."""
        fd = os.open(f"/var/run/netns/{self.host.netns}", os.O_RDONLY)
        try:  # this thread alone moves: the kubelet's other threads stay where they are
            if ctypes.CDLL(None, use_errno=True).setns(fd, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)
        assert self.runner is not None
        seen = 0
        while not self._stop.is_set():
            with self.runner._changed:
                self.runner._changed.wait_for(
                    lambda: self._stop.is_set() or (self.runner.starts > seen
                                                     and self.runner.state is RunState.RUNNING), 1.0)
            if self._stop.is_set() or self.runner.starts == seen:
                continue
            seen = self.runner.starts
            process = self.runner.process
            if process is not None:
                self._probe_run(process, seen)

    def _probe_run(self, process: Any, run: int) -> None:
        """Probe one run until it ends: startup first, then liveness and readiness."""
        started = time.monotonic()
        probes = {"startup": self.startup, "liveness": self.liveness, "readiness": self.readiness}
        due = {kind: started + p.initial_delay for kind, p in probes.items() if p is not None}
        passes = {kind: 0 for kind in due}
        fails = {kind: 0 for kind in due}
        up = self.startup is None
        while not self._stop.is_set() and process.poll() is None and self.runner.starts == run:
            now = time.monotonic()
            for kind in [k for k in due if due[k] <= now and (up or k == "startup")]:
                probe = probes[kind]
                due[kind] = now + probe.period
                ok = self._get(probe)
                passes[kind], fails[kind] = (passes[kind] + 1, 0) if ok else (0, fails[kind] + 1)
                if kind == "startup" and ok:
                    up = True
                    del due["startup"]
                    for other in due:
                        due[other] = time.monotonic()
                elif kind == "readiness":
                    if passes[kind] >= probe.success_threshold:
                        self._ready = True
                    elif fails[kind] >= probe.failure_threshold:
                        self._ready = False
                elif fails[kind] >= probe.failure_threshold:  # startup or liveness
                    self._ready = False
                    self._kill(process)
                    return
            if up and self.readiness is None:
                self._ready = True
            self._stop.wait(max(0.01, min(due.values(), default=now + 0.1) - time.monotonic()))

    def _get(self, probe: Probe) -> bool:
        try:
            connection = http.client.HTTPConnection(self.host.address, probe.port, timeout=probe.timeout)
            try:
                connection.request("GET", probe.path, headers={"User-Agent": "kube-probe/1.30"})
                return 200 <= connection.getresponse().status < 400
            finally:
                connection.close()
        except (OSError, http.client.HTTPException):
            return False

    def _kill(self, process: Any) -> None:
        """As the kubelet kills a container a probe failed: SIGTERM, SIGKILL after the grace period."""
        process.terminate()
        deadline = time.monotonic() + self.grace
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if process.poll() is None:
            process.kill()

    # ---------------------------------------------------------------- state

    def status(self) -> PodStatus:
        runner = self.runner
        if runner is None or runner.starts == 0:
            return PodStatus("Pending", False, 0, "waiting", "ContainerCreating", None, None)
        running = runner.state is RunState.RUNNING
        reason = None if running else ("CrashLoopBackOff" if runner.state is RunState.BACKOFF else "Terminating")
        return PodStatus("Running", running and self._ready, runner.starts - 1,
                         "running" if running else "waiting", reason, self._last_exit, self._message)

    def stop(self) -> None:
        """Stop the container for good (SIGTERM, SIGKILL after the grace period); the volume stays."""
        self._stop.set()
        if self.runner is not None:
            self.runner.stop(grace=max(self.grace, 1.0))
        if self._prober.is_alive():
            self._prober.join(5)
        MOUNT_POINTS.release(self._held)
        self._held = []


class Kubelet:
    """Runs Kubernetes objects on the hosts of `network` (one new host per pod)."""

    def __init__(self, network: Network, *, time_scale: float = 0.05,
                 cluster_domain: str = "cluster.local") -> None:
        self.network = network
        self.time_scale = time_scale
        self.cluster_domain = cluster_domain
        #: (kind, namespace, name) -> the object as applied.
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        #: Pod name -> the running pod (pod names are one namespace's: hosts are named for them).
        self.pods: dict[str, Pod] = {}
        self._lock = threading.RLock()
        self._controllers: list[threading.Thread] = []
        self._closed = threading.Event()

    # -------------------------------------------------------------- objects

    def apply(self, objects: Iterable[Mapping[str, Any]]) -> None:
        """Apply each object in order (a v1 List's items included); returns once
        every pod to start now is started (OrderedReady ones start in the background)."""
        for obj in objects:
            if obj.get("kind") == "List":
                self.apply(obj.get("items", []))
                continue
            obj = copy.deepcopy(dict(obj))
            kind = obj.get("kind")
            namespace, name = _meta(obj)
            with self._lock:
                if kind == "PodDisruptionBudget":
                    continue  # limits voluntary evictions only; nothing here evicts
                if kind not in ("ConfigMap", "Secret", "Service", "StatefulSet"):
                    raise KubeletError(f"{kind} {name}: not run here; kinds run: ConfigMap, Secret, "
                                       "Service, StatefulSet (PodDisruptionBudget ignored)")
                if kind == "Service":
                    self._check_service(obj)
                if kind == "StatefulSet":
                    self._apply_statefulset(namespace, name, obj)
                self.objects[(kind, namespace, name)] = obj
                if kind == "Service":
                    for pod in self.pods.values():
                        self._publish(pod)

    def delete(self, kind: str, name: str, namespace: str = "default") -> None:
        """Delete an object; a StatefulSet's pods are stopped, their volumes kept (Retain)."""
        with self._lock:
            obj = self.objects.pop((kind, namespace, name), None)
            if obj is None:
                raise KubeletError(f"{kind} {namespace}/{name}: not found")
            if kind == "StatefulSet":
                for pod in [p for p in self.pods.values() if self._owner(p) == (namespace, name)]:
                    self._remove_pod(pod)

    def _check_service(self, service: Mapping[str, Any]) -> None:
        spec = service.get("spec") or {}
        if spec.get("clusterIP") != "None" or spec.get("publishNotReadyAddresses") is not True:
            raise KubeletError(f"Service {_meta(service)[1]}: only a headless Service (clusterIP: None) "
                               "with publishNotReadyAddresses: true is modelled")

    def data_of(self, kind: str, namespace: str, name: str) -> dict[str, bytes]:
        """A ConfigMap's or Secret's keys and their bytes."""
        obj = self.objects.get((kind, namespace, name))
        if obj is None:
            raise KubeletError(f"{kind} {namespace}/{name}: not found (apply it before the pods using it)")
        if kind == "ConfigMap":
            data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
            data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        else:
            data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
            data.update({k: v.encode() for k, v in (obj.get("stringData") or {}).items()})
        return data

    def claims_of(self, pod: Pod) -> list[dict[str, Any]]:
        return self.objects[("StatefulSet", *self._owner(pod))]["spec"].get("volumeClaimTemplates", [])

    # ----------------------------------------------------------- StatefulSet

    def _owner(self, pod: Pod) -> tuple[str, str]:
        return pod.namespace, pod.owner

    def _apply_statefulset(self, namespace: str, name: str, sts: dict[str, Any]) -> None:
        spec = sts["spec"]
        old = self.objects.get(("StatefulSet", namespace, name))
        if old is not None and old["spec"]["template"] != spec["template"]:
            raise KubeletError(f"StatefulSet {name}: a changed pod template (rolling updates are not "
                               "modelled); delete it and apply it again")
        self.objects[("StatefulSet", namespace, name)] = sts
        replicas = spec.get("replicas", 1)
        for pod in [p for p in self.pods.values() if self._owner(p) == (namespace, name)]:
            if int(pod.name.rpartition("-")[2]) >= replicas:  # scaled down: the highest go
                self._remove_pod(pod)
        wanted = [f"{name}-{i}" for i in range(replicas) if f"{name}-{i}" not in self.pods]
        if spec.get("podManagementPolicy", "OrderedReady") == "Parallel":
            for pod_name in wanted:
                self._make_pod(namespace, name, pod_name, spec["template"])
        else:
            thread = threading.Thread(target=self._ordered, args=(namespace, name, wanted, spec["template"]),
                                      name=f"statefulset-{name}", daemon=True)
            self._controllers.append(thread)
            thread.start()

    def _ordered(self, namespace: str, name: str, wanted: list[str], template: dict[str, Any]) -> None:
        """OrderedReady: each pod once every one before it is Running and Ready."""
        for pod_name in wanted:
            ordinal = int(pod_name.rpartition("-")[2])
            before = [f"{name}-{i}" for i in range(ordinal)]
            while not self._closed.is_set():
                with self._lock:
                    if ("StatefulSet", namespace, name) not in self.objects:
                        return
                    if all(p in self.pods and self.pods[p].status().ready for p in before):
                        self._make_pod(namespace, name, pod_name, template)
                        break
                self._closed.wait(0.05)

    def _make_pod(self, namespace: str, owner: str, name: str, template: dict[str, Any]) -> None:
        # A host made before keeps the volume its claim left (Retain): the pod gets it back.
        known = {h.name: h for h in self.network.hosts}
        host = known[name] if name in known else self.network.add_host(name)
        pod = Pod(self, namespace, name, template, host, owner)
        self.pods[name] = pod
        self._publish(pod)
        pod.start()

    def _publish(self, pod: Pod) -> None:
        """The pod's name under its StatefulSet's Service, in every hosts file, once both exist."""
        service = self.objects[("StatefulSet", *self._owner(pod))]["spec"].get("serviceName")
        if service and ("Service", pod.namespace, service) in self.objects:
            name = f"{pod.name}.{service}.{pod.namespace}.svc.{self.cluster_domain}"
            if name not in pod.host.aliases:
                pod.host.add_alias(name)

    def _remove_pod(self, pod: Pod) -> None:
        pod.stop()
        del self.pods[pod.name]

    # ------------------------------------------------------------- waiting

    def wait_ready(self, names: Iterable[str], timeout: float = 60) -> None:
        """Wait until every pod named exists and is Ready."""
        names = list(names)
        self.wait_for(lambda: all(n in self.pods and self.pods[n].status().ready for n in names), timeout,
                      f"pods {names} Ready")

    def wait_for(self, condition: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() >= deadline:
                states = {n: p.status() for n, p in self.pods.items()}
                raise KubeletError(f"not within {timeout}s: {what}; pods: {states}")
            time.sleep(0.05)

    def close(self) -> None:
        """Stop every pod (volumes stay with the network, which removes them)."""
        self._closed.set()
        with self._lock:
            for pod in list(self.pods.values()):
                self._remove_pod(pod)
        for thread in self._controllers:
            thread.join(5)
