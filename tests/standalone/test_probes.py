"""The standalone agent's probes over real HTTP, fed beats by hand: what
/healthz and /readyz say for each role (the rules of `health.not_ready`),
and that a stale heartbeat fails /healthz."""

from __future__ import annotations

import time
import urllib.error
from contextlib import contextmanager
import urllib.request
from typing import Iterator

import pytest

from paxos_agents.core.settings import Membership
from paxos_agents.runtime.control import Beat, Board
from paxosctl.standalone.health import STALE_BEATS, Probes

ROLES = Membership(("p-0", "p-1"), ("a-0", "a-1", "a-2"), ("l-0",))
HEARTBEAT = 0.2


@pytest.fixture
def board() -> Board:
    return Board()


@contextmanager
def _probes(board: Board, name: str) -> Iterator[Probes]:
    probes = Probes(board, name, "x", ROLES, HEARTBEAT, "127.0.0.1", 0)
    probes.start()
    try:
        yield probes
    finally:
        probes.close()


def get(probes: Probes, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{probes.port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def beat(connected: set[str], *, age: float = 0.0, leader: str | None = None, **stats: int) -> Beat:
    report = {"stats": stats, "config": None, "leader": False, "leader_hint": leader}
    return Beat(report, frozenset(connected), time.monotonic() - age)


CASES = [
    # (agent, connected, report fields, /readyz answer)
    ("p-0", {"a-0"}, {}, "not ready: connected to 1 of 3 acceptors (a-0); a majority is 2\n"),
    ("p-0", {"a-0", "a-2", "l-0"}, {}, "ready\n"),
    ("p-0", {"p-1"}, {"leader": "p-1"}, "ready\n"),  # a follower, linked to the leader
    ("p-0", {"a-0"}, {"leader": "p-1"}, "not ready: connected to 1 of 3 acceptors (a-0); a majority is 2\n"),
    ("a-1", {"a-0", "l-0"}, {}, "not ready: connected to no proposer\n"),
    ("a-1", {"p-1"}, {}, "ready\n"),
    ("l-0", {"p-0"}, {"catchup_remaining": 12}, "not ready: catching up: 12 slots to copy from peer learners\n"),
    ("l-0", set(), {"catchup_remaining": 0}, "not ready: connected to no peer\n"),
    ("l-0", {"a-2"}, {"catchup_remaining": 0}, "ready\n"),
]


@pytest.mark.parametrize("name, connected, fields, answer", CASES,
                         ids=[f"{c[0]}-{c[3].split(':')[-1].strip()[:24]}" for c in CASES])
def test_readyz_follows_the_roles_rule(board, name, connected, fields, answer):
    with _probes(board, name) as probes:
        board.publish(beat(connected, **fields))
        assert get(probes, "/readyz") == (200 if answer == "ready\n" else 503, answer)
        assert get(probes, "/healthz") == (200, "ok\n")


def test_healthz_fails_before_the_first_heartbeat_and_once_heartbeats_stop(board):
    with _probes(board, "p-0") as probes:
        assert get(probes, "/healthz") == (503, "starting: no heartbeat yet\n")
        assert get(probes, "/readyz") == (503, "starting: no heartbeat yet\n")
        board.publish(beat({"a-0", "a-1"}, age=STALE_BEATS * HEARTBEAT + 0.5))
        status, body = get(probes, "/healthz")
        assert status == 503 and body.startswith("stalled: the last heartbeat is "), body
        assert get(probes, "/readyz")[0] == 503
        board.publish(beat({"a-0", "a-1"}))
        assert get(probes, "/healthz") == (200, "ok\n")
        assert get(probes, "/readyz") == (200, "ready\n")
