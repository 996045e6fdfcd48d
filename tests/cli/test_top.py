"""`paxosctl top`: the pure model (rates, percentiles, lag, sorting, the
record lines), and the real command in a pseudo-terminal (80x24, TERM
vt100 or xterm) against a real cluster: what the screen shows, its keys,
and how it ends (q, Ctrl-C, the cluster going away, no terminal)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from clusters import PAXOSCTL, Cluster, ClusterFactory, wait_until
from terminal import Terminal

from paxosctl.topview.model import (COLUMNS, PERSIST_BOUNDS, Sample, Snapshot, SortKey, p99,
                                    rows, sample_from_view, sort_rows, table_lines)
from paxosctl.topview.tail import record_line

AGENTS = ("acceptor-0", "acceptor-1", "acceptor-2", "learner-0", "learner-1",
          "proposer-0", "proposer-1")


# ----------------------------------------------------------------- the model


def _learner(name: str, *, applied: int, highest: int, decided: int, commands: int,
             incarnation: int = 1, persist: tuple[int, ...] = ()) -> Sample:
    return Sample(name=name, role="learner", state="running", answered=True, learner=True,
                  applied=applied, highest_decided=highest, incarnation=incarnation,
                  counters={"decided": decided, "applied_commands": commands}, persist=persist)


def test_rates_are_counter_deltas_over_the_time_between_passes():
    before = Snapshot(mono=10.0, cluster="c", source="agents", leader=None, agents=(
        _learner("l0", applied=4, highest=4, decided=5, commands=50),))
    now = Snapshot(mono=12.0, cluster="c", source="agents", leader=None, agents=(
        _learner("l0", applied=14, highest=14, decided=15, commands=250),))
    (row,) = rows(before, now)
    assert (row.slots_s, row.commands_s) == (5.0, 100.0)
    assert rows(None, now)[0].slots_s is None  # one pass: no rate yet


def test_a_restarted_agent_gives_no_rate_for_the_interval_rather_than_a_negative_one():
    before = Snapshot(mono=0.0, cluster="c", source="agents", leader=None, agents=(
        _learner("l0", applied=9, highest=9, decided=10, commands=100, incarnation=1),))
    now = Snapshot(mono=1.0, cluster="c", source="agents", leader=None, agents=(
        _learner("l0", applied=9, highest=9, decided=2, commands=3, incarnation=2),))
    (row,) = rows(before, now)
    assert (row.slots_s, row.commands_s, row.persist_p99) == (None, None, None)
    # Its new life already counted past the old one: still not one interval's work.
    busy = Snapshot(mono=1.0, cluster="c", source="agents", leader=None, agents=(
        _learner("l0", applied=60, highest=60, decided=50, commands=500, incarnation=2),))
    (row,) = rows(before, busy)
    assert (row.slots_s, row.commands_s) == (None, None)


def test_lag_is_slots_behind_the_highest_any_agent_knows_decided():
    now = Snapshot(mono=0.0, cluster="c", source="agents", leader=None, agents=(
        _learner("l0", applied=20, highest=20, decided=21, commands=0),
        _learner("l1", applied=12, highest=15, decided=13, commands=0),
        Sample(name="a0", role="acceptor", state="running", answered=True)))
    assert {r.name: r.lag for r in rows(None, now)} == {"l0": 0, "l1": 8, "a0": None}


@pytest.mark.parametrize("before, now, expected", [
    pytest.param((0,) * 11, (0, 0, 0, 98, 2, 0, 0, 0, 0, 0, 0), 0.01, id="2-percent-above"),
    pytest.param((0,) * 11, (0, 0, 0, 99, 1, 0, 0, 0, 0, 0, 0), 0.005, id="1-percent-above"),
    pytest.param((0,) * 11, (0, 0, 100, 0, 0, 0, 0, 0, 0, 0, 0), 0.0025, id="all-in-one-bucket"),
    pytest.param((0, 0, 5) + (0,) * 8, (0, 0, 5) + (0,) * 7 + (1,), math.inf, id="above-every-bound"),
    pytest.param((0, 0, 5) + (0,) * 8, (0, 0, 5) + (0,) * 8, None, id="no-persist-in-the-interval"),
    pytest.param((0, 0, 5) + (0,) * 8, (0, 0, 1) + (0,) * 8, None, id="histogram-started-again"),
])
def test_persist_p99_is_the_bound_of_the_bucket_holding_the_99th_percentile(before, now, expected):
    assert len(PERSIST_BOUNDS) + 1 == len(now)
    assert p99(before, now) == expected


def test_sort_keys_order_by_name_by_rate_and_by_lag_and_step_in_that_order():
    before = Snapshot(mono=0.0, cluster="c", source="agents", leader=None, agents=(
        _learner("a", applied=0, highest=0, decided=0, commands=0),
        _learner("b", applied=0, highest=0, decided=0, commands=0),
        _learner("c", applied=0, highest=0, decided=0, commands=0)))
    now = Snapshot(mono=1.0, cluster="c", source="agents", leader=None, agents=(
        _learner("a", applied=10, highest=30, decided=10, commands=10),
        _learner("b", applied=30, highest=30, decided=30, commands=90),
        _learner("c", applied=5, highest=30, decided=5, commands=50)))
    table = rows(before, now)
    assert [r.name for r in sort_rows(table, SortKey.NAME)] == ["a", "b", "c"]
    assert [r.name for r in sort_rows(table, SortKey.RATE)] == ["b", "c", "a"]
    assert [r.name for r in sort_rows(table, SortKey.LAG)] == ["c", "a", "b"]
    assert [SortKey.NAME.next(), SortKey.RATE.next(), SortKey.LAG.next()] == [
        SortKey.RATE, SortKey.LAG, SortKey.NAME]


def test_the_table_fits_an_80_column_terminal():
    view = {"roles": ["proposer"], "ballot": [123456, "proposer-10"], "leader": "proposer-10",
            "incarnation": 3, "stats": {"proposer_decisions": 1, "client_commands": 2}}
    sample = sample_from_view("a-very-long-agent-name", view, state="unresponsive")
    now = Snapshot(mono=0.0, cluster="c", source="agents", leader=None, agents=(sample,))
    lines = table_lines(rows(None, now))
    assert max(len(line) for line in lines) <= 79
    assert sum(width for _, width, _ in COLUMNS) + len(COLUMNS) - 1 <= 79
    assert lines[1].startswith("a-very-lon~")


def test_a_record_line_names_direction_peer_ballot_slots_and_value():
    record = {"seq": 17, "agent": "acceptor-1", "dir": "recv", "kind": "accept",
              "peer": "proposer-0", "ballot": "3.proposer-0", "slots": [41, 41],
              "value": "9f3a01c2", "commands": 12}
    assert record_line(record) == (
        "acceptor-1 #17 recv accept <- proposer-0 b3.proposer-0 slot 41 v9f3a01c2 x12")
    prepare = {"seq": 2, "agent": "proposer-0", "dir": "send", "kind": "prepare",
               "peer": "acceptor-0", "ballot": "4.proposer-0", "slots": [7, None],
               "dropped": "chaos"}
    assert record_line(prepare) == (
        "proposer-0 #2 send prepare -> acceptor-0 b4.proposer-0 slots 7.. DROPPED (chaos)")
    assert record_line(record, with_agent=False).startswith("#17 recv accept <- proposer-0")


# ------------------------------------------------------- in a pseudo-terminal


@pytest.fixture(scope="module")
def shared(module_clusters: ClusterFactory) -> Cluster:
    """One cluster with separate roles for the tests that leave it running."""
    cluster = module_clusters("roles", name="top")
    cluster.run_ok("propose", "warm")
    return cluster


def _top(cluster: Cluster, *args: str, rows: int = 24, cols: int = 80,
         term: str = "vt100") -> Terminal:
    return Terminal([PAXOSCTL, "top", "--interval", "200ms", *args], cwd=cluster.dir,
                    rows=rows, cols=cols, term=term)


def _row(screen, name: str) -> str:
    return next((line for line in screen.text() if line.startswith(name + " ")), "")


def _table_order(screen) -> list[str]:
    return [line.split()[0] for line in screen.text() if line.split()[:1]
            and line.split()[0] in AGENTS and "running" in line]


def _terminfo(term: str, *caps: str) -> list[bytes]:
    """The terminal's own strings for `caps` (terminfo, read in another process)."""
    code = ("import curses, sys; curses.setupterm(sys.argv[1], 1); "
            "print(*[repr(curses.tigetstr(c)) for c in sys.argv[2:]], sep='\\n')")
    out = subprocess.run([sys.executable, "-c", code, term, *caps], capture_output=True,
                         text=True, check=True).stdout.split("\n")
    return [eval(line) for line in out if line]  # reprs of bytes


