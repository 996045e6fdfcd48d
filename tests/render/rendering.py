"""Helpers for tests/render: the example manifests copied into a temporary
folder (with `paxosctl certs init` run there when certificates are needed),
and `paxosctl render` run as the operator runs it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from clusters import PAXOSCTL

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ("cluster.toml", "replicas.toml", "hosts.toml")


def paxosctl(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PAXOSCTL, *args], cwd=folder, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def example(folder: Path, name: str, *, certs: bool) -> Path:
    """examples/NAME copied into `folder`, with a CA, certificates and a
    cluster id (`paxosctl certs init`) if `certs`."""
    copy = folder / name
    shutil.copy(ROOT / "examples" / name, copy)
    if certs:
        done = paxosctl(folder, "certs", "init", "-f", name)
        assert done.returncode == 0, done
    return copy


def render_k8s(folder: Path, manifest: str, *flags: str) -> tuple[str, list[dict]]:
    """(YAML text, the objects it holds) of `paxosctl render k8s -f manifest flags`."""
    done = paxosctl(folder, "render", "k8s", "-f", manifest, *flags)
    assert done.returncode == 0, done
    return done.stdout, list(yaml.safe_load_all(done.stdout))
