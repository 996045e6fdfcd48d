"""The cluster manifest: a TOML file naming the agents to run and how.

    [cluster]
    name = "demo"                  # required
    state_dir = ".paxosctl/demo"   # optional, relative to this file's folder
    id = "3f9c0a7e5d1b2c48"        # optional; `paxosctl certs init` writes it

    [agents.acceptor]              # one table per group of agents
    role = "acceptor"              # proposer | acceptor | learner | replica
    replicas = 3                   # instances acceptor-0 .. acceptor-2

    [health] [restart] [paxos] [log] [metrics]   # optional; see their classes

    [transport]                    # optional: how agents and clients connect
    kind = "tls"                   # "unix" (default) | "tls": TCP + mutual TLS 1.3
    certs = "certs"                # the folder `paxosctl certs init` wrote (beside this file)
    [transport.addresses]          # optional: where an agent listens ("host:port");
    acceptor-0 = "127.0.0.1:7100"  #   the others: 127.0.0.1, a free port

`load_manifest` reads and validates the file into frozen dataclasses. It
only looks at the file. `check_runtime` adds the checks that look at this
machine (is the metrics port free, can state_dir be written) and returns
the warnings; `warnings` returns only the warnings, which need the file
alone.

Every error is a `ManifestError` whose message is ONE line:

    <file>: <key.path>: <what is wrong>; <what is allowed>

for example

    cluster.toml: agents.acceptor.replicas: expected an integer from 1 to 64, got "three"

Errors that concern the whole file (it is missing, or is not TOML) have no
key path. Only the first error found is raised: sections are checked in a
fixed order (cluster, agents, health, restart, paxos, log, metrics), the keys of
a section in the file's order.

The defaults live in one place: the field defaults of `Health`,
`RestartSettings`, `PaxosSettings`, `LogSettings` and `MetricsSettings` below. Those
fields also say how each key is checked, so the parser, the "allowed:"
lists and the defaults cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import difflib
import errno
import ipaddress
import json
import math
import os
import re
import socket
import sys
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Iterable

from paxos_agents.runtime.chaos import ChaosSettings
from paxos_agents.runtime.identity import CLUSTER_ID, CLUSTER_ID_ALLOWED
from paxosctl.durations import ALLOWED as DURATION_ALLOWED
from paxosctl.durations import parse_duration, quote_text
from paxosctl.errors import ManifestError
from paxosctl.layout import MAX_SOCKET_PATH, paths

#: What an agent group can be. A replica plays all three protocol roles.
ROLES = ("proposer", "acceptor", "learner", "replica")
PROTOCOL_ROLES = ("proposer", "acceptor", "learner")
#: Top-level tables a manifest may have, in the order they are documented.
SECTIONS = ("cluster", "agents", "health", "restart", "paxos", "log", "metrics", "chaos", "transport")
#: How agents and clients connect: `[transport] kind`.
TRANSPORTS = ("unix", "tls")
POLICIES = ("always", "on-failure", "never")

CLUSTER_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
CLUSTER_NAME_ALLOWED = 'lowercase letters, digits and "-", 1 to 63 characters, not starting with "-"'
GROUP_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
GROUP_NAME_ALLOWED = 'a lowercase letter, then up to 31 lowercase letters, digits or "-"'
MAX_REPLICAS = 64
#: Longest duration any key accepts. Timers far beyond it are typos, and
#: some waits (threading, select) overflow on absurd values.
MAX_DURATION = "24h"
_MAX_DURATION_SECONDS = parse_duration(MAX_DURATION)
#: Kernel file systems: a state_dir under them can never be created.
KERNEL_FILE_SYSTEMS = (Path("/proc"), Path("/sys"))
STATE_DIR_ALLOWED = "a folder paxosctl can create or write"
#: The largest paxos.max_value_bytes: 1 MiB. A slot's value travels whole
#: in one frame (an Accept, a state-transfer Chunk, a page of `decided`), at
#: most frames.MAX_FRAME_BYTES (64 MiB); the leader fills a slot up to
#: SLOT_BYTES (the same 1 MiB) and a larger command goes alone, so a slot
#: is at most this plus one command's encoding: far under a frame
#: (tests/cli/test_manifest.py encodes one). The bound is set by time, not
#: by the frame. On the 2-core test machine (issue 20 (7)) building one
#: value and its three Accepts takes the leader 3 ms at 1 MiB and 42 ms at
#: 16 MiB, decoding and persisting it (fsync included) an acceptor 9 ms and
#: 74 ms. Five values in flight at once, with the transport that copied its
#: unsent buffer on every write, made the longest gap between an agent's
#: heartbeats 0.8 s at 512 KiB and 2.9 s at 2 MiB and got the leader killed
#: at 4 MiB; with the frame-queue transport (load average 11-14 from other
#: jobs): 0.34 s at 1 MiB, 0.79 s at 2 MiB, 1.17 s at 4 MiB, no restart.
#: 1 MiB keeps the worst seen near a tenth of the default heartbeat_timeout,
#: with room for a slower machine.
MAX_VALUE_BYTES = 1024 * 1024
MAX_VALUE_BYTES_WHY = (f"at most {MAX_VALUE_BYTES // 1024} KiB: a value travels in one message, "
                       "and larger ones stall agents past their health timeout")


# -- how a settings field is checked: stored in the field's metadata ---------


def _duration(default: str) -> Any:
    """A duration key: a string like "200ms", > 0 and <= MAX_DURATION."""
    return field(default=parse_duration(default), metadata={"kind": "duration", "text": default})


def _integer(default: int, low: int, high: int, why: str = "") -> Any:
    """An integer key from `low` to `high` inclusive (a TOML bool is not one);
    `why`, if given, ends the error with the reason for the bounds."""
    return field(default=default, metadata={"kind": "int", "low": low, "high": high,
                                            "text": default, "why": why})


def _choice(default: str, noun: str, choices: tuple[str, ...]) -> Any:
    """A string key that must be one of `choices`; `noun` names it in errors."""
    return field(default=default, metadata={"kind": "choice", "noun": noun, "choices": choices})


# -- the manifest, as dataclasses ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Health:
    """[health]: how the supervisor tells a live agent from a stuck one.

    - heartbeat_interval = "200ms": every agent heartbeats the supervisor this often.
    - heartbeat_timeout = "3s": an agent silent this long is killed and
      restarted. Must be greater than heartbeat_interval.
    - start_timeout = "10s": time an agent has from spawn to its first heartbeat.
    """

    heartbeat_interval: float = _duration("200ms")
    heartbeat_timeout: float = _duration("3s")
    start_timeout: float = _duration("10s")


@dataclass(frozen=True, slots=True)
class RestartSettings:
    """[restart]: what happens when an agent process ends (see paxosctl.supervisor.restart).

    - policy = "always": always | on-failure | never. "always" restarts after
      any exit, "on-failure" only after a failed one, "never" leaves it stopped.
    - backoff_initial = "100ms": wait before the first restart; it doubles
      with each consecutive failure...
    - backoff_max = "5s": ...up to this. Must be >= backoff_initial.
    - stable_after = "10s": a run that stayed up this long resets the
      failure count and the backoff.
    - max_restarts = 10: consecutive failed starts before giving up (the
      agent goes FATAL); 0 gives up at the first failure.
    """

    policy: str = _choice("always", "policy", POLICIES)
    backoff_initial: float = _duration("100ms")
    backoff_max: float = _duration("5s")
    stable_after: float = _duration("10s")
    max_restarts: int = _integer(10, 0, 1_000_000)


@dataclass(frozen=True, slots=True)
class PaxosSettings:
    """[paxos]: protocol timers and sizes, handed to every agent.

    - tick = "10ms": one protocol tick; the other durations are converted to
      whole ticks (see `ticks`), so each must be >= tick.
    - heartbeat = "50ms": the leader heartbeats this often.
    - election_timeout = "300ms": a proposer that hears no leader this long
      runs for leader. Must be greater than heartbeat.
    - accept_timeout = "100ms": a leader resends an unanswered Accept after this.
    - retry_cooldown = "500ms": a proposer retries one slot at most this often.
    - gap_timeout = "100ms": a learner asks for a missing slot after this.
    - window = 32 (1..4096): slots a leader keeps in phase 2 at once.
    - batch = 64 (1..1024): commands per slot at most.
    - max_value_bytes = 65536 (1..1048576): largest proposed value
      (MAX_VALUE_BYTES says why no more).
    - alpha = 64 (1..65536): a configuration change decided in slot i
      governs the slots from i + alpha (paxos_agents/core/configs.py); a
      leader runs at most alpha slots ahead of the decided prefix, so it
      must be at least window. Fixed for the cluster's life (`apply`
      refuses a change): the default leaves room to raise window to 64.
    """

    tick: float = _duration("10ms")
    heartbeat: float = _duration("50ms")
    election_timeout: float = _duration("300ms")
    accept_timeout: float = _duration("100ms")
    retry_cooldown: float = _duration("500ms")
    gap_timeout: float = _duration("100ms")
    window: int = _integer(32, 1, 4096)
    batch: int = _integer(64, 1, 1024)
    max_value_bytes: int = _integer(65536, 1, MAX_VALUE_BYTES, MAX_VALUE_BYTES_WHY)
    alpha: int = _integer(64, 1, 65536)

    def ticks(self, name: str) -> int:
        """The duration field `name` in whole ticks, rounded, at least 1."""
        return max(1, round(getattr(self, name) / self.tick))


@dataclass(frozen=True, slots=True)
class LogSettings:
    """[log]: how much of the decided log learners keep.

    - retain = 0 (0..2**62): learners keep the decided log of this many
      slots below what they applied and delete what is older; 0 keeps
      everything. Request ids are deduplicated within what is kept; a
      retry of a request issued before it is refused as expired. Acceptors
      compact their votes on their own, whatever this says.
    """

    retain: int = _integer(0, 0, 2**62)


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """[metrics]: the Prometheus endpoint of the supervisor.

    - listen = "127.0.0.1:9464": "host:port" ("[::1]:9464" for IPv6), port
      0..65535 (0: any free port).
    - enabled = true: false serves no metrics (and skips the port check).
    """

    listen: str = "127.0.0.1:9464"
    enabled: bool = True

    @property
    def host(self) -> str:
        """The host part of `listen`, without IPv6 brackets."""
        return _split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return _split_listen(self.listen)[1]


@dataclass(frozen=True, slots=True)
class TransportSettings:
    """[transport]: Unix sockets under state_dir (the default), or TCP with
    mutual TLS 1.3 (`kind = "tls"`) with the certificates in `certs` (a
    folder, relative to the manifest's), agents listening on 127.0.0.1 at a
    free port unless `addresses` places them."""

    kind: str = "unix"
    certs: str = "certs"
    #: (agent name, "host:port") for the agents the manifest places.
    addresses: tuple[tuple[str, str], ...] = ()

    @property
    def tls(self) -> bool:
        return self.kind == "tls"

    def certs_dir(self, manifest_path: Path) -> Path:
        """The certificates folder, absolute."""
        return (manifest_path.parent / self.certs).resolve()


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """One agent process: instance `index` of group `group`, named
    "<group>-<index>" (e.g. "acceptor-2")."""

    name: str
    group: str
    role: str
    index: int

    @property
    def roles(self) -> frozenset[str]:
        """The protocol roles this agent plays; a replica plays all three."""
        if self.role == "replica":
            return frozenset(PROTOCOL_ROLES)
        return frozenset({self.role})


@dataclass(frozen=True, slots=True)
class Manifest:
    """A validated manifest. `path` is absolute; `state_dir` is absolute and
    resolved. `agents` are in file order, group by group, then by index."""

    path: Path
    name: str
    state_dir: Path
    agents: tuple[AgentSpec, ...]
    health: Health = field(default_factory=Health)
    restart: RestartSettings = field(default_factory=RestartSettings)
    paxos: PaxosSettings = field(default_factory=PaxosSettings)
    log: LogSettings = field(default_factory=LogSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    chaos: ChaosSettings = field(default_factory=ChaosSettings)
    #: [cluster] id: the cluster in certificates' spiffe:// names (None until `certs init`).
    cluster_id: str | None = None
    transport: TransportSettings = field(default_factory=TransportSettings)

    def by_role(self, role: str) -> tuple[AgentSpec, ...]:
        """Agents playing `role`. For "proposer", "acceptor" and "learner"
        replicas are included; "replica" gives the replicas alone."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; allowed: {', '.join(ROLES)}")
        if role == "replica":
            return tuple(a for a in self.agents if a.role == "replica")
        return tuple(a for a in self.agents if role in a.roles)

    @property
    def proposers(self) -> tuple[str, ...]:
        """Names of the agents that propose (replicas included)."""
        return tuple(a.name for a in self.by_role("proposer"))

    @property
    def acceptors(self) -> tuple[str, ...]:
        """Names of the agents that accept (replicas included)."""
        return tuple(a.name for a in self.by_role("acceptor"))

    @property
    def learners(self) -> tuple[str, ...]:
        """Names of the agents that learn (replicas included)."""
        return tuple(a.name for a in self.by_role("learner"))


