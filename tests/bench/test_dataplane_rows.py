"""bench/dataplane.py's verdicts: issue 24's targets, computed from one run's medians."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def dataplane():
    sys.path.insert(0, str(BENCH))
    try:
        import dataplane
        yield dataplane
    finally:
        sys.path.remove(str(BENCH))


def verdicts(dataplane, medians: dict) -> dict[str, tuple[str, str]]:
    return {r.figure: (r.ratio, r.verdict) for r in dataplane.rows({"medians": medians})}


def test_cluster_cpu_is_judged_against_the_prototype_of_the_same_run(dataplane):
    # 20 us is under 2x a slow day's 12 us prototype, over 2x a quiet day's 6.
    slow = verdicts(dataplane, {"paxosctl_cpu_cluster": 20.0, "proto_cpu_server": 12.0})
    quiet = verdicts(dataplane, {"paxosctl_cpu_cluster": 20.0, "proto_cpu_server": 6.0})
    row = "cluster CPU per decided command (agents + supervisor), c=256"
    assert slow[row] == ("1.67x", "met")
    assert quiet[row] == ("3.33x", "MISSED")


def test_client_targets_scale_with_the_prototypes_day(dataplane):
    row = "the client's CPU per command, batch API (--batch 256), c=256"
    medians = {"batch_tput": 1.0, "batch_cpu_client": 4.0, "proto_cpu_server": 9.0}
    assert verdicts(dataplane, medians)[row] == ("0.89x", "met")  # limit 3 x 1.5 = 4.5 us
    medians["proto_cpu_server"] = 6.0
    assert verdicts(dataplane, medians)[row] == ("1.33x", "MISSED")
    one = "the client's CPU per command, one future per command, c=256"
    assert verdicts(dataplane, {"paxosctl_cpu_client": 9.0, "proto_cpu_server": 6.0})[one] == (
        "0.90x", "met")


def test_p99_rows_compare_with_the_base_checkout_only_when_it_ran(dataplane):
    without = verdicts(dataplane, {"paxosctl_c1_p99_ms": 3.0})
    assert not any("--base" in figure for figure in without)
    with_base = verdicts(dataplane, {"paxosctl_c1_p99_ms": 3.0, "paxosctl_p99_ms": 40.0,
                                     "base_tput": 1.0, "base_c1_p99_ms": 2.0,
                                     "base_p99_ms": 50.0})
    assert with_base["concurrency-1 latency p99 against the code before (--base)"] == (
        "1.50x", "MISSED")
    assert with_base["concurrency-256 latency p99 against the code before (--base)"] == (
        "0.80x", "met")


def test_medians_read_the_batch_phase_and_the_base_runs(dataplane):
    run = {"throughput_per_s": 100.0, "latency_ms": {"p50": 1.0, "p99": 2.0},
           "cpu_us_per_command": {"cluster": 20.0, "client": 9.0},
           "batch": {"throughput_per_s": 300.0, "latency_ms": {"p50": 1.0, "p99": 2.0},
                     "cpu_us_per_command": {"cluster": 10.0, "client": 3.0}}}
    base = {"throughput_per_s": 50.0, "latency_ms": {"p50": 4.0, "p99": 8.0},
            "cpu_us_per_command": {"cluster": 30.0, "client": 12.0}}
    m = dataplane.medians({"paxosctl": [run], "base": [base, {"error": "x"}],
                           "base_c1": [{"latency_ms": {"p50": 0.5, "p99": 0.9}}]})
    assert (m["batch_tput"], m["batch_cpu_client"], m["batch_cpu_cluster"]) == (300.0, 3.0, 10.0)
    assert (m["paxosctl_cpu_client"], m["base_cpu_cluster"], m["base_p99_ms"]) == (9.0, 30.0, 8.0)
    assert m["base_c1_p99_ms"] == 0.9


def test_base_needs_a_checkout_with_its_venv(dataplane, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        dataplane.parse_args(["--only", "base", "--base", str(tmp_path)])
    assert exc.value.code == 2
    assert "no .venv/bin/paxosctl" in capsys.readouterr().err
    assert "base" not in dataplane.parse_args([]).parts  # not asked for: not run


def test_settle_waits_while_a_cluster_process_is_busy_and_not_once_it_is_idle(dataplane):
    import subprocess
    import time
    from types import SimpleNamespace

    import psutil

    def cluster_of(code: str) -> tuple[subprocess.Popen, SimpleNamespace]:
        child = subprocess.Popen([sys.executable, "-c", code])
        return child, SimpleNamespace(seen={child.pid: psutil.Process(child.pid)})

    busy, busy_cluster = cluster_of("while True: pass")
    idle, idle_cluster = cluster_of("import time; time.sleep(60)")
    try:
        started = time.monotonic()
        dataplane.settle([idle_cluster], longest=5)
        assert time.monotonic() - started < 2, "an idle cluster is quiet at once"
        started = time.monotonic()
        dataplane.settle([idle_cluster, busy_cluster], longest=1.5)
        assert time.monotonic() - started >= 1.5, "a busy process holds the next run back"
    finally:
        for child in (busy, idle):
            child.kill()
            child.wait()
