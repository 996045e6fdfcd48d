"""`paxosctl scale` / `replace` with no supervisor (issue 23): the refusals
made before anything is asked of the agents; one line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PAXOSCTL = str(Path(sys.executable).parent / "paxosctl")
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


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "cluster.toml").write_text(MANIFEST)
    return subprocess.run([PAXOSCTL, *args, "-f", str(tmp_path / "cluster.toml")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("args", [["scale", "replica=5"], ["replace", "replica-1"]],
                         ids=["scale", "replace"])
def test_without_a_supervisor_the_engine_must_be_named(tmp_path, args):
    done = run(tmp_path, *args)
    assert done.returncode == 2, done
    assert done.stderr.splitlines() == [
        "error: no supervisor runs far (its agents run on their own hosts): give --engine k8s "
        "or --engine systemd, what starts and stops them"]


def test_an_unknown_engine_is_refused(tmp_path):
    done = run(tmp_path, "scale", "replica=5", "--engine", "nomad")
    assert done.returncode == 2, done
    assert done.stderr.splitlines() == ["error: --engine: 'nomad' is not an engine; allowed: k8s, systemd"]


def test_no_wait_is_refused_where_the_cli_drives_the_change(tmp_path):
    done = run(tmp_path, "scale", "replica=5", "--engine", "k8s", "--no-wait")
    assert done.returncode == 2, done
    assert done.stderr.splitlines() == [
        "error: --no-wait: with no supervisor this command itself drives the change until it is "
        "in force; leave it out (--timeout bounds the wait)"]