# -- writing --------------------------------------------------------------------


def toml_value(value: Any) -> str:
    """`value` (bool, int, float, str, or a list/tuple of those) as a TOML value,
    for tools and tests that write manifests (tomllib only reads)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


# -- loading --------------------------------------------------------------------


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read, parse and validate the manifest at `path`.

    Looks at the file only (see `check_runtime` for the machine). Raises
    ManifestError with a one-line message for the first problem found.
    """
    abs_path = Path(os.path.abspath(path))
    return _Loader(abs_path).load()


class _Loader:
    """Validation of one manifest file; `fail` builds the one-line errors."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, keys: tuple[str, ...], problem: str, *, hint: str | None = None) -> ManifestError:
        return _error(self.path, keys, problem, hint=hint)

    # -- the file as a whole --

    def load(self) -> Manifest:
        data = self.read()
        for key in data:
            if key not in SECTIONS:
                raise self.fail((key,), "unknown section; allowed: " + ", ".join(SECTIONS),
                                hint=_did_you_mean(key, SECTIONS) or _misplaced(key))
        tables = {name: self.table((name,), data.get(name)) for name in SECTIONS}
        if "cluster" not in data:
            raise self.fail(("cluster",), 'missing section; add [cluster] with name = "..."')
        if "agents" not in data:
            raise self.fail(("agents",), "missing section; " + _AGENTS_EXAMPLE)
        name, state_dir, cluster_id = self.cluster(tables["cluster"])
        agents = self.agents(tables["agents"])
        self.check_endpoint_paths(state_dir, agents)
        health = self.settings("health", Health, tables["health"])
        restart = self.settings("restart", RestartSettings, tables["restart"])
        paxos = self.settings("paxos", PaxosSettings, tables["paxos"])
        self.check_orders(health, restart, paxos, tables)
        log = self.settings("log", LogSettings, tables["log"])
        metrics = self.metrics(tables["metrics"])
        chaos = self.chaos(tables["chaos"], tuple(a.name for a in agents))
        transport = self.transport(tables["transport"], tuple(a.name for a in agents))
        return Manifest(path=self.path, name=name, state_dir=state_dir, agents=agents,
                        health=health, restart=restart, paxos=paxos, log=log, metrics=metrics,
                        chaos=chaos, cluster_id=cluster_id, transport=transport)

    def read(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raise self.fail((), "cannot read the manifest: no such file; "
                                "pass the path of a TOML manifest such as cluster.toml") from None
        except IsADirectoryError:
            raise self.fail((), "cannot read the manifest: it is a folder; "
                                "pass the path of a TOML manifest such as cluster.toml") from None
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            raise self.fail((), f"cannot read the manifest: {reason}; "
                                "pass the path of a readable TOML manifest") from None
        try:
            # utf-8-sig: tolerate the byte-order mark some editors write.
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise self.fail((), f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                                "save the manifest as UTF-8") from None
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            # tomllib's message ends with "(at line X, column Y)": keep it.
            raise self.fail((), f"invalid TOML: {exc}") from None
        except ValueError as exc:
            # tomllib lets int()'s digit limit escape as a bare ValueError
            # (CPython refuses to parse ints of more than 4300 digits).
            where = _long_number_at(text)
            if where is None:
                raise self.fail((), f"invalid TOML: {exc}") from None
            raise self.fail((), f"invalid TOML: integer too long {where}; TOML integers fit in 64 bits") from None
        except RecursionError:
            raise self.fail((), "invalid TOML: arrays or inline tables nested too deeply") from None

    def table(self, keys: tuple[str, ...], value: Any) -> dict[str, Any]:
        """`value` as a table: an absent optional section is an empty one."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            header = "[" + _key_path(keys) + "]"
            raise self.fail(keys, f"expected a table ({header}), got {_show(value)}")
        return value

    def no_unknown_keys(self, keys: tuple[str, ...], table: dict[str, Any], allowed: tuple[str, ...]) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(keys + (key,), "unknown key; allowed: " + ", ".join(allowed),
                                hint=_did_you_mean(key, allowed))

    # -- [cluster] --

    def cluster(self, table: dict[str, Any]) -> tuple[str, Path, str | None]:
        self.no_unknown_keys(("cluster",), table, ("name", "state_dir", "id"))
        if "name" not in table:
            raise self.fail(("cluster", "name"), f'missing required key; add name = "demo" ({CLUSTER_NAME_ALLOWED})')
        name = table["name"]
        if not isinstance(name, str):
            raise self.fail(("cluster", "name"), f"expected a string, got {_show(name)}; allowed: {CLUSTER_NAME_ALLOWED}")
        if not CLUSTER_NAME.fullmatch(name):
            raise self.fail(("cluster", "name"), f"invalid cluster name {_show(name)}; allowed: {CLUSTER_NAME_ALLOWED}")
        raw_dir = table.get("state_dir", f".paxosctl/{name}")
        if not isinstance(raw_dir, str) or not raw_dir or "\0" in raw_dir:
            raise self.fail(("cluster", "state_dir"),
                            f"expected a folder path, got {_show(raw_dir)}; "
                            "allowed: a path, absolute or relative to the manifest's folder")
        try:
            state_dir = (self.path.parent / Path(raw_dir).expanduser()).resolve()
        except (OSError, RuntimeError) as exc:  # symlink loop, no home directory
            raise self.fail(("cluster", "state_dir"), f"cannot resolve {_show(raw_dir)} ({exc}); "
                                                      "allowed: a path, absolute or relative to the manifest's folder")
        self.check_state_dir_path(state_dir)
        cluster_id = table.get("id")
        if cluster_id is not None and not (isinstance(cluster_id, str) and CLUSTER_ID.fullmatch(cluster_id)):
            raise self.fail(("cluster", "id"), f"invalid cluster id {_show(cluster_id)}; allowed: {CLUSTER_ID_ALLOWED}")
        return name, state_dir, cluster_id

    def check_state_dir_path(self, state_dir: Path) -> None:
        """Refuse a state_dir that no machine could hold: under a kernel
        file system, or too long for its control socket's path."""
        for kernel in KERNEL_FILE_SYSTEMS:
            if state_dir.is_relative_to(kernel):
                raise self.fail(("cluster", "state_dir"),
                                f"{state_dir} is under {kernel}, a kernel file system, not "
                                f"storage; allowed: {STATE_DIR_ALLOWED}")
        socket_bytes = len(os.fsencode(paths(state_dir)["socket"]))
        if socket_bytes > MAX_SOCKET_PATH:
            longest = MAX_SOCKET_PATH - (socket_bytes - len(os.fsencode(state_dir)))
            raise self.fail(("cluster", "state_dir"),
                            f"{state_dir} is {len(os.fsencode(state_dir))} bytes long: its control "
                            f"socket's path would be {socket_bytes} bytes, over the {MAX_SOCKET_PATH} "
                            f"a Unix socket allows; allowed: a folder path of at most {longest} bytes")

    def check_endpoint_paths(self, state_dir: Path, agents: tuple[AgentSpec, ...]) -> None:
        """Refuse agents whose endpoint (`run/<agent>.sock`) could not be bound."""
        problem = endpoint_problem(state_dir, [a.name for a in agents])
        if problem is not None:
            raise self.fail(("cluster", "state_dir"), problem + " or shorter agent group names")

    # -- [agents] --

    def agents(self, table: dict[str, Any]) -> tuple[AgentSpec, ...]:
        if not table:
            raise self.fail(("agents",), "no agent groups; " + _AGENTS_EXAMPLE)
        agents: list[AgentSpec] = []
        for group, body in table.items():
            keys = ("agents", group)
            if not GROUP_NAME.fullmatch(group):
                raise self.fail(keys, f"invalid group name; allowed: {GROUP_NAME_ALLOWED}")
            if not isinstance(body, dict):
                raise self.fail(keys, f"expected a table ([agents.{group}]) with a role, got {_show(body)}")
            self.no_unknown_keys(keys, body, ("role", "replicas"))
            if "role" not in body:
                raise self.fail(keys + ("role",), "missing required key; allowed: " + ", ".join(ROLES))
            role = self.choice(keys + ("role",), body["role"], "role", ROLES)
            replicas = self.integer(keys + ("replicas",), body.get("replicas", 1), 1, MAX_REPLICAS)
            agents.extend(AgentSpec(f"{group}-{i}", group, role, i) for i in range(replicas))

        # Groups are unique (TOML refuses a table declared twice) and an
        # instance name ends in "-<digits>" after its group, so names cannot
        # collide today; the check keeps that true if naming ever changes.
        seen: set[str] = set()
        for agent in agents:
            if agent.name in seen:
                raise self.fail(("agents", agent.group), f"duplicate agent name {_show(agent.name)}; "
                                                         "allowed: group names whose instances do not collide")
            seen.add(agent.name)

        played = set().union(*(a.roles for a in agents))
        missing = [r for r in PROTOCOL_ROLES if r not in played]
        if missing:
            raise self.fail(("agents",), f"no {_join_or(missing)} in the cluster; it needs at least one proposer, "
                                         "one acceptor and one learner (a replica counts as all three)")
        return tuple(agents)

    # -- [health], [restart], [paxos], [log]: driven by the dataclass fields --

    def settings(self, section: str, cls: type, table: dict[str, Any]) -> Any:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        self.no_unknown_keys((section,), table, tuple(fields))
        values = {}
        for key, value in table.items():
            meta = fields[key].metadata
            where = (section, key)
            if meta["kind"] == "duration":
                values[key] = self.duration(where, value)
            elif meta["kind"] == "int":
                values[key] = self.integer(where, value, meta["low"], meta["high"], meta["why"])
            else:
                values[key] = self.choice(where, value, meta["noun"], meta["choices"])
        return cls(**values)

    def duration(self, keys: tuple[str, ...], value: Any) -> float:
        if not isinstance(value, str):
            raise self.fail(keys, f"expected a duration string, got {_show(value)}; "
                                  f'durations are strings like "200ms" or "2s" (units: us, ms, s, m, h)')
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise self.fail(keys, str(exc)) from None
        if seconds <= 0 or seconds > _MAX_DURATION_SECONDS:
            raise self.fail(keys, f"{_show(value)} is out of range; "
                                  f"expected {DURATION_ALLOWED} above zero and at most {MAX_DURATION}")
        return seconds

    def integer(self, keys: tuple[str, ...], value: Any, low: int, high: int,
                why: str = "") -> int:
        # bool is a subclass of int in Python, but `replicas = true` is a mistake.
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(keys, f"expected an integer from {low} to {high}, got {_show(value)}"
                            + (f" ({why})" if why else ""))
        return value

    def choice(self, keys: tuple[str, ...], value: Any, noun: str, choices: tuple[str, ...]) -> str:
        allowed = ", ".join(choices)
        if not isinstance(value, str):
            raise self.fail(keys, f"expected a string, got {_show(value)}; allowed: {allowed}")
        if value not in choices:
            raise self.fail(keys, f"unknown {noun} {_show(value)}; allowed: {allowed}",
                            hint=_did_you_mean(value, choices))
        return value

    def check_orders(self, health: Health, restart: RestartSettings, paxos: PaxosSettings,
                     tables: dict[str, dict[str, Any]]) -> None:
        """The checks that relate two keys of one section."""
        self.order(tables, "health", health, "heartbeat_interval", "heartbeat_timeout", strict=True)
        self.order(tables, "restart", restart, "backoff_initial", "backoff_max", strict=False)
        for f in dataclasses.fields(PaxosSettings):
            if f.metadata["kind"] == "duration" and f.name != "tick":
                self.order(tables, "paxos", paxos, "tick", f.name, strict=False)
        self.order(tables, "paxos", paxos, "heartbeat", "election_timeout", strict=True)
        self.order(tables, "paxos", paxos, "window", "alpha", strict=False)

    def order(self, tables: dict[str, dict[str, Any]], section: str, settings: Any,
              low: str, high: str, *, strict: bool) -> None:
        """Fail unless settings.high > settings.low (>= unless `strict`).

        The error names `high`, unless only `low` was written in the file:
        then `low` is the key the operator has to look at."""
        low_value, high_value = getattr(settings, low), getattr(settings, high)
        if high_value > low_value or (not strict and high_value == low_value):
            return
        table = tables[section]
        blamed = low if low in table and high not in table else high

        def written(key: str) -> str:
            if key in table:
                return _show(table[key])
            default = {f.name: f for f in dataclasses.fields(settings)}[key].metadata["text"]
            return _show(default) + " (default)"

        relation = "greater than" if strict else "at least"
        found = "is not greater than" if strict else "is less than"
        raise self.fail((section, blamed), f"{high} = {written(high)} {found} {low} = {written(low)}; "
                                           f"{section}.{high} must be {relation} {section}.{low}")

    # -- [metrics] --

    def metrics(self, table: dict[str, Any]) -> MetricsSettings:
        self.no_unknown_keys(("metrics",), table, ("listen", "enabled"))
        defaults = MetricsSettings()
        listen = table.get("listen", defaults.listen)
        enabled = table.get("enabled", defaults.enabled)
        if not isinstance(listen, str):
            raise self.fail(("metrics", "listen"), f'expected "host:port", got {_show(listen)}; '
                                                   'for example "127.0.0.1:9464" or "[::1]:9464"')
        try:
            _split_listen(listen)
        except ValueError as exc:
            raise self.fail(("metrics", "listen"), str(exc)) from None
        if not isinstance(enabled, bool):
            raise self.fail(("metrics", "enabled"), f"expected true or false, got {_show(enabled)}")
        return MetricsSettings(listen=listen, enabled=enabled)


    # -- [transport] --

    def transport(self, table: dict[str, Any], agents: tuple[str, ...]) -> TransportSettings:
        self.no_unknown_keys(("transport",), table, ("kind", "certs", "addresses"))
        kind = table.get("kind", "unix")
        if kind not in TRANSPORTS:
            raise self.fail(("transport", "kind"), f"unknown transport {_show(kind)}; allowed: "
                                                   + ", ".join(f'"{t}"' for t in TRANSPORTS))
        certs = table.get("certs", "certs")
        if not isinstance(certs, str) or not certs or "\0" in certs:
            raise self.fail(("transport", "certs"), f"expected a folder path, got {_show(certs)}; "
                                                    'for example "certs" (beside this file)')
        given = self.table(("transport", "addresses"), table.get("addresses"))
        addresses = []
        for agent, address in given.items():
            keys = ("transport", "addresses", agent)
            if agent not in agents:
                raise self.fail(keys, "not an agent of this manifest; allowed: " + ", ".join(agents),
                                hint=_did_you_mean(agent, agents))
            if not isinstance(address, str):
                raise self.fail(keys, f'expected "host:port", got {_show(address)}')
            try:
                _split_listen(address)
            except ValueError as exc:
                raise self.fail(keys, str(exc)) from None
            addresses.append((agent, address))
        if addresses and kind != "tls":
            raise self.fail(("transport", "addresses"), 'agents are placed only with kind = "tls"; '
                                                        'allowed: remove [transport.addresses], or set kind = "tls"')
        return TransportSettings(kind=kind, certs=certs, addresses=tuple(addresses))

    # -- [chaos] --

    def chaos(self, table: dict[str, Any], agents: tuple[str, ...]) -> ChaosSettings:
        """[chaos]: faults the agents inject into what they send (see paxos_agents.runtime.chaos); all off by default."""
        self.no_unknown_keys(("chaos",), table, ("drop", "duplicate", "delay", "partition", "seed"))
        values: dict[str, Any] = {}
        for key in ("drop", "duplicate"):
            if key in table:
                value = table[key]
                if (isinstance(value, bool) or not isinstance(value, (int, float))
                        or not 0 <= value <= 1):
                    raise self.fail(("chaos", key),
                                    f"expected a fraction from 0 to 1, got {_show(value)}")
                values[key] = float(value)
        if "delay" in table:
            value = table["delay"]
            if isinstance(value, str) and value.strip() in ("0", "0s", "0ms"):
                values["delay"] = 0.0
            else:
                values["delay"] = self.duration(("chaos", "delay"), value)
        if "partition" in table:
            names = table["partition"]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise self.fail(("chaos", "partition"),
                                f"expected a list of agent names, got {_show(names)}")
            for n in names:
                if n not in agents:
                    raise self.fail(("chaos", "partition"),
                                    f"no agent {_show(n)}; agents: {', '.join(agents)}")
            values["partition"] = tuple(dict.fromkeys(names))
        if "seed" in table:
            values["seed"] = self.integer(("chaos", "seed"), table["seed"], 0, 2**63 - 1)
        return ChaosSettings(**values)