def test_the_screen_shows_every_agent_the_leader_and_the_records_and_q_exits_0(shared):
    leader = shared.leader()
    with _top(shared) as term:
        # Rows come first; the leader mark and title follow once a view names the leader
        # (on a loaded machine that can be a pass later), so both are waited for.
        term.until(lambda s: all(_row(s, name) for name in AGENTS), 15, "a row per agent")
        term.until(lambda s: "*" in _row(s, leader).split() and s.shows(f"leader {leader}"),
                   10, f"the leader mark on {leader}")
        assert all("running" in _row(term.screen, name) for name in AGENTS)
        # The footer comes after the rows in a frame: a screen read between the two lacks it.
        term.until(lambda s: s.shows("sort: name"), 5, "the footer")
        shared.run_ok("propose", "seen-live")
        # The selected agent (the first, acceptor-0) voted on the new slot.
        term.until(lambda s: s.shows("last protocol records of acceptor-0")
                   and s.shows(f"recv accept <- {leader}"), 10, "acceptor-0's records of the Accept")
        term.send(b"a")  # every agent's: the leader's own Accept sent, named by agent
        term.until(lambda s: s.shows("last protocol records of all agents")
                   and s.shows(f"{leader} #"), 10, "every agent's records")
        term.send(b"q")
        assert term.wait(10) == 0


