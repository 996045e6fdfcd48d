"""`paxosctl agent` writes its permanent refusal to `$PAXOSCTL_TERMINATION_LOG`
before exit 78 (the pod's /dev/termination-log: Kubernetes shows it as the
container's termination message), for both kinds of refusal: the agent's
own (`serve`: state it cannot open) and the program's (a name already held)."""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

from clusters import PAXOSCTL, manifest_text

from paxos_agents.runtime.frames import EXIT_NEEDS_OPERATOR


def _agent(folder: Path, env_log: Path | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PAXOSCTL_TERMINATION_LOG"}
    if env_log is not None:
        env["PAXOSCTL_TERMINATION_LOG"] = str(env_log)
    return subprocess.run([PAXOSCTL, "agent", "replica-0", "-f", "cluster.toml", "--http", "127.0.0.1:0",
                           "--bootstrap"], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)


def _refusal(stderr: str) -> str:
    lines = [l for l in stderr.splitlines() if not l.startswith("replica-0: probes on")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_state_that_cannot_be_opened_is_the_termination_message(tmp_short):
    (tmp_short / "cluster.toml").write_text(manifest_text("replicas", "tl", state_dir="st"))
    store = tmp_short / "st" / "state" / "replica-0.db"
    store.parent.mkdir(parents=True)
    store.write_bytes(b"not a database, not empty either" * 100)
    log = tmp_short / "termination-log"
    result = _agent(tmp_short, log)
    assert result.returncode == EXIT_NEEDS_OPERATOR, result
    line = _refusal(result.stderr)
    assert line.startswith("cannot open state: ")
    assert log.read_text() == line + "\n"


def test_a_name_already_held_is_the_termination_message(tmp_short):
    (tmp_short / "cluster.toml").write_text(manifest_text("replicas", "tl", state_dir="st"))
    lock = tmp_short / "st" / "run" / "replica-0.lock"
    lock.parent.mkdir(parents=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a running replica-0 holds it
        log = tmp_short / "termination-log"
        result = _agent(tmp_short, log)
    finally:
        os.close(fd)
    assert result.returncode == EXIT_NEEDS_OPERATOR, result
    line = _refusal(result.stderr)
    assert line.startswith("error: replica-0 already runs in ")
    assert log.read_text() == line.removeprefix("error: ") + "\n"


def test_without_the_variable_nothing_is_written_and_an_unwritable_log_keeps_exit_78(tmp_short):
    (tmp_short / "cluster.toml").write_text(manifest_text("replicas", "tl", state_dir="st"))
    store = tmp_short / "st" / "state" / "replica-0.db"
    store.parent.mkdir(parents=True)
    store.write_bytes(b"garbage" * 500)
    result = _agent(tmp_short, None)
    assert result.returncode == EXIT_NEEDS_OPERATOR and sorted(p.name for p in tmp_short.iterdir()) == \
        ["cluster.toml", "st"], result
    result = _agent(tmp_short, tmp_short / "no-such-folder" / "log")
    assert result.returncode == EXIT_NEEDS_OPERATOR, result
    assert "cannot write $PAXOSCTL_TERMINATION_LOG" in result.stderr