_AGENTS_EXAMPLE = 'add at least one group, e.g. [agents.acceptor] with role = "acceptor" and replicas = 3'


def endpoint_problem(state_dir: Path, names: Iterable[str]) -> str | None:
    """Why an agent named in `names` could not run under `state_dir`, on
    one line; None if every one can.

    An agent listens at `state_dir/run/<name>.sock`, and a Unix socket's
    path is at most MAX_SOCKET_PATH bytes: a long state_dir leaves room for
    "proposer-9" but not for the "proposer-10" a `scale` would name. The
    one check for every name: the manifest's (load_manifest), and each one
    `topology.resize` allocates (scale, replace, apply) or topology.json
    holds (up: `topology.check_endpoints`).
    """
    longest = max(names, key=lambda n: len(os.fsencode(n)), default=None)
    if longest is None:
        return None
    endpoint = paths(state_dir)["run"] / f"{longest}.sock"
    size = len(os.fsencode(endpoint))
    if size <= MAX_SOCKET_PATH:
        return None
    length = len(os.fsencode(state_dir))
    room = MAX_SOCKET_PATH - (size - length)
    return (f"agent {longest}'s endpoint {endpoint} would be {size} bytes, over the "
            f"{MAX_SOCKET_PATH} a Unix socket allows; allowed: for that name a state_dir of at "
            f"most {room} bytes (it is {length}): choose a shorter cluster.state_dir")


