"""bench/records_cost.py's verdicts: per agent, records on within 5% of off."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def records_cost():
    sys.path.insert(0, str(BENCH))
    try:
        import records_cost
        yield records_cost
    finally:
        sys.path.remove(str(BENCH))


def run(**cpu: float | None) -> dict:
    return {"cpu_us_per_command": cpu}


def test_each_agent_is_judged_on_the_medians_of_its_rounds(records_cost):
    rounds = {"on": [run(a=10.4, b=5.0, cluster=30.0, supervisor=9.0),
                     run(a=99.0, b=5.1, cluster=31.0, supervisor=1.0),
                     run(a=10.6, b=5.2, cluster=32.0, supervisor=1.0)],
              "off": [run(a=10.0, b=5.0, cluster=30.0, supervisor=1.0),
                      run(a=10.0, b=1.0, cluster=30.0, supervisor=1.0),
                      run(a=10.1, b=5.0, cluster=30.0, supervisor=1.0)]}
    got = {r.who: r for r in records_cost.rows(rounds)}
    assert list(got) == ["a", "b", "cluster"]  # the supervisor is not judged; the sum last
    assert got["a"].on_us == 10.6 and got["a"].off_us == 10.0  # medians: one slow round is out
    assert got["a"].verdict == "MISSED"  # 1.06x
    assert (got["b"].ratio, got["b"].verdict) == (pytest.approx(1.02), "met")
    assert (got["cluster"].ratio, got["cluster"].verdict) == (pytest.approx(31 / 30), "met")


def test_the_leader_is_one_row_whichever_proposer_led(records_cost):
    rounds = {"on": [{**run(p0=7.2, p1=2.2), "leader": "p0"},
                     {**run(p0=2.2, p1=7.4), "leader": "p1"}],
              "off": [{**run(p0=2.4, p1=7.2), "leader": "p1"}]}
    got = {r.who: r for r in records_cost.rows(rounds)}
    assert list(got) == ["leader", "p0", "p1"]
    assert (got["leader"].off_us, got["leader"].on_us) == (7.2, pytest.approx(7.3))
    assert (got["p0"].on_us, got["p0"].off_us, got["p0"].verdict) == (2.2, 2.4, "met")
    assert (got["p1"].on_us, got["p1"].off_us, got["p1"].verdict) == (2.2, None, "n/a")


def test_the_limit_is_five_percent_and_missing_figures_are_not_judged(records_cost):
    rounds = {"on": [run(a=10.5, b=7.0)], "off": [run(a=10.0, b=None)]}
    got = {r.who: r for r in records_cost.rows(rounds)}
    assert (got["a"].ratio, got["a"].verdict) == (pytest.approx(1.05), "met")
    assert (got["b"].off_us, got["b"].verdict) == (None, "n/a")
    assert "| a | 10.00 | 10.50 | 1.050x | met |" in records_cost.table(list(got.values()))


def test_the_spy_share_counts_busy_samples_inside_the_records_module(records_cost):
    raw = ("run (paxos_agents/runtime/agent.py:150);note (paxos_agents/runtime/protocolrecords.py:120) 3\n"
           "run (paxos_agents/runtime/agent.py:150);_flush (paxos_agents/runtime/agent.py:400) 37\n"
           "\n")
    assert records_cost.spy_share(raw) == (40, 3)
