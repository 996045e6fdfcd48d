"""Shared fixtures: real clusters (one OS process per agent) in fresh temp folders.

    def test_something(make_cluster):
        cluster = make_cluster("roles")            # written, `paxosctl up -d`, healthy
        result = cluster.run("status", "-o", "json")
        with cluster.client() as client: ...

The clusters and the helpers around them (waiting, manifests, the CLI)
are tests/clusters.py, the one cluster harness; every cluster a test
starts here is torn down afterwards, whatever happened.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from clusters import Cluster, ClusterFactory, short_tmpdir


# A test run started in the background of a non-interactive shell inherits
# SIGINT ignored, and so would every process it starts: tests that press
# Ctrl-C (SIGINT) on a child would then wait forever. Handle it here, so
# children start with the default (handled signals reset at exec).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Property tests draw the same examples on every run (CI, and anyone's
# machine): a failure found once is found again. `HYPOTHESIS_PROFILE=explore`
# draws fresh ones, to look for new failures by hand.
hypothesis_settings.register_profile("ci", derandomize=True)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def make_cluster() -> Iterator[ClusterFactory]:
    """A factory of clusters torn down after the test."""
    factory = ClusterFactory()
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="module")
def module_clusters() -> Iterator[ClusterFactory]:
    """A factory of clusters shared by one test module, torn down after its
    last test: for modules whose tests each leave the cluster as they found it."""
    factory = ClusterFactory()
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def cluster(make_cluster: ClusterFactory) -> Cluster:
    """A running cluster with separate roles (2 proposers, 3 acceptors, 2 learners),
    for this test alone."""
    return make_cluster("roles")


@pytest.fixture
def tmp_short() -> Iterator[Path]:
    """A fresh short temp folder, removed afterwards."""
    folder = short_tmpdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