# -- checks against this machine ------------------------------------------------


def check_runtime(manifest: Manifest) -> list[str]:
    """Check what the file alone cannot tell, then return `warnings(manifest)`.

    Raises ManifestError if the metrics address cannot be bound right now
    (skipped when metrics are disabled) or if state_dir cannot be created or
    written. Creates nothing. The port check is advisory: something else may
    take the port between this check and the supervisor's bind.
    """
    _check_state_dir(manifest)
    if manifest.metrics.enabled:
        _check_metrics_port(manifest)
    check_certificates(manifest)
    return warnings(manifest)


def check_certificates(manifest: Manifest) -> None:
    """With `[transport] kind = "tls"`: the manifest has a cluster id and
    every agent's certificate, the client's and the CA are there and valid
    now (`identity.check_files`). ManifestError, one line naming the file
    and the fix, otherwise. Nothing to check for Unix sockets."""
    if not manifest.transport.tls:
        return
    from datetime import timezone

    from paxos_agents.runtime.identity import CertificateProblem, Identity, check_files

    keys = ("transport", "kind")
    file = display_path(manifest.path)
    if manifest.cluster_id is None:
        raise _error(manifest.path, keys, '"tls" needs the cluster id in the certificates, and '
                     f"[cluster] has no id; allowed: run `paxosctl certs init -f {file}` (it adds it)")
    folder = manifest.transport.certs_dir(manifest.path)
    ca = folder / "ca.crt"
    if not ca.is_file():
        raise _error(manifest.path, ("transport", "certs"), f"{ca}: no CA certificate; allowed: run "
                     f"`paxosctl certs init -f {file}` (it writes {folder})")
    now = datetime.now(timezone.utc)
    wanted = [("agent", a.name) for a in manifest.agents] + [("client", "client")]
    for kind, name in wanted:
        cert, key = folder / kind / f"{name}.crt", folder / kind / f"{name}.key"
        if not cert.is_file():
            raise _error(manifest.path, ("transport", "certs"), f"{cert}: no certificate for {kind} "
                         f"{name}; allowed: run `paxosctl certs issue {name} --kind {kind} -f {file}`")
        try:
            check_files(cert, key, ca, Identity(manifest.cluster_id, kind, name), now)
        except CertificateProblem as exc:
            raise _error(manifest.path, ("transport", "certs"), exc.message) from None


