"""Smoke test of bench/long_life.py: with tiny counts, it runs both clusters
end to end, prints every figure's line (name, figures, target, met/MISSED)
and the same as JSON, exits 0 whatever the verdicts, and leaves no process
behind. It proves the script works, not that the targets are met: those
need the real counts (`python bench/long_life.py`, ~600,000 commands).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from scripts import kill_all, leftovers, processes_naming, run_bench_script

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "long_life.py"

#: Every figure the script must print, one line each.
FIGURES = ("rss_max_mib", "rss_growth_mib", "acceptor_state_bytes", "learner_state_bytes",
           "throughput_ratio", "kill_to_running_ratio", "kill_to_running_s", "restart_ratio",
           "startup_restarts", "proposal_errors")

#: `name details target<op><bound> met|MISSED`
LINE = re.compile(r"(?P<name>[a-z0-9_]+) (?P<detail>\S.*) target(?P<target>\S+) (?P<verdict>met|MISSED)")

TINY = ("--requests", "2000", "--warmup", "500", "--round", "300", "--kills", "1", "--cycles", "1")

#: Seconds the script may take; the test's own timeout leaves room to clean up after it.
RUN_TIMEOUT = 45


def run_script(*args: str, folder: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """bench/long_life.py with its temp dir inside `folder` (scripts.run_bench_script)."""
    return run_bench_script(SCRIPT, args, folder=folder, timeout=timeout, grace=10)


@pytest.mark.timeout(RUN_TIMEOUT + 15)
def test_long_life_prints_every_figure_and_cleans_up(tmp_short: Path) -> None:
    try:
        result = run_script(*TINY, "--json", folder=tmp_short, timeout=RUN_TIMEOUT)
        left = leftovers(tmp_short)
    finally:
        kill_all(processes_naming(tmp_short))
    context = f"\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, f"exit {result.returncode}{context}"
    assert not left, f"processes left running: {[p.pid for p in left]}{context}"

    *lines, last = result.stdout.strip().splitlines()
    parsed = [LINE.fullmatch(line) for line in lines]
    assert all(parsed), f"a stdout line is not a figure line{context}"
    names = [m["name"] for m in parsed]
    assert sorted(names) == sorted(FIGURES), f"figures printed: {names}{context}"

    report = json.loads(last)
    assert report["ok"] is True
    assert set(report["figures"]) == set(FIGURES)
    for m in parsed:
        figure = report["figures"][m["name"]]
        assert figure["line"] == m.group(0)
        assert figure["met"] == (m["verdict"] == "met")
    # Measured, not defaulted: these are positive whatever the verdict.
    for name in ("rss_max_mib", "acceptor_state_bytes", "learner_state_bytes", "throughput_ratio",
                 "kill_to_running_s", "restart_ratio"):
        assert report["figures"][name]["value"] > 0, f"{name}{context}"
    assert report["figures"]["learner_state_bytes"]["decided_up_to"] >= 0
    assert not Path(report["workdir"]).exists(), "the temp dir was kept without --keep"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("args", [("--requests", "100", "--warmup", "500"),
                                  ("--kills", "0"), ("--concurrency", "x")])
def test_bad_arguments_exit_2_without_starting_anything(args: tuple[str, ...],
                                                       tmp_short: Path) -> None:
    result = run_script(*args, folder=tmp_short, timeout=20)
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert not processes_naming(tmp_short)
