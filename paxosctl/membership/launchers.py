"""What starts and stops agents the CLI does not run: `remote.Launcher`s.

- `KubernetesLauncher`: an added agent's objects (`paxosctl.render.k8s.agent_objects`:
  its StatefulSet, and its certificate's Secret or Certificate when rendered),
  rendered without --bootstrap (its peers admit it as added by a change),
  printed as YAML on stdout with a line on stderr saying what to apply, or with
  `apply` piped to `<kubectl> apply -f -`. Stopping is `<kubectl> delete
  statefulset C-<agent> -n N` (its PersistentVolumeClaim stays: the
  StatefulSet's retention policy is Retain; a retired name never comes back).
- `SystemdLauncher`: the agent's unit (`paxosctl.render.systemd`), printed,
  or with `apply` written to `unit_dir` and started with `<systemctl>
  daemon-reload` and `enable --now`; stopping is `disable --now`.

Neither can tell that an agent ended for good (`failed` is None): a pod in
CrashLoopBackOff or a unit that exited 78 shows as not answering, and the
change waits until its deadline (the engine shows the agent's one line:
`kubectl describe pod`, `journalctl -u`).

`paxosctl.render` is imported inside the methods: the render package is the
render helper's, and this module must import without it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..errors import PaxosctlError
from ..manifest import AgentSpec, Manifest

if TYPE_CHECKING:
    from ..render import k8s


class LaunchFailed(PaxosctlError):
    """The engine's command failed: one line with its output's last line."""


def _run(argv: list[str], stdin: str | None = None) -> None:
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LaunchFailed(f"{' '.join(argv[:3])}: {e}") from None
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise LaunchFailed(f"{' '.join(argv[:3])} exited {done.returncode}: {last[0]}")


@dataclass
class KubernetesLauncher:
    """Agents as StatefulSets (module docstring). `manifest`: the operator's
    manifest, which lacks the names a change adds: render gives those no
    `--bootstrap` (their peers admit them as added by the change)."""

    manifest: Manifest
    #: paxosctl.render.k8s.Options: what `render k8s` made the cluster's pods with.
    options: "k8s.Options"
    apply: bool
    kubectl: str = "kubectl"
    out: Callable[[str], None] = print
    err: Callable[[str], None] = print

    @property
    def namespace(self) -> str:
        return self.options.namespace

    def start(self, spec: AgentSpec, why: str) -> None:
        from ..render import k8s

        # Rendered as a name the manifest lacks: no --bootstrap (render's rule).
        objects = k8s.agent_objects(self.manifest, spec.name, self.options)
        text = k8s.to_yaml(objects)
        if self.apply:
            _run([self.kubectl, "apply", "-n", self.namespace, "-f", "-"], text)
            self.err(f"applied {spec.name}'s objects ({why})")
        else:
            self.out(text)
            self.err(f"apply {spec.name}'s objects above ({why}): kubectl apply -n "
                     f"{self.namespace} -f -")

    def stop(self, name: str, why: str, retired: bool) -> None:
        argv = [self.kubectl, "delete", "statefulset", f"{self.manifest.name}-{name}",
                "-n", self.namespace, "--ignore-not-found"]
        if self.apply:
            _run(argv)
            self.err(f"deleted {name}'s StatefulSet ({why}; its volume claim stays)")
        else:
            self.err(f"run: {' '.join(argv)} ({why}; its volume claim stays)")

    def failed(self, name: str) -> str | None:
        return None


@dataclass
class SystemdLauncher:
    """Agents as systemd units (module docstring)."""

    manifest: Manifest
    apply: bool
    unit_dir: Path = Path("/etc/systemd/system")
    systemctl: str = "systemctl"
    out: Callable[[str], None] = print
    err: Callable[[str], None] = print

    def start(self, spec: AgentSpec, why: str) -> None:
        from ..render import systemd

        # Rendered as a name the manifest lacks: no --bootstrap (render's rule).
        unit = systemd.unit_name(self.manifest, spec.name)
        text = systemd.unit(self.manifest, spec.name, systemd.Options())
        if self.apply:
            self.unit_dir.mkdir(parents=True, exist_ok=True)
            (self.unit_dir / unit).write_text(text)
            _run([self.systemctl, "daemon-reload"])
            _run([self.systemctl, "enable", "--now", unit])
            self.err(f"started {unit} ({why})")
        else:
            self.out(f"# {unit}\n{text}")
            self.err(f"install the unit above as {self.unit_dir / unit} on {spec.name}'s host "
                     f"and run: systemctl daemon-reload && systemctl enable --now {unit} ({why})")

    def stop(self, name: str, why: str, retired: bool) -> None:
        from ..render import systemd

        unit = systemd.unit_name(self.manifest, name)
        if self.apply:
            _run([self.systemctl, "disable", "--now", unit])
            self.err(f"stopped {unit} ({why}; its state stays)")
        else:
            self.err(f"on {name}'s host run: systemctl disable --now {unit} ({why}; its state stays)")

    def failed(self, name: str) -> str | None:
        return None