def warnings(manifest: Manifest) -> list[str]:
    """Warnings about a valid manifest, each one line. File only; no OS calls.

    - fewer than 3 acceptors: no failure can be tolerated;
    - metrics on a non-loopback address: anyone on the network can read them.
    """
    file = display_path(manifest.path)
    found = []
    count = len(manifest.acceptors)
    if count < 3:
        found.append(f"{file}: only {count} acceptor(s): the cluster tolerates no failure (3 tolerate one)")
    metrics = manifest.metrics
    if metrics.enabled and not _is_loopback(metrics.host):
        found.append(f"{file}: metrics.listen: {_show(metrics.listen)} is not a loopback address: "
                     "anyone on the network can read the metrics")
    return found


def state_dir_error(manifest: Manifest, problem: str) -> ManifestError:
    """The one-line error blaming cluster.state_dir, for `problem` (which
    should end with "; allowed: ...")."""
    return _error(manifest.path, ("cluster", "state_dir"), problem)


def _check_state_dir(manifest: Manifest) -> None:
    """state_dir must exist as a writable folder, or be creatable: its
    nearest existing ancestor is a folder we may write and enter."""
    def fail(problem: str) -> ManifestError:
        return state_dir_error(manifest, f"{problem}; allowed: {STATE_DIR_ALLOWED}")

    target = manifest.state_dir
    probe = target
    try:
        while not probe.exists():
            probe = probe.parent
    except OSError as exc:
        raise fail(f"cannot inspect {probe} ({(exc.strerror or str(exc)).lower()})") from None
    if not probe.is_dir():
        raise fail(f"{target} is not a folder" if probe == target
                   else f"{target} cannot be created: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise fail(f"{target} is not writable" if probe == target
                   else f"{target} cannot be created: {probe} is not writable")


