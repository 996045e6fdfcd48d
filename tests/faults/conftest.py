"""Fixtures of the fault tests. Their names start with `fault_` so they
never clash with the fixtures of tests/conftest.py.

    def test_x(fault_clusters):
        cluster = fault_clusters("roles", restart=FAST_RESTART)   # written, up -d, served
        with Load(cluster, "x") as load: ...
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from .harness import ClusterFactory, fault_tmpdir, unmount


@pytest.fixture
def fault_clusters() -> Iterator[ClusterFactory]:
    """A factory of clusters, each in its own short temp folder, all torn
    down (and their mounts unmounted) after the test."""
    factory = ClusterFactory()
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def fault_tmp() -> Iterator[Path]:
    """A fresh short temp folder, removed afterwards."""
    folder = fault_tmpdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def fault_tmpfs() -> Iterator[Path | None]:
    """A 4 MiB tmpfs mounted on a fresh short folder, or None where this
    machine refuses the mount (not root, no tmpfs). Unmounted afterwards
    (lazily if something still holds it)."""
    folder = fault_tmpdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(folder)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        yield None
        return
    try:
        yield folder
    finally:
        unmount(folder)
