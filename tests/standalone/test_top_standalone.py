"""`paxosctl top` with no supervisor: agents run by `paxosctl agent NAME`
are asked directly (as `status` and `describe` ask them), in a
pseudo-terminal; when no agent answers any more, top exits 3 with its line."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from clusters import PAXOSCTL, wait_until
from harness import REPLICAS, Agents, warm_replicas
from terminal import Terminal



@pytest.fixture
def agents(tmp_short: Path) -> Iterator[Agents]:
    yield from warm_replicas(tmp_short, "topless")


def _row(screen, name: str) -> list[str]:
    return next((line.split() for line in screen.text() if line.startswith(name + " ")), [])


def test_top_asks_the_agents_themselves_and_exits_3_once_none_answers(agents):
    wait_until(agents.leader, 10, "a leader")
    with Terminal([PAXOSCTL, "top", "--interval", "200ms"], cwd=agents.folder) as term:
        term.until(lambda s: all(_row(s, n) for n in REPLICAS) and s.shows("via agents"),
                   15, "a row per replica, asked directly")

        def marked(screen) -> bool:
            # The leader asked now, not when the test began: right after the
            # warm-up a second replica may still be taking over (CI saw the
            # mark move to replica-2 while the first leader was asked).
            leader = agents.leader()
            return (leader is not None and "*" in _row(screen, leader.name)
                    and screen.shows(f"leader {leader.name}"))

        # The leader's row has the mark; each replica's row its roles and a lag.
        term.until(marked, 5, "the leader mark and the title's leader")
        assert all("answered" in _row(term.screen, n) for n in REPLICAS)
        term.send(b"\r")  # the first row, replica-0: its own view
        term.until(lambda s: s.shows("describe replica-0") and s.shows("Counters:"), 10,
                   "replica-0's own view")
        for agent in agents.running.values():
            agent.stop()
        assert term.wait(30) == 3
        assert b"paxosctl top: the cluster went away: no agent answered" in term.raw
