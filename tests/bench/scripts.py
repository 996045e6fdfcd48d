"""Benchmark scripts (bench/*.py) run by their tests: `run_bench_script`, and
the processes of a folder they must leave none of (`leftovers`)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import psutil
import pytest
from clusters import alive


def run_bench_script(script: Path, args: Sequence[str], *, folder: Path, timeout: float,
                     grace: float, env: dict[str, str] | None = None,
                     python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    """Run `script` with its temp dir inside `folder`. On timeout, SIGTERM it
    (it then stops what it started: samplers, clusters), wait `grace`
    seconds for its output, and fail the test."""
    env = {**(env or os.environ), "TMPDIR": str(folder)}
    process = subprocess.Popen([python, str(script), *args], cwd=folder, env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=grace)
        pytest.fail(f"{script.name} took over {timeout}s\nstdout: {out}\nstderr: {err}")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def processes_naming(folder: Path) -> list[psutil.Process]:
    """Live processes whose command line names `folder` (the supervisors) or
    that run inside it (the agents: the script runs `up` in its clusters'
    folders, and a forkserver's children keep that working folder)."""
    marker = re.compile(re.escape(str(folder)) + r"(?![\w.-])")
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            cwd = p.cwd() if p.pid != os.getpid() else ""
            if p.pid != os.getpid() and (
                    any(marker.search(part) for part in p.info["cmdline"] or ())
                    or cwd == str(folder) or cwd.startswith(str(folder) + os.sep)):
                found.append(p)
        except psutil.Error:
            pass
    return [p for p in found if alive(p)]


def leftovers(folder: Path, grace: float = 3.0) -> list[psutil.Process]:
    """Processes of `folder` still there after `grace` seconds (a process
    that is exiting is not a leak)."""
    deadline = time.monotonic() + grace
    while (found := processes_naming(folder)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def kill_all(processes: list[psutil.Process]) -> None:
    for p in processes:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(processes, timeout=10)