def test_s_changes_the_sort_and_enter_describes_the_selected_agent(shared):
    with _top(shared) as term:
        term.until(lambda s: len(_table_order(s)) == 7, 15, "the table")
        assert _table_order(term.screen) == sorted(AGENTS)
        term.send(b"s")
        term.until(lambda s: s.shows("sort: rate"), 5, "the sort by rate")
        term.send(b"s")
        term.until(lambda s: s.shows("sort: lag"), 5, "the sort by lag")
        # Learners have a lag (0 here); the others none: learners first.
        term.until(lambda s: _table_order(s)[:2] == ["learner-0", "learner-1"], 5,
                   "learners first")
        # The selection follows its agent through a sort: up to the top, then one down.
        term.send(b"k" * 7 + b"j")
        term.send(b"\r")
        term.until(lambda s: s.shows("describe learner-1") and s.shows("Name:")
                   and s.shows("learner-1.log"), 10, "learner-1's describe page")
        term.send(b"\x1b")
        term.until(lambda s: s.shows("sort: lag"), 5, "back to the table")
        term.send(b"l")
        term.until(lambda s: s.shows("logs learner-1") and s.shows("learner-1["), 10,
                   "learner-1's log lines")
        term.send(b"q")
        assert term.wait(10) == 0


def test_ctrl_c_exits_0_with_the_terminal_restored(shared):
    smcup, rmcup, civis, cnorm = _terminfo("xterm", "smcup", "rmcup", "civis", "cnorm")
    with _top(shared, term="xterm") as term:
        term.until(lambda s: len(_table_order(s)) == 7, 15, "the table")
        term.send(b"\x03")  # the line discipline makes it a SIGINT
        assert term.wait(10) == 0
        raw = term.raw
    assert raw.rfind(rmcup) > raw.rfind(smcup) >= 0  # the alternate screen left
    assert raw.rfind(cnorm) > raw.rfind(civis) >= 0  # the cursor shown again
    assert b"Traceback" not in raw


def test_a_small_terminal_shows_what_fits(shared):
    with _top(shared, rows=6, cols=40) as term:
        term.until(lambda s: s.shows("sort: name") and s.shows("NAME"), 15, "a cut screen")
        # Each line cut at the width (never wrapped onto the next), the footer last.
        lines = term.screen.text()
        assert lines[0].startswith("paxosctl top - top - leader")
        assert lines[1].startswith("NAME        STATE")
        assert [line.split()[0] for line in lines[2:5]] == ["acceptor-0", "acceptor-1",
                                                            "acceptor-2"]
        assert lines[5].startswith("sort: name (s)")
        term.send(b"jjjj")  # down to learner-1, the fifth: the table scrolls to keep it shown
        term.until(lambda s: [line.split()[0] for line in s.text()[2:5] if line] == [
            "acceptor-2", "learner-0", "learner-1"], 5, "the table scrolled to learner-1")
        term.send(b"q")
        assert term.wait(10) == 0


def test_without_a_terminal_top_refuses_in_one_line_with_exit_2(shared):
    result = subprocess.run([PAXOSCTL, "top"], cwd=shared.dir, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=30)
    assert result.returncode == 2
    assert result.stderr.startswith("error: top needs a terminal")
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_a_bad_interval_is_refused_naming_what_is_allowed(shared):
    with _top(shared, "--interval", "1ms") as term:
        assert term.wait(15) == 2
        assert b"--interval: '1ms' is out of range; allowed: 100ms to 1m" in term.raw


def test_status_does_not_import_curses(shared):
    code = ("import runpy, sys; sys.argv = ['paxosctl', 'status'];\n"
            "try:\n    runpy.run_module('paxosctl', run_name='__main__')\n"
            "except SystemExit as e:\n    print('exit', e.code, 'curses' in sys.modules,"
            " file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=shared.dir, capture_output=True,
                            text=True, timeout=30)
    assert result.stderr.strip().splitlines()[-1] == "exit 0 False", result
    assert "proposer-0" in result.stdout


def test_top_exits_3_with_one_line_when_the_cluster_goes_away(make_cluster):
    cluster = make_cluster("roles", name="gone")
    rmcup, = _terminfo("xterm", "rmcup")
    with _top(cluster, term="xterm") as term:
        term.until(lambda s: len(_table_order(s)) == 7, 15, "the table")
        cluster.run_ok("down")
        assert term.wait(30) == 3
        raw = term.raw
    after = raw[raw.rfind(rmcup) + len(rmcup):].decode()
    assert "paxosctl top: the cluster went away: " in after  # printed on the restored terminal
    assert [line for line in after.splitlines() if line.strip()] == [
        next(line for line in after.splitlines() if "went away" in line)]
