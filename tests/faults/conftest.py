"""Fixtures of the fault tests. Their names start with `fault_` so they
never clash with the fixtures of tests/conftest.py, on which they build.

    def test_x(fault_clusters):
        cluster = fault_clusters("roles", restart=FAST_RESTART)   # written, up -d, served
        load = Load(cluster, "x").start(); ...; history = load.stop(); verify(cluster, history)
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from clusters import ClusterFactory, short_tmpdir


@pytest.fixture
def fault_clusters(make_cluster: ClusterFactory) -> ClusterFactory:
    """A factory of clusters, each in its own short temp folder, all torn
    down after the test (`paxosctl down`, then SIGKILL to any leftover):
    the fault tests' name for `make_cluster`."""
    return make_cluster


@pytest.fixture
def fault_tmpfs() -> Iterator[Path | None]:
    """A 4 MiB tmpfs mounted on a fresh short folder, or None where this
    machine refuses the mount (not root, no tmpfs). Unmounted afterwards
    (lazily if something still holds it). Ask for it before `fault_clusters`
    (`def test(fault_tmpfs, fault_clusters)`): pytest then tears the
    clusters down first."""
    folder = short_tmpdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(folder)],
                            check=False, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        yield None
        return
    try:
        yield folder
    finally:
        unmount(folder)


def unmount(path: Path) -> None:
    """Unmount `path` (lazily if it is still busy), then remove the folder."""
    if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
    shutil.rmtree(path, ignore_errors=True)
