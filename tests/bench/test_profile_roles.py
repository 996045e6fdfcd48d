"""bench/profile_roles.py: with a tiny load it samples every role of a real
example cluster with py-spy and splits each role's µs per command into
buckets that add up to it, leaving no process behind; a bad argument, or no
py-spy, is one line and exit 2 with nothing started. It proves the script
works, not what the figures are (BENCHMARKS.md has those, at 50,000
commands). CI does not install py-spy (the `dev` extra): the end-to-end
test is skipped there.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from scripts import kill_all, leftovers, processes_naming, run_bench_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "profile_roles.py"
ROLES = {"leader", "acceptor", "learner", "supervisor", "client"}
PY_SPY = (str(Path(sys.executable).parent / "py-spy")
          if (Path(sys.executable).parent / "py-spy").exists() else shutil.which("py-spy"))
needs_py_spy = pytest.mark.skipif(
    PY_SPY is None, reason="py-spy is not installed (pip install -e '.[dev]'); CI does not "
                           "install it")

#: Seconds the end-to-end run may take (an up, a bench of 10,000, a down).
RUN_TIMEOUT = 60


def run_script(*args: str, folder: Path, timeout: float,
               env: dict[str, str] | None = None,
               python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    """bench/profile_roles.py with its temp dir inside `folder` (scripts.run_bench_script)."""
    return run_bench_script(SCRIPT, args, folder=folder, timeout=timeout, grace=30, env=env,
                            python=python)


def load_script():
    """The script as a module (bench/ is no package), for its BUCKETS and Profile."""
    spec = importlib.util.spec_from_file_location("profile_roles", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["profile_roles"] = module  # its dataclass looks itself up there
    sys.path.insert(0, str(SCRIPT.parent))  # it imports bench/dataplane.py
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return module


@needs_py_spy
@pytest.mark.timeout(RUN_TIMEOUT + 40)
def test_every_role_is_sampled_and_its_buckets_add_up(tmp_short: Path) -> None:
    raw = tmp_short / "raw"
    try:
        result = run_script("--requests", "10000", "--rate", "500", "--json", "--raw-dir",
                            str(raw), folder=tmp_short, timeout=RUN_TIMEOUT)
        left = leftovers(tmp_short)
    finally:
        kill_all(processes_naming(tmp_short))
    context = f"\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, f"exit {result.returncode}{context}"
    assert not left, f"processes left running: {[p.pid for p in left]}{context}"
    report = json.loads(result.stdout)
    assert report["rounds"] == 1 and report["throughput_per_s"][0] > 0
    assert set(report["roles"]) == ROLES
    profile = load_script()
    for role, figures in report["roles"].items():
        us = figures["us_per_command"]
        # psutil counts CPU in 10 ms ticks: the supervisor's share of a short run may be none.
        assert us is not None and (us > 0 or role == "supervisor"), f"{role}{context}"
        # Every sample py-spy wrote is counted, a wait, or skipped (the client's set-up).
        text = (raw / f"round-1-{role}.txt").read_text()
        written = sum(int(line.rpartition(" ")[2]) for line in text.splitlines() if line)
        assert figures["samples"] + figures["wait_samples"] + figures["skipped_samples"] \
            == written, role
        if figures["samples"]:
            total = sum(b["us_per_command"] for b in figures["buckets"])
            assert abs(total - us) <= 0.01 * len(figures["buckets"]), (role, total, us)
            assert {b["bucket"] for b in figures["buckets"]} == \
                {name for name, _ in profile.BUCKETS} | {profile.OTHER}
    # The load itself was seen: the leader and the client did work under py-spy,
    # and the rules name where it went (not mostly "other").
    for role in ("leader", "client"):
        figures = report["roles"][role]
        assert figures["samples"] > 0, f"{role}{context}"
        other = next(b for b in figures["buckets"] if b["bucket"] == profile.OTHER)
        assert other["share"] < 0.5, (role, figures["buckets"])
        assert figures["top_self"] and figures["top_self"][0]["samples"] > 0


def test_a_sample_goes_to_its_innermost_named_frame() -> None:
    profile = load_script()
    p = profile.Profile()
    p.add_raw("\n".join([
        # SQLite under the core: the storage frame is the innermost named one.
        "run (paxos_agents/runtime/agent.py:1);decide (paxos_agents/core/learner.py:2);"
        "save (paxos_agents/runtime/storage/sqlite.py:3) 4",
        # The COMMIT (the fsync) apart from the statements: named by its function.
        "save (paxos_agents/runtime/storage/sqlite.py:3);__exit__ (contextlib.py:144);"
        "_immediate (paxos_agents/runtime/storage/sqlite.py:388) 6",
        # A dataclass __init__ is no rule's: it counts for its caller, the codec.
        "run (paxos_agents/runtime/agent.py:1);_d_accept (paxos_agents/runtime/codec.py:9);"
        "__create_fn__.<locals>.__init__ (<string>:3) 2",
        # Waiting in epoll is not work.
        "run (paxos_agents/runtime/agent.py:1);EpollSelector.select (selectors.py:468) 7",
        " 1",  # no Python frame at all
    ]), client=False)
    assert dict(p.buckets) == {"SQLite writes and reads": 4, "SQLite BEGIN/COMMIT": 6,
                               "codec encode/decode": 2}
    assert (p.waits, p.skipped) == (7, 1)
    assert p.functions.most_common(2) == [
        ("_immediate (paxos_agents/runtime/storage/sqlite.py)", 6),
        ("save (paxos_agents/runtime/storage/sqlite.py)", 4)]
    client = profile.Profile()
    client.add_raw("main (paxosctl:5);bench (paxosctl/tools/bench.py:1);"
                   "queue_limit (paxosctl/tools/bench.py:2) 5\n"
                   "bench (paxosctl/tools/bench.py:1);new_request_id (paxosctl/client/ids.py:9) 3",
                   client=True)
    assert client.skipped == 5 and dict(client.buckets) == {"client futures, ids, threads": 3}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args, names", [
    (("--requests", "0"), "--requests"),
    (("--rounds", "x"), "--rounds"),
    (("--rate", "5000"), "--rate"),
    (("--bogus",), "--bogus"),
])
def test_a_bad_argument_is_one_line_and_exit_2(args: tuple[str, ...], names: str,
                                               tmp_short: Path) -> None:
    result = run_script(*args, folder=tmp_short, timeout=30)
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and names in lines[0], result.stderr
    assert not processes_naming(tmp_short)


@pytest.mark.timeout(60)
def test_without_py_spy_it_says_how_to_install_it(tmp_short: Path) -> None:
    # This venv's Python seen through a folder with no py-spy beside it, and a
    # PATH without one: the packages come from PYTHONPATH instead of the venv.
    bare = tmp_short / "bin"
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    site = sysconfig.get_paths()["purelib"]
    env = {"PATH": str(bare), "PYTHONPATH": os.pathsep.join([str(ROOT), site]),
           "HOME": os.environ.get("HOME", "/")}
    result = run_script("--requests", "10", folder=tmp_short, timeout=30, env=env,
                        python=str(bare / "python"))
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "py-spy is not installed" in lines[0] \
        and "pip install" in lines[0], result.stderr
    assert result.stdout == ""
    assert not processes_naming(tmp_short)
