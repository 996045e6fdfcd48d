"""examples/paxosctl.service: a unit systemd accepts, whose ExecStart is a
valid `paxosctl up` that serves and stops cleanly the way the unit stops it.

systemd does not run here (nor in CI): the unit's stop is reproduced by
hand. KillMode=mixed sends SIGTERM to the main process alone, waits up to
TimeoutStopSec, then SIGKILLs whatever is left in the control group; the
test runs ExecStart in a session of its own (standing in for the cgroup),
sends SIGTERM to the supervisor only, and requires it to exit 0 in time
with nothing left in the session for the final SIGKILL.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from units import parse_unit, setting
from clusters import short_tmpdir, wait_until

from paxosctl.supervisor.supervisor import STOP_GRACE_SECONDS

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "examples" / "paxosctl.service"
PAXOSCTL = str(Path(sys.executable).parent / "paxosctl")




def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, value
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)


@pytest.fixture
def unit():
    return parse_unit(UNIT.read_text())


def test_the_unit_stops_and_restarts_as_its_comments_say(unit):
    assert setting(unit, "Service", "Type") == "exec"  # paxosctl up does not sd_notify
    assert setting(unit, "Service", "KillMode") == "mixed"
    assert setting(unit, "Service", "KillSignal") == "SIGTERM"
    # The supervisor's own stop (SIGTERM to agents, a grace, SIGKILL) fits in it.
    assert seconds(setting(unit, "Service", "TimeoutStopSec")) >= 2 * STOP_GRACE_SECONDS
    assert setting(unit, "Service", "Restart") == "on-failure"
    assert setting(unit, "Service", "UMask") == "0077"
    assert setting(unit, "Service", "User") not in ("", "root", "0")
    assert setting(unit, "Service", "StateDirectory") == "paxosctl"
    assert setting(unit, "Service", "NoNewPrivileges") == "yes"
    assert setting(unit, "Service", "ProtectSystem") == "strict"
    assert setting(unit, "Install", "WantedBy") == "multi-user.target"


def test_restart_is_prevented_for_the_exit_status_of_a_bad_manifest(unit, tmp_path):
    bad = tmp_path / "cluster.toml"
    bad.write_text('[cluster]\nname = "x"\n[agents.a]\nrole = "acceptr"\nreplicas = 3\n')
    result = subprocess.run([PAXOSCTL, "up", str(bad)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == int(setting(unit, "Service", "RestartPreventExitStatus")), \
        result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_systemd_analyze_verifies_the_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (package systemd)")
    # verify requires ExecStart's binary to exist: point it at this venv's.
    text, n = re.subn(r"(?m)^ExecStart=\S+", f"ExecStart={PAXOSCTL}", UNIT.read_text())
    assert n == 1
    copy = tmp_path / "paxosctl.service"
    copy.write_text(text)
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                            timeout=60)
    # verify exits 0 even for unknown keys and bad values: its warnings count too.
    assert result.returncode == 0 and result.stdout + result.stderr == "", \
        result.stdout + result.stderr


def session_processes(sid: int) -> list[psutil.Process]:
    """Live processes of session `sid` (what the unit's cgroup would hold)."""
    found = []
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == sid and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (OSError, psutil.Error):
            pass
    return found


def test_execstart_serves_and_stops_cleanly_on_sigterm(unit):
    argv = shlex.split(setting(unit, "Service", "ExecStart"))
    assert len(argv) == 3 and argv[1] == "up", argv  # foreground: no -d
    assert Path(argv[0]).is_absolute() and Path(argv[0]).name == "paxosctl", argv
    assert Path(argv[2]).is_absolute() and argv[2].endswith(".toml"), argv
    folder = short_tmpdir()
    # /var/lib/paxosctl (StateDirectory=, the WorkingDirectory) and /etc/paxosctl/cluster.toml.
    state_root = folder / "var-lib-paxosctl"
    state_root.mkdir(mode=0o700)
    manifest = folder / "cluster.toml"
    text, n = re.subn(r'(?m)^# state_dir = .*$', f'state_dir = "{state_root / "demo"}"',
                      (ROOT / "examples" / "cluster.toml").read_text())
    assert n == 1, "examples/cluster.toml: expected the commented state_dir line"
    text, n = re.subn(r'(?m)^listen = .*$', 'listen = "127.0.0.1:0"', text)
    assert n == 1
    manifest.write_text(text)
    validate = subprocess.run([PAXOSCTL, "validate", str(manifest)], capture_output=True,
                              text=True, timeout=30)
    assert validate.returncode == 0, validate.stderr
    log = open(folder / "journal.log", "wb")
    main = subprocess.Popen([PAXOSCTL, *argv[1:-1], str(manifest)], cwd=state_root,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, umask=0o077)
    try:
        status = lambda: subprocess.run(  # noqa: E731
            [PAXOSCTL, "status", "-f", str(manifest)], capture_output=True, text=True, timeout=30)
        wait_until(lambda: status().returncode == 0 and "leader" in status().stdout, 60,
                   "the cluster to serve")
        agents = [p for p in session_processes(main.pid) if p.pid != main.pid]
        assert len(agents) >= 7, agents  # 7 agents (and the forkserver)
        main.send_signal(signal.SIGTERM)  # KillMode=mixed: the main process alone
        code = main.wait(timeout=seconds(setting(unit, "Service", "TimeoutStopSec")))
        assert code == 0, (folder / "journal.log").read_text()[-2000:]
        # Nothing left for systemd's final SIGKILL.
        wait_until(lambda: not session_processes(main.pid), 10,
                   "every process of the service to end")
        assert "cluster demo stopped" in (folder / "journal.log").read_text()
        assert oct((state_root / "demo").stat().st_mode & 0o777) == oct(0o700)
    finally:
        try:
            os.killpg(main.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        main.wait(10)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)
