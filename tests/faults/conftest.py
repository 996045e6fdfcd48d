"""Fixtures of the fault tests. Their names start with `fault_` so they
never clash with the fixtures of tests/conftest.py.

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

from .harness import ClusterFactory, fault_tmpdir, unmount


@pytest.fixture
def fault_clusters() -> Iterator[ClusterFactory]:
    """A factory of clusters, each in its own short temp folder, all torn
    down after the test (`paxosctl down`, then SIGKILL to any leftover)."""
    factory = ClusterFactory()
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def fault_tmpfs() -> Iterator[Path | None]:
    """A 4 MiB tmpfs mounted on a fresh short folder, or None where this
    machine refuses the mount (not root, no tmpfs). Unmounted afterwards
    (lazily if something still holds it). Ask for it before `fault_clusters`
    (`def test(fault_tmpfs, fault_clusters)`): pytest then tears the
    clusters down first."""
    folder = fault_tmpdir()
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
