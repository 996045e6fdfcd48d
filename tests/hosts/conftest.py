"""The fixture of the namespace-host tests: `make_hosts`.

    def test_x(make_hosts):
        net = make_hosts(["a", "b"], aliases={"a": ["acceptor-0.paxos.demo.svc"]})
        net["a"].popen([...]); net["b"].run([...])

This folder has no __init__.py on purpose: as a package it would be named
`hosts` and hide the library, tests/hosts.py, from `import hosts`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import pytest

from hosts import NamespacesUnavailable, Network, unavailable, why_unavailable


@pytest.fixture(autouse=True)
def _namespaces_possible() -> None:
    """Every test here needs root and `ip` (some make namespaces without `make_hosts`):
    skipped without them, failed under CI=true."""
    if reason := why_unavailable():
        unavailable(reason)


@pytest.fixture
def make_hosts() -> Iterator[Callable[..., Network]]:
    """A factory of `Network`s (hosts on a switch), every one removed after the test,
    whatever happened. Skips where namespaces cannot be made; fails so under CI=true."""
    networks: list[Network] = []

    def make(names: Sequence[str], *, aliases: Mapping[str, Iterable[str]] | None = None) -> Network:
        try:
            network = Network(names, aliases=aliases)
        except NamespacesUnavailable as e:
            unavailable(str(e))
        networks.append(network)
        return network

    try:
        yield make
    finally:
        problems = []
        for network in networks:  # each one closed, even if another could not be
            try:
                network.close()
            except Exception as e:  # noqa: BLE001 - reported below, after the others are closed
                problems.append(e)
        if problems:
            raise problems[0]