def _check_metrics_port(manifest: Manifest) -> None:
    """Bind (without listening) a TCP socket on the metrics address, as the
    metrics server will (Metrics.serve: same address lookup, same options)."""
    def fail(problem: str) -> ManifestError:
        return _error(manifest.path, ("metrics", "listen"), problem)

    listen, host, port = manifest.metrics.listen, manifest.metrics.host, manifest.metrics.port
    allowed = "allowed: a free port, port 0 for any free port, or metrics.enabled = false"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (OSError, UnicodeError) as exc:
        raise fail(f"cannot resolve host {_show(host)} ({exc}); allowed: an IP address or a known host name") from None
    with socket.socket(family, kind, proto) as sock:
        # SO_REUSEADDR on, as the real server sets it (prometheus_client's
        # is an http.server.HTTPServer: allow_reuse_address). Off, the
        # TIME_WAIT connections of a scrape in the last minute make this
        # check fail where the server would bind fine; on Linux, on or off,
        # it still fails while another socket listens on the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise fail(f"{listen} is already in use; {allowed}") from None
            raise fail(f"cannot bind {listen} ({(exc.strerror or str(exc)).lower()}); {allowed}") from None


# -- small helpers -------------------------------------------------------------------


def _error(path: Path, keys: tuple[str, ...], problem: str, *, hint: str | None = None) -> ManifestError:
    """The one-line error "<file>: <key.path>: <problem>"; no key path when
    `keys` is empty (the error concerns the whole file)."""
    file = display_path(path)
    where = f"{file}: {_key_path(keys)}: " if keys else f"{file}: "
    return ManifestError(_one_line(where + problem), hint=hint)


