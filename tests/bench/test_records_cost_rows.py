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


def test_the_limit_is_five_percent_and_missing_figures_are_not_judged(records_cost):
    rounds = {"on": [run(a=10.5, b=7.0)], "off": [run(a=10.0, b=None)]}
    got = {r.who: r for r in records_cost.rows(rounds)}
    assert (got["a"].ratio, got["a"].verdict) == (pytest.approx(1.05), "met")
    assert (got["b"].off_us, got["b"].verdict) == (None, "n/a")
    assert "| a | 10.00 | 10.50 | 1.050x | met |" in records_cost.table(list(got.values()))
