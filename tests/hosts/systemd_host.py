"""systemd unit files run on a namespace host, as systemd would run them
(not a test module).

    machine = SystemdHost(net["host-1"], binds={"/opt/paxosctl/bin/paxosctl": venv_paxosctl,
                                                 "/etc/paxosctl": config_folder})
    machine.install(units)              # file name -> text (`render systemd`'s output)
    runner = machine.start("paxosctl-hosts-acceptor-0.service")
    machine.stop("paxosctl-hosts-acceptor-0.service")

What a unit's [Service] section does here:
- `ExecStart=`: run in a private mount namespace (mounts.py) where each
  path of `binds` (a machine path the unit names -> the folder or file
  standing for it) is bind-mounted, and `StateDirectory=` (each
  /var/lib/<dir>) is the host's volume, so it survives restarts as a
  disk does. One command, no `-`/`@`/`+`/`!` prefixes or `%` specifiers.
- `Environment=` (quoted or not, several lines add up), `WorkingDirectory=`
  (default /): the process's whole environment is PATH and those (no
  test-run variables).
- `Restart=` no | on-failure | always, `RestartSec=` (default 100ms,
  multiplied by `time_scale`), `RestartPreventExitStatus=` (codes and
  signal names): with `Restart=on-failure` a restart follows a non-zero
  exit or a signal other than SIGHUP, SIGINT, SIGTERM and SIGPIPE (which
  systemd counts as clean), never an exit in RestartPreventExitStatus.
  The runner (hosts.Runner) is EXITED when no restart follows.
- `TimeoutStopSec=` on stop: SIGTERM, SIGKILL after it (default 90 s,
  multiplied by `time_scale`, at least 1 s).

Not modelled: `User=`/`Group=` (everything runs as root), the hardening
(ProtectSystem=, the system-call filter, ...), `Type=` (exec's start is
the process's start), StartLimitBurst=, dependencies and [Install].
"""

from __future__ import annotations

import re
import shlex
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hosts import Host, Runner
from mounts import MOUNT_POINTS, Bind, wrap

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Signals systemd counts as a clean end for Restart=on-failure (systemd.service(5)).
CLEAN_SIGNALS = frozenset({signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE})
_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m|h)?")
_SECONDS = {None: 1.0, "ms": 0.001, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}


class UnitError(RuntimeError):
    """A unit this host cannot run as written."""


def seconds(value: str) -> float:
    """A systemd time span ("2s", "500ms", "1min 30s", "5") in seconds."""
    parts = _SPAN.findall(value)
    if not parts or _SPAN.sub("", value).strip():
        raise UnitError(f"time span {value!r}: expected e.g. 2s, 500ms, 1min")
    return sum(float(n) * _SECONDS[u or None] for n, u in parts)


@dataclass(frozen=True, slots=True)
class Unit:
    """A service unit's [Service] settings this host runs."""

    name: str
    exec_start: tuple[str, ...]
    restart: str = "no"
    restart_sec: float = 0.1
    prevent: frozenset[int] = frozenset()  # exit codes; a signal is -its number, as Popen says
    environment: Mapping[str, str] = field(default_factory=dict)
    working_directory: str = "/"
    state_directories: tuple[str, ...] = ()
    timeout_stop: float = 90.0

    @classmethod
    def parse(cls, name: str, text: str) -> Unit:
        service: dict[str, list[str]] = {}
        section = None
        for line in text.replace("\\\n", " ").splitlines():
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise UnitError(f"{name}: {line!r} is not KEY=VALUE")
            if section == "[Service]":
                service.setdefault(key.strip(), []).append(value.strip())
        one = {key: values[-1] for key, values in service.items()}
        if "ExecStart" not in one or len(service["ExecStart"]) != 1:
            raise UnitError(f"{name}: one ExecStart= is modelled, got {service.get('ExecStart')}")
        if one["ExecStart"][:1] in "-@+!" or "%" in one["ExecStart"].replace("%%", ""):
            raise UnitError(f"{name}: ExecStart prefixes and % specifiers are not modelled")
        restart = one.get("Restart", "no")
        if restart not in ("no", "on-failure", "always"):
            raise UnitError(f"{name}: Restart={restart}: no, on-failure and always are modelled")
        prevent = set()
        for token in " ".join(service.get("RestartPreventExitStatus", [])).split():
            prevent.add(int(token) if token.isdigit() else -signal.Signals[token].value)
        environment: dict[str, str] = {}
        for value in service.get("Environment", []):
            for assignment in shlex.split(value):
                key, _, val = assignment.partition("=")
                environment[key] = val
        return cls(name=name, exec_start=tuple(shlex.split(one["ExecStart"])), restart=restart,
                   restart_sec=seconds(one.get("RestartSec", "100ms")), prevent=frozenset(prevent),
                   environment=environment, working_directory=one.get("WorkingDirectory", "/"),
                   state_directories=tuple(" ".join(service.get("StateDirectory", [])).split()),
                   timeout_stop=seconds(one.get("TimeoutStopSec", "90s")))

    def restarts_after(self, code: int) -> bool:
        """Whether systemd starts the unit again after its process ended so
        (`code`: the exit status, or -signal)."""
        if code in self.prevent or self.restart == "no":
            return False
        if self.restart == "always":
            return True
        return code > 0 or (code < 0 and signal.Signals(-code) not in CLEAN_SIGNALS)


class SystemdHost:
    """Installed units on one host, started and stopped as systemd would."""

    def __init__(self, host: Host, *, binds: Mapping[str, Path], time_scale: float = 1.0) -> None:
        self.host = host
        self.binds = {Path(target): Path(source) for target, source in binds.items()}
        self.time_scale = time_scale
        self.units: dict[str, Unit] = {}
        self.runners: dict[str, Runner] = {}
        self._held: dict[str, list[Path]] = {}

    def install(self, files: Mapping[str, str]) -> None:
        """Unit files (name -> text), as `daemon-reload` would read them."""
        for name, text in files.items():
            self.units[name] = Unit.parse(name, text)

    def start(self, name: str) -> Runner:
        """`systemctl start NAME`: its process from now on, restarted as the unit says."""
        if name not in self.units:
            raise UnitError(f"{name}: not installed; installed: {', '.join(self.units) or 'none'}")
        if name in self.runners:
            raise UnitError(f"{name}: already started")
        unit = self.units[name]
        binds = {**self.binds, **{Path("/var/lib") / d: self.host.volume for d in unit.state_directories}}
        self._held[name] = MOUNT_POINTS.hold([(target, source.is_file()) for target, source in binds.items()])
        mounts = [Bind(source, target) for target, source in sorted(binds.items(), key=lambda b: len(b[0].parts))]
        command = wrap(unit.exec_start, mounts, env={"PATH": PATH, **unit.environment},
                       cwd=unit.working_directory)
        delay = unit.restart_sec * self.time_scale
        runner = self.host.keep_running(name.removesuffix(".service"), command, backoff=delay,
                                        max_backoff=delay, restart_if=unit.restarts_after)
        self.runners[name] = runner
        return runner

    def stop(self, name: str) -> None:
        """`systemctl stop NAME`: SIGTERM, SIGKILL after TimeoutStopSec; no restart."""
        runner = self.runners.pop(name)
        runner.stop(grace=max(1.0, self.units[name].timeout_stop * self.time_scale))
        MOUNT_POINTS.release(self._held.pop(name))

    def close(self) -> None:
        for name in list(self.runners):
            self.stop(name)