def _split_listen(listen: str) -> tuple[str, int]:
    """("host", port) from "host:port" or "[v6]:port"; ValueError saying what is allowed."""
    allowed = f'expected "host:port" with a port from 0 to 65535, got {_show(listen)}'
    if listen.startswith("["):
        host, sep, port_text = listen[1:].partition("]:")
        if not sep:
            raise ValueError(allowed)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{_show(host)} is not an IPv6 address; {allowed}") from None
    else:
        host, sep, port_text = listen.rpartition(":")
        if not sep or not host or ":" in host:
            hint = ' (write IPv6 addresses in brackets: "[::1]:9464")' if ":" in host else ""
            raise ValueError(allowed + hint)
        if not re.fullmatch(r"[A-Za-z0-9.-]+", host):
            raise ValueError(f"invalid host {_show(host)}; {allowed}")
    if not re.fullmatch(r"[0-9]{1,5}", port_text) or int(port_text) > 65535:
        raise ValueError(allowed)
    return host, int(port_text)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may well resolve to a public address


def _show(value: Any) -> str:
    """A TOML value as it reads in a one-line message."""
    if isinstance(value, str):
        return quote_text(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        # str() of an enormous int is slow (and refused past 4300 digits).
        if value.bit_length() > 100:
            digits = int(value.bit_length() * math.log10(2)) + 1
            return f"{'-' if value < 0 else ''}an integer of about {digits} digits"
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return quote_text(str(value))


def _key_path(keys: tuple[str, ...]) -> str:
    """Keys joined with dots; a key that is not a bare TOML key is quoted."""
    return ".".join(k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else quote_text(k) for k in keys)


def _one_line(message: str) -> str:
    """Every value in a message is quoted already; this is the last guard."""
    return " ".join(message.splitlines())


def display_path(path: Path) -> str:
    """The manifest's path as error messages show it: relative to the
    current folder when it is inside it, else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except (ValueError, OSError):
        return str(path)


def _did_you_mean(word: str, choices: tuple[str, ...]) -> str | None:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"did you mean {close[0]!r}?" if close else None


def _misplaced(key: str) -> str | None:
    """A hint for a [cluster] key written above every table."""
    if key in ("name", "state_dir"):
        return f"{key} belongs in the [cluster] table"
    return None


def _join_or(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]



def _long_number_at(text: str) -> str | None:
    """"(at line X, column Y)" for the first run of digits too long for
    int() to parse, or None if there is none."""
    limit = sys.get_int_max_str_digits()
    match = re.search(r"[0-9_]{%d,}" % (limit + 1), text) if limit else None
    if not match:
        return None
    line = text.count("\n", 0, match.start()) + 1
    column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
    return f"(at line {line}, column {column})"
