"""Hosts for tests: Linux network namespaces on a private switch.

Each `Host` is a network namespace with one interface, `eth0`, an address
from 192.0.2.0/24 (TEST-NET-1) and `lo` up. The switch is a bridge in a
namespace of its own, one veth pair per host (the host's `eth0`, the
switch's port `p<i>`), so nothing is made in the machine's own namespace
and its routes, interfaces and /etc/hosts are never touched. Every host
has a hosts file (/etc/netns/<namespace>/hosts, which `ip netns exec`
mounts over /etc/hosts) naming every host and the extra names a test asks
for, so names resolve inside the hosts as a cluster's DNS would, and
nowhere else.

A cluster test (the shape the namespace suite will take once `paxosctl
agent` and the TCP manifest land, issue 22; the fixture is `make_hosts`,
tests/hosts/conftest.py):

    def test_a_host_killed_and_back(make_hosts):
        names = ["acceptor-0", "acceptor-1", "acceptor-2"]
        net = make_hosts(["h0", "h1", "h2", "client"],
                         aliases={f"h{i}": [f"{n}.paxos.demo.svc"] for i, n in enumerate(names)})
        for host in net.hosts:                          # agents at {name}.paxos.demo.svc:7000
            (host.volume / "cluster.toml").write_text(MANIFEST)
        agents = {name: net[f"h{i}"].keep_running(      # as systemd / Kubernetes would
                      name, [PAXOSCTL, "agent", name, "-f", "cluster.toml"],
                      permanent_exit=EXIT_NEEDS_OPERATOR)  # its store on the host's volume
                  for i, name in enumerate(names)}
        client = net["client"]                          # the CLI from a host of its own
        assert client.run([PAXOSCTL, "propose", "x", "-f", "cluster.toml"]).returncode == 0
        net["h2"].kill_all()                            # its runner restarts the agent after a back-off
        net["h0"].partition(); ...; net["h0"].heal()    # the leader's host cut off, then back
        net["h1"].lose_disk()                           # its disk lost: the agent must refuse to rejoin
        assert agents["acceptor-1"].wait_exited() == EXIT_NEEDS_OPERATOR

What a test can do to a host:
- `run(argv)` / `popen(argv)`: a process inside the namespace (`ip netns
  exec`), in the host's volume unless told otherwise, with the test run's
  environment plus `env`; `popen`'s output goes to logs/<log>.log;
- `keep_running(name, argv)`: a `Runner` restarting the process when it
  exits, as systemd's Restart= or Kubernetes would, with a doubling
  back-off, except on the permanent exit code; `Runner.stop()` ends it;
- `kill_all()`: SIGKILL to every process of the namespace (`ip netns pids`),
  the host's power cut (its runners restart what they run);
- `partition()` / `heal()`: its switch port down / up: packets are dropped
  silently, as a pulled cable would; `cut_from(other)`: the two hosts drop
  each other's packets (a static neighbour entry to a MAC nobody has, both
  ways: iproute2 alone, no tc or netfilter); `heal()` ends both;
- `volume`: a folder that survives process restarts; `wipe()`: the volume
  emptied; `lose_disk()`: the host dies and comes back with an empty disk
  (its runners held while the processes are killed and the volume wiped,
  so no process writes to the old files after the wipe: a store unlinked
  under a live SQLite process can leave a WAL that a fresh store replays).

Every name made is unique to the run: `pxns-<pid>-<token>-...` (namespace
names are global to the machine), with the creating process's pid in it,
so a later run sweeps what a dead run left (namespaces, their processes,
/etc/netns entries, folders), and never touches a live one's.
`Network.close()` removes everything, whatever happened before.

Needs root and iproute2 (`ip`). Where namespaces cannot be made, the
`make_hosts` fixture skips, except under CI=true, where it fails, with one
line saying why (`unavailable`).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path

import pytest

#: Every namespace, /etc/netns entry and folder made here starts so, then the
#: creating pid and a random token: pxns-<pid>-<token>[-<suffix>].
PREFIX = "pxns"

#: The hosts' subnet (TEST-NET-1, RFC 5737: never routed anywhere).
SUBNET = "192.0.2"

#: A MAC address nobody has (locally administered): frames to it are dropped
#: by every host, which is how `cut_from` drops one peer's packets.
_NOWHERE_MAC = "02:00:00:00:00:00"

#: /etc/netns/<namespace>/<file> is bind-mounted over /etc/<file> by `ip netns exec`.
ETC_NETNS = Path("/etc/netns")

_HOST_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_DNS_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


class HostsError(RuntimeError):
    """An `ip` command failed, or a host was misused."""


class NamespacesUnavailable(HostsError):
    """This machine cannot make network namespaces (not root, no `ip`)."""


def unavailable(reason: str) -> None:
    """Skip the test, or fail it under CI=true: in CI a skip hides a suite that never ran."""
    line = f"network-namespace hosts unavailable: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(line + " (CI=true: a skip is a failure)", pytrace=False)
    pytest.skip(line)


def why_unavailable() -> str | None:
    """Why this machine cannot make namespace hosts, or None if it looks able to."""
    if os.geteuid() != 0:
        return "network namespaces need root (`ip netns add`)"
    if not shutil.which("ip"):
        return "no `ip` command (Debian: apt-get install iproute2)"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise HostsError(f"ip {' '.join(args)}: {result.stderr.strip() or f'exit {result.returncode}'}")
    return result


def _netns_pids(netns: str) -> list[int]:
    """The processes of `netns` (none if it is gone)."""
    result = _ip("netns", "pids", netns, check=False)
    return [int(word) for word in result.stdout.split()] if result.returncode == 0 else []


def _kill_netns_processes(netns: str, timeout: float = 5.0) -> list[int]:
    """SIGKILL every process of `netns` until it has none; the pids killed.

    Repeated because a process may fork (or a runner restart one) while the
    first ones die; waits for an empty namespace with a deadline.
    """
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while pids := _netns_pids(netns):
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        if time.monotonic() >= deadline:
            raise HostsError(f"{netns}: processes {pids} still there {timeout}s after SIGKILL")
        time.sleep(0.01)
    return killed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(prefix: str = PREFIX, tmp: Path = Path("/tmp")) -> list[str]:
    """Remove what runs whose creating process is dead left behind; the names removed.

    Only names of this module's form count (<prefix>-<pid>-<token>[-...]),
    and only those whose pid is no longer alive: a live run, this one
    included, is never touched. (A dead run's pid taken by another process
    delays its sweep; it never causes one.) Another prefix than PREFIX is
    for tests of the sweep, whose planted leftovers no other run then sweeps.
    """
    owned = re.compile(rf"^{re.escape(prefix)}-(?P<pid>\d+)-(?P<token>[0-9a-f]{{6}})(?:-.*)?$")
    names = set(_ip("netns", "list", check=False).stdout.split()) if shutil.which("ip") else set()
    names |= {p.name for p in ETC_NETNS.iterdir()} if ETC_NETNS.is_dir() else set()
    names |= {p.name for p in tmp.glob(f"{prefix}-*")}
    removed = []
    for name in sorted(names):
        match = owned.match(name)
        if not match or _pid_alive(int(match["pid"])):
            continue
        if shutil.which("ip"):
            _kill_netns_processes(name)
            _ip("netns", "del", name, check=False)
        shutil.rmtree(ETC_NETNS / name, ignore_errors=True)
        shutil.rmtree(tmp / name, ignore_errors=True)
        removed.append(name)
    return removed


class Host:
    """One network namespace with an address on the switch, a volume and logs.

    Made by `Network`; never build one by hand.
    """

    def __init__(self, network: Network, name: str, index: int) -> None:
        self.network = network
        self.name = name
        #: 192.0.2.<index + 1>, on eth0.
        self.address = f"{SUBNET}.{index + 1}"
        #: The namespace's machine-wide name.
        self.netns = f"{network.prefix}-{name}"
        #: The switch's port for this host (in the switch's namespace).
        self.port = f"p{index}"
        self.folder = network.folder / name
        #: What survives a process restart (its "disk"); processes start here.
        self.volume = self.folder / "volume"
        #: popen's and keep_running's output, one file per log name.
        self.logs = self.folder / "logs"
        #: Extra names resolving to this host, in every host's hosts file.
        self.aliases: list[str] = []
        self._processes: list[subprocess.Popen[bytes]] = []  # under _lock: runners start them too
        self._lock = threading.Lock()
        self._runners: list[Runner] = []

    def __repr__(self) -> str:
        return f"Host({self.name!r}, {self.address})"

    # ------------------------------------------------------------ processes

    def _command(self, argv: Sequence[str]) -> list[str]:
        if not argv:
            raise HostsError(f"{self.name}: an empty command line")
        return ["ip", "netns", "exec", self.netns, *map(str, argv)]

    def _env(self, env: Mapping[str, str] | None) -> dict[str, str]:
        return {**os.environ, **(env or {})}

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
            cwd: Path | None = None, input: str | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside the host to its end; stdout and stderr captured as text.

        `env` is added to the test run's environment; `cwd` defaults to the volume.
        Raises subprocess.TimeoutExpired after `timeout` seconds (the process killed).
        """
        return subprocess.run(self._command(argv), env=self._env(env), cwd=cwd or self.volume,
                              input=input, capture_output=True, text=True, timeout=timeout,
                              check=False)

    def popen(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
              cwd: Path | None = None, log: str | None = None) -> subprocess.Popen[bytes]:
        """Start `argv` inside the host; its stdout and stderr appended to logs/<log>.log.

        `log` defaults to the program's file name. The process is its own
        session leader (a Ctrl-C of the test run does not reach it); the
        network kills it at teardown if it still runs.
        """
        command = self._command(argv)
        log_path = self.log_path(log or Path(str(argv[0])).name)
        with open(log_path, "ab") as out:
            out.write(f"--- {time.strftime('%H:%M:%S')} {' '.join(map(str, argv))}\n".encode())
            out.flush()
            process = subprocess.Popen(command, env=self._env(env), cwd=cwd or self.volume,
                                       stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        with self._lock:
            self._processes = [p for p in self._processes if p.poll() is None] + [process]
        return process

    def _started(self) -> list[subprocess.Popen[bytes]]:
        with self._lock:
            return list(self._processes)

    def log_path(self, log: str) -> Path:
        """The file where `popen(..., log=log)` writes."""
        if not _HOST_NAME.match(log.replace("_", "-").replace(".", "-")):
            raise HostsError(f"{self.name}: log name {log!r}: letters, digits, '-', '_', '.' only")
        return self.logs / f"{log}.log"

    def pids(self) -> list[int]:
        """Every process of the namespace now (ours, and whatever they started)."""
        return _netns_pids(self.netns)

    def kill_all(self, timeout: float = 5.0) -> list[int]:
        """SIGKILL every process of the host, as a power cut would; the pids killed.

        Returns once the namespace was seen empty. Runners restart what they
        run, after their back-off, as an engine restarts a rebooted host's units.
        """
        killed = set()
        # Ours first, by their Popen: one just started may still be `ip netns exec`
        # on its way in, not yet listed by `ip netns pids`, and would get in after.
        for process in self._started():
            if process.poll() is None:
                process.kill()
                killed.add(process.pid)
        killed.update(_kill_netns_processes(self.netns, timeout))
        for process in self._started():  # reap our children: no zombies left behind
            # Only those killed: a runner may have started a new one since.
            if process.pid in killed:
                process.wait(timeout)
        return sorted(killed)

    def keep_running(self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                     cwd: Path | None = None, permanent_exit: int | None = None,
                     backoff: float = 0.1, max_backoff: float = 2.0,
                     stable_after: float = 5.0, restart_if: Callable[[int], bool] | None = None,
                     on_exit: Callable[[int], None] | None = None) -> Runner:
        """Run `argv` now and again whenever it exits, until `Runner.stop()`; see `Runner`."""
        runner = Runner(self, name, argv, env=env, cwd=cwd, permanent_exit=permanent_exit,
                        backoff=backoff, max_backoff=max_backoff, stable_after=stable_after,
                        restart_if=restart_if, on_exit=on_exit)
        self._runners.append(runner)
        runner.start()
        return runner

    # -------------------------------------------------------------- network

    def partition(self) -> None:
        """Take the host's switch port down: its packets, both ways, dropped without a word."""
        _ip("-n", self.network.switch, "link", "set", self.port, "down")

    def cut_from(self, other: Host) -> None:
        """Drop every packet between this host and `other`, both ways; the others still reach both.

        Each of the two sends the other's address to a MAC nobody has (a
        static neighbour entry): the switch floods the frames and every host
        drops them. A connection between them hangs, as behind a broken link.
        """
        if other is self:
            raise HostsError(f"{self.name}: cannot cut a host from itself")
        for one, two in ((self, other), (other, self)):
            _ip("-n", one.netns, "neigh", "replace", two.address, "lladdr", _NOWHERE_MAC,
                "dev", "eth0", "nud", "permanent")
        self.network._cuts.add(frozenset((self.name, other.name)))

    def heal(self) -> None:
        """End `partition()` and every `cut_from` involving this host."""
        _ip("-n", self.network.switch, "link", "set", self.port, "up")
        for cut in [c for c in self.network._cuts if self.name in c]:
            one, two = (self.network[name] for name in cut)
            for a, b in ((one, two), (two, one)):
                _ip("-n", a.netns, "neigh", "del", b.address, "dev", "eth0", check=False)
            self.network._cuts.discard(cut)

    def add_alias(self, name: str) -> None:
        """Make `name` resolve to this host in every host (hosts files rewritten in place)."""
        if not _DNS_NAME.match(name):
            raise HostsError(f"{self.name}: alias {name!r} is not a DNS name (lower-case labels, dots)")
        self.network._check_name_free(name)
        self.aliases.append(name)
        self.network._write_hosts_files()

    def move_alias(self, name: str) -> None:
        """Make `name`, an alias of another host, resolve to this one instead, in
        every host: a pod rescheduled elsewhere keeps its Service name. Names
        are looked up afresh (the hosts files are rewritten in place)."""
        owner = next((h for h in self.network.hosts if name in h.aliases), None)
        if owner is None:
            raise HostsError(f"{self.name}: {name!r} is no host's alias")
        owner.aliases.remove(name)
        self.aliases.append(name)
        self.network._write_hosts_files()

    # ----------------------------------------------------------------- disk

    def lose_disk(self) -> None:
        """The host's power cut and its disk replaced: every process killed, the
        volume emptied, then its runners start their processes again (none
        starts in between)."""
        runners = [r for r in self._runners if r.state is not RunState.STOPPED]
        for runner in runners:
            runner.hold()
        try:
            self.kill_all()
            self.wipe()
        finally:
            for runner in runners:
                runner.release()

    def wipe(self) -> None:
        """Empty the volume, as a lost disk would (the folder stays, empty)."""
        for entry in self.volume.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


class RunState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    EXITED = "exited"    # ended with the permanent exit code (or restart_if said no): never restarted
    STOPPED = "stopped"  # by stop(), or a start that failed (Runner.error says why)


class Runner:
    """A process kept running on a host, as an engine (systemd, Kubernetes) keeps a unit.

    STARTING -> RUNNING: started at once, and again after each exit.
    RUNNING -> BACKOFF: it exited; wait the back-off (doubling from `backoff`
      to `max_backoff`; back to `backoff` once a run lasted `stable_after`).
    RUNNING -> EXITED: it exited with `permanent_exit` (a refusal that no
      restart can mend, like systemd's RestartPreventExitStatus=): never
      restarted; `wait_exited` returns the code. `restart_if(code)`, when
      given, decides instead (False: EXITED), for an engine's own rules
      (systemd's Restart=on-failure with several prevented codes, say).
    `on_exit(code)`, when given, runs in the runner's thread as each process
    has ended, before its exit code is recorded and before the back-off:
    what the engine reads of a finished process (Kubernetes' termination
    message) is read before the next start can overwrite it.
    any -> STOPPED: `stop()`: SIGTERM, SIGKILL after a grace period, no restart.

    `starts` counts the processes started, `start_times` says when;
    `exit_codes` lists how each ended (negative: killed by that signal).
    Each start's output is appended to logs/<name>.log.
    """

    def __init__(self, host: Host, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None,
                 cwd: Path | None, permanent_exit: int | None, backoff: float, max_backoff: float,
                 stable_after: float, restart_if: Callable[[int], bool] | None = None,
                 on_exit: Callable[[int], None] | None = None) -> None:
        self.host = host
        self.name = name
        self.argv = list(argv)
        self.permanent_exit = permanent_exit
        self._restart_if = restart_if or (lambda code: code != permanent_exit)
        self._on_exit = on_exit
        self._env, self._cwd = env, cwd
        self._backoff, self._max_backoff, self._stable_after = backoff, max_backoff, stable_after
        self.state = RunState.STARTING
        #: Why a start failed (the runner then STOPPED), else None.
        self.error: Exception | None = None
        self.starts = 0
        self.exit_codes: list[int] = []
        #: time.monotonic() at each start: the back-off shows in the gaps.
        self.start_times: list[float] = []
        self.process: subprocess.Popen[bytes] | None = None
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        #: Cleared by `hold()`: no process starts until `release()`.
        self._may_start = threading.Event()
        self._may_start.set()
        self._thread = threading.Thread(target=self._loop, name=f"runner-{host.name}-{name}", daemon=True)

    def __repr__(self) -> str:
        return f"Runner({self.host.name}/{self.name}, {self.state}, starts={self.starts})"

    def start(self) -> None:
        self._thread.start()

    def _set(self, **fields: object) -> None:
        with self._changed:
            for key, value in fields.items():
                setattr(self, key, value)
            self._changed.notify_all()

    def hold(self) -> None:
        """Start no process until `release()` (one running goes on)."""
        self._may_start.clear()

    def release(self) -> None:
        self._may_start.set()

    def _loop(self) -> None:
        delay = self._backoff
        while not self._stopping.is_set():
            while not self._may_start.wait(0.05):
                if self._stopping.is_set():
                    break
            started = time.monotonic()
            with self._changed:
                if self._stopping.is_set():  # stop() came between the check and the start
                    break
                try:
                    process = self.host.popen(self.argv, env=self._env, cwd=self._cwd, log=self.name)
                except (OSError, HostsError) as e:
                    # STARTING -> STOPPED: nothing to restart (the host is gone, say).
                    self._set(state=RunState.STOPPED, error=e)
                    return
                # STARTING -> RUNNING
                self._set(process=process, starts=self.starts + 1, state=RunState.RUNNING,
                          start_times=[*self.start_times, started])
            code = process.wait()
            if self._on_exit is not None:
                self._on_exit(code)
            self._set(exit_codes=[*self.exit_codes, code])
            if self._stopping.is_set():
                break
            if not self._restart_if(code):
                # RUNNING -> EXITED: a permanent refusal is never restarted.
                self._set(state=RunState.EXITED)
                return
            # RUNNING -> BACKOFF
            if time.monotonic() - started >= self._stable_after:
                delay = self._backoff
            self._set(state=RunState.BACKOFF)
            self._stopping.wait(delay)
            delay = min(delay * 2, self._max_backoff)
        self._set(state=RunState.STOPPED)

    def wait_started(self, count: int, timeout: float = 10) -> subprocess.Popen[bytes]:
        """Wait until the `count`-th process has started; the current process."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.starts >= count or self.state in (RunState.EXITED, RunState.STOPPED),
                                          timeout):
                raise AssertionError(f"{self!r}: start {count} not within {timeout}s; "
                                     f"exit codes {self.exit_codes}")
            if self.starts < count:
                raise AssertionError(f"{self!r}: ended before start {count}; exit codes {self.exit_codes}"
                                     + (f"; {self.error}" if self.error else ""))
            assert self.process is not None
            return self.process

    def wait_exited(self, timeout: float = 10) -> int:
        """Wait for the runner to give up on a permanent exit; that exit code."""
        self._thread.join(timeout)
        if self._thread.is_alive() or self.state is not RunState.EXITED:
            raise AssertionError(f"{self!r}: no permanent exit within {timeout}s; exit codes {self.exit_codes}")
        return self.exit_codes[-1]

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the process (SIGKILL after `grace` seconds); never restart it."""
        with self._changed:
            self._stopping.set()
            process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
        self._thread.join(grace + 5)
        if self._thread.is_alive():
            raise HostsError(f"{self!r}: did not stop")


class Network:
    """Hosts on one switch, made at once, removed by `close()` (or `with`).

        with Network(["a", "b"], aliases={"a": ["acceptor-0.paxos.demo.svc"]}) as net:
            net["a"].popen([...]); net["b"].run([...])

    Raises NamespacesUnavailable when this machine cannot make namespaces.
    """

    def __init__(self, names: Sequence[str], *, aliases: Mapping[str, Iterable[str]] | None = None) -> None:
        self._check_names(names, aliases or {})
        if reason := why_unavailable():
            raise NamespacesUnavailable(reason)
        sweep_stale()
        self.prefix = f"{PREFIX}-{os.getpid()}-{secrets.token_hex(3)}"
        #: The switch's namespace, holding the bridge br0 and one port per host.
        self.switch = f"{self.prefix}-sw"
        self.folder = Path("/tmp") / self.prefix
        self.hosts = [Host(self, name, i) for i, name in enumerate(names)]
        self._by_name = {host.name: host for host in self.hosts}
        self._cuts: set[frozenset[str]] = set()
        self._made: list[str] = []  # namespaces, in the order made
        self._closed = False
        self.folder.mkdir(mode=0o700)
        try:
            self._make_switch()
            for host in self.hosts:
                host.aliases = list((aliases or {}).get(host.name, ()))
                self._make_host(host)
            self._write_hosts_files()
        except BaseException:
            self.close()
            raise

    def add_host(self, name: str, aliases: Iterable[str] = ()) -> Host:
        """A new host on the switch, its name and `aliases` in every host's hosts
        file (rewritten in place): a pod scheduled after the others."""
        self._check_names([*self._by_name, name], {name: list(aliases)})
        for taken in (name, *aliases):
            self._check_name_free(taken)
        host = Host(self, name, len(self.hosts))
        host.aliases = list(aliases)
        self.hosts.append(host)
        self._by_name[name] = host
        self._make_host(host)  # close() removes it with the others, even if this fails half-way
        self._write_hosts_files()
        return host

    def __getitem__(self, name: str) -> Host:
        try:
            return self._by_name[name]
        except KeyError:
            raise HostsError(f"no host {name!r}; hosts: {', '.join(self._by_name)}") from None

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _check_names(names: Sequence[str], aliases: Mapping[str, Iterable[str]]) -> None:
        if not 1 <= len(names) <= 250:
            raise HostsError(f"{len(names)} hosts: 1 to 250 allowed")
        for name in names:
            if not _HOST_NAME.match(name):
                raise HostsError(f"host name {name!r}: a lower-case letter, then letters, digits, '-' (31 at most)")
        if len(set(names)) != len(names):
            raise HostsError(f"host names repeat: {list(names)}")
        every = list(names)
        for host, extra in aliases.items():
            if host not in names:
                raise HostsError(f"aliases for {host!r}: no such host; hosts: {', '.join(names)}")
            for alias in extra:
                if not _DNS_NAME.match(alias):
                    raise HostsError(f"alias {alias!r} is not a DNS name (lower-case labels, dots)")
                every.append(alias)
        if len(set(every)) != len(every):
            raise HostsError(f"a name is given twice among hosts and aliases: {every}")

    def _check_name_free(self, name: str) -> None:
        taken = {n for host in self.hosts for n in (host.name, *host.aliases)}
        if name in taken:
            raise HostsError(f"name {name!r} already resolves to a host")

    def _add_netns(self, netns: str) -> None:
        result = _ip("netns", "add", netns, check=False)
        if result.returncode != 0:
            reason = result.stderr.strip() or f"exit {result.returncode}"
            if not self._made:  # the very first one: this machine cannot, rather than a bug here
                raise NamespacesUnavailable(f"ip netns add {netns}: {reason}")
            raise HostsError(f"ip netns add {netns}: {reason}")
        self._made.append(netns)
        _ip("-n", netns, "link", "set", "lo", "up")

    def _make_switch(self) -> None:
        self._add_netns(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")

    def _make_host(self, host: Host) -> None:
        self._add_netns(host.netns)
        host.volume.mkdir(parents=True)
        host.logs.mkdir()
        # Both ends are made inside namespaces of ours: the root namespace never sees them.
        _ip("-n", self.switch, "link", "add", host.port, "type", "veth", "peer", "name", "eth0",
            "netns", host.netns)
        _ip("-n", self.switch, "link", "set", host.port, "master", "br0", "up")
        _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", host.netns, "link", "set", "eth0", "up")

    def _write_hosts_files(self) -> None:
        """Every host's /etc/hosts: localhost, then every host's address with its name and aliases.

        Written in place (not renamed over): a running process's /etc/hosts is
        a bind mount of the file, which a rename would leave pointing at the old one.
        """
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        lines += [f"{host.address}\t{' '.join([host.name, *host.aliases])}" for host in self.hosts]
        text = "\n".join(lines) + "\n"
        for host in self.hosts:
            folder = ETC_NETNS / host.netns
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / "hosts", "w") as out:
                out.write(text)

    def close(self) -> None:
        """Stop every runner, kill every process, remove namespaces, /etc/netns entries and folders.

        Safe to call twice, and after a failure half-way through `__init__`.
        Raises HostsError at the end if something could not be removed.
        """
        if self._closed:
            return
        self._closed = True
        problems: list[str] = []
        for host in self.hosts:
            for runner in host._runners:
                try:
                    runner.stop(grace=1.0)
                except HostsError as e:
                    problems.append(str(e))
        for netns in reversed(self._made):
            try:
                _kill_netns_processes(netns)
            except HostsError as e:
                problems.append(str(e))
            result = _ip("netns", "del", netns, check=False)
            if result.returncode != 0:
                problems.append(f"ip netns del {netns}: {result.stderr.strip()}")
        for host in self.hosts:
            for process in host._started():
                if process.poll() is None:
                    process.kill()
                    process.wait(5)
            shutil.rmtree(ETC_NETNS / host.netns, ignore_errors=True)
        shutil.rmtree(self.folder, ignore_errors=True)
        if problems:
            raise HostsError("; ".join(problems))
