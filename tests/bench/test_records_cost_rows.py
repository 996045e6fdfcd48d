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


def test_each_agent_is_judged_per_abba_block_and_the_median_of_blocks(records_cost):
    # Rounds 1-2 and 3-4 are blocks; a cluster's drift (here +1 a run, in
    # run order on, off, off, on) cancels inside a block.
    rounds = {"on": [run(a=10.0, b=5.0, cluster=30.0, supervisor=9.0),
                     run(a=13.0, b=5.3, cluster=33.0, supervisor=1.0),
                     run(a=14.0, b=5.4, cluster=34.0, supervisor=1.0),
                     run(a=99.0, b=5.7, cluster=37.0, supervisor=1.0)],
              "off": [run(a=11.0, b=5.1, cluster=31.0, supervisor=1.0),
                      run(a=12.0, b=5.2, cluster=32.0, supervisor=1.0),
                      run(a=15.0, b=5.5, cluster=35.0, supervisor=1.0),
                      run(a=16.0, b=5.6, cluster=36.0, supervisor=1.0)]}
    got = {r.who: r for r in records_cost.rows(rounds)}
    assert list(got) == ["a", "b", "cluster"]  # the supervisor is not judged; the sum last
    # A/A with drift: every block reads 1.0 (a per-side median would not).
    assert got["cluster"].ratio == pytest.approx(1.0)
    assert got["b"].ratio == pytest.approx(1.0) and got["b"].verdict == "met"
    assert got["cluster"].off_us == pytest.approx(33.5)  # the columns: each side's mean
    # Blocks 23/23 = 1.0 and 113/31 = 3.6: the median of two is their mean.
    assert got["a"].ratio == pytest.approx((1.0 + 113 / 31) / 2)
    assert got["a"].verdict == "MISSED"


def test_a_failed_run_leaves_its_block_out(records_cost):
    rounds = {"on": [run(a=10.6), None, run(a=10.0), run(a=10.0)],
              "off": [run(a=10.0), run(a=10.0), run(a=10.0), run(a=10.0)]}
    got = {r.who: r for r in records_cost.rows(rounds)}
    assert got["a"].ratio == pytest.approx(1.0)  # only the second block
    assert got["a"].on_us == pytest.approx(10.2)


def test_the_leader_is_one_row_whichever_proposer_led(records_cost):
    rounds = {"on": [{**run(p0=7.2, p1=2.2), "leader": "p0"},
                     {**run(p0=2.2, p1=7.4), "leader": "p1"}],
              "off": [{**run(p0=2.4, p1=7.2), "leader": "p1"},
                      {**run(p0=7.0, p1=2.0), "leader": "p0"}]}
    got = {r.who: r for r in records_cost.rows(rounds)}
    assert list(got) == ["leader", "p0", "p1"]
    assert (got["leader"].off_us, got["leader"].on_us) == (7.1, pytest.approx(7.3))
    assert got["leader"].ratio == pytest.approx(14.6 / 14.2)
    assert (got["p0"].on_us, got["p0"].off_us) == (2.2, 2.4)
    assert (got["p0"].ratio, got["p0"].verdict) == (None, "n/a")  # one run a side


def test_the_limit_is_five_percent_and_missing_figures_are_not_judged(records_cost):
    rounds = {"on": [run(a=10.5, b=7.0), run(a=10.5, b=7.0)],
              "off": [run(a=10.0, b=None), run(a=10.0, b=None)]}
    got = {r.who: r for r in records_cost.rows(rounds)}
    assert (got["a"].ratio, got["a"].verdict) == (pytest.approx(1.05), "met")
    assert (got["b"].off_us, got["b"].verdict) == (None, "n/a")
    assert "| a | 10.00 | 10.50 | 1.050x | met |" in records_cost.table(list(got.values()))


def test_an_odd_number_of_rounds_is_refused(records_cost, capsys):
    with pytest.raises(SystemExit) as e:
        records_cost.parse_args(["--rounds", "3"])
    assert e.value.code == 2
    assert "--rounds: must be even" in capsys.readouterr().err


def test_the_spy_share_counts_busy_samples_inside_the_records_module(records_cost):
    raw = ("run (paxos_agents/runtime/agent.py:150);note (paxos_agents/runtime/protocolrecords.py:120) 3\n"
           "run (paxos_agents/runtime/agent.py:150);_flush (paxos_agents/runtime/agent.py:400) 37\n"
           "\n")
    assert records_cost.spy_share(raw) == (40, 3)


def test_together_each_round_is_its_own_ratio_and_any_number_of_rounds_runs(records_cost):
    # Both sides ran at once: a round's on / off is the ratio, drift or not.
    rounds = {"on": [run(a=10.3, cluster=30.0), run(a=20.6, cluster=60.0),
                     run(a=99.0, cluster=90.0)],
              "off": [run(a=10.0, cluster=30.0), run(a=20.0, cluster=60.0),
                      run(a=10.0, cluster=90.0)]}
    got = {r.who: r for r in records_cost.rows(rounds, together=True)}
    assert got["a"].ratio == pytest.approx(1.03) and got["a"].verdict == "met"  # the median
    assert got["cluster"].ratio == pytest.approx(1.0)
    # ABBA blocks on the same figures would pair rounds across moments:
    assert records_cost.rows(rounds)[0].ratio == pytest.approx(30.9 / 30.0)
    assert records_cost.parse_args(["--together", "--rounds", "3"]).rounds == 3
