"""One cluster for the API tests that leave it healthy (a start saved per module)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clusters import Cluster, ClusterFactory


@pytest.fixture(scope="package")
def api_cluster() -> Iterator[Cluster]:
    """A roles cluster (2 proposers, 3 acceptors, 2 learners) shared by tests/api."""
    factory = ClusterFactory()
    try:
        yield factory("roles", name="api")
    finally:
        factory.close()
