"""From a manifest to one running agent, with no supervisor (`paxosctl agent NAME`).

What it runs is what the supervisor would run for NAME
(paxosctl.runspec.runtime_spec): the manifest's membership, settings,
transport and cluster id (for a name `scale` or `replace` added, which
the manifest does not list: the manifest's membership with it added, and
epoch 0 the manifest's acceptors, until its first membership record
comes: runtime/members.py), its state in the state dir laid out as the
supervisor lays it (paxosctl.layout: `state/NAME.db`, `run/` for Unix
sockets and published TLS addresses). The agent itself is
`paxos_agents.runtime.main.serve` with a `StandaloneControl`.

Clients find the agents as they find a supervised cluster's: through
`run/endpoints.json`, which every standalone agent writes when it starts.
Each writes the same body (it depends only on the manifest), whole and
renamed into place, so agents started together in one state dir agree,
and `paxosctl propose` and `decided` work against them unchanged. On
hosts of their own each agent has its own state dir; the CLI there needs
the same file (issue 23 makes it ask the agents instead).

Exit codes: 0 after SIGTERM or SIGINT (the current turn's persist
included); `frames.EXIT_NEEDS_OPERATOR` (78) with one line on stderr for
refusals a restart would only repeat (a certificate problem, state that
cannot be opened or is missing, a supervisor running the same state dir);
2 for bad input (an unknown NAME, a bad manifest, an HTTP address that
cannot be bound), as other commands.

With `$PAXOSCTL_TERMINATION_LOG` set (a pod sets /dev/termination-log) the
refusal line is also written there before exit 78: Kubernetes cannot be
told to skip an exit code, so a StatefulSet's pod restarts in
CrashLoopBackOff, and that file becomes the message `kubectl describe`
and `kubectl get pod` show.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Callable

from paxos_agents.core.configs import History
from paxos_agents.core.settings import Membership
from paxos_agents.runtime.control import Board, StandaloneControl
from paxos_agents.runtime.frames import EXIT_NEEDS_OPERATOR

from ..endpoints import endpoints_body, write_endpoints
from ..errors import ManifestError, PaxosctlError, UsageError
from ..layout import paths
from ..manifest import Manifest, display_path
from ..runspec import membership_of, protocol_settings, runtime_spec
from .health import Probes


#: The environment variable naming the file the refusal line goes to.
TERMINATION_LOG = "PAXOSCTL_TERMINATION_LOG"


class NeedsOperator(PaxosctlError):
    """A refusal a restart would only repeat: exit 78, so that an engine
    (systemd's RestartPreventExitStatus, a supervisor) stops restarting."""

    exit_code = EXIT_NEEDS_OPERATOR


def role_of(manifest: Manifest, name: str) -> str:
    """The manifest role of agent `name`, or of its group for a name a
    membership change added (`<group>-<index>` of a manifest group, placed
    over TLS by the manifest: its template or a host's list); UsageError
    naming the manifest's agents otherwise."""
    for agent in manifest.agents:
        if agent.name == name:
            return agent.role
    group, _, index = name.rpartition("-")
    same = [a for a in manifest.agents if a.group == group]
    if same and index.isdigit() and _placed(manifest, name):
        return same[0].role
    raise UsageError(f"{display_path(manifest.path)} has no agent {name!r}; agents: "
                     f"{', '.join(a.name for a in manifest.agents)}")


def _placed(manifest: Manifest, name: str) -> bool:
    """Whether the manifest says where `name` listens over TLS (an added
    agent must be placed; over Unix sockets the agents of one state dir are
    the supervisor's or the manifest's: no name is added there)."""
    if not manifest.transport.tls:
        return False
    try:
        return manifest.transport.placement(name).placed
    except ValueError:
        return False


def membership_with(manifest: Manifest, name: str, role: str) -> Membership:
    """The manifest's membership, with `name` (an agent a change added) in
    `role`'s roles: what it runs until its first membership record comes
    (its peers admit it as "added by a change"; the record then replaces this)."""
    m = membership_of(manifest)
    if name in {a.name for a in manifest.agents}:
        return m
    roles = {"replica": ("proposer", "acceptor", "learner")}.get(role, (role,))
    return Membership(m.proposers + ((name,) if "proposer" in roles else ()),
                      m.acceptors + ((name,) if "acceptor" in roles else ()),
                      m.learners + ((name,) if "learner" in roles else ()))


def run(manifest: Manifest, name: str, *, state_dir: Path | None, bootstrap: bool,
        http: tuple[str, int], say: Callable[[str], None]) -> None:
    """Run agent `name` of `manifest` in this process until SIGTERM or SIGINT.

    Raises `PaxosctlError` for what is refused before the agent starts;
    the agent's own refusals exit 78 (`serve`). `say` prints the line
    that tells where the probes listen."""
    try:
        _run(manifest, name, state_dir=state_dir, bootstrap=bootstrap, http=http, say=say)
    except NeedsOperator as e:
        _write_termination_log(str(e))
        raise


def _run(manifest: Manifest, name: str, *, state_dir: Path | None, bootstrap: bool,
         http: tuple[str, int], say: Callable[[str], None]) -> None:
    role = role_of(manifest, name)
    folder = (state_dir or manifest.state_dir).resolve()
    layout = paths(folder)
    if manifest.transport.tls and manifest.cluster_id is None:
        raise ManifestError(f"{display_path(manifest.path)}: transport.kind: \"tls\" needs "
                            "[cluster] id; allowed: run `paxosctl certs init` (it adds it)")
    for key in ("state", "run"):
        layout[key].mkdir(mode=0o700, parents=True, exist_ok=True)
    # The name's lock first, then the look for a supervisor (which takes its
    # own lock, then looks at ours: ownership._refuse_standalone_agents).
    _hold_the_name(layout["run"] / f"{name}.lock", name, folder)
    _refuse_a_running_supervisor(folder)
    membership = membership_with(manifest, name, role)
    settings = protocol_settings(manifest)
    # An added agent's epoch 0 is the manifest's acceptors, not its own membership's.
    configs = None if membership == membership_of(manifest) else History.initial(
        settings.alpha, manifest.acceptors).to_json()
    spec = runtime_spec(manifest, name, membership=membership, settings=settings,
                        state_paths=layout, cluster_id=manifest.cluster_id or "",
                        bootstrap=bootstrap, configs=configs)
    board = Board()
    control = _RefusalRecorded(board)
    # A signal while the store opens must end the program as one during the loop does.
    signal.signal(signal.SIGTERM, control.request_stop)
    signal.signal(signal.SIGINT, control.request_stop)
    try:
        probes = Probes(board, name, role, membership, spec.heartbeat_seconds, *http)
    except OSError as e:
        raise UsageError(f"--http {http[0]}:{http[1]}: cannot listen there "
                         f"({e.strerror or e})") from None
    write_endpoints(layout["endpoints"], endpoints_body(
        manifest, spec.cluster_id, membership.proposers, membership.learners, settings.retain_slots))
    _log_to_stdout(name)
    probes.start()
    _publish_http(layout["run"] / f"{name}.http", f"{http[0]}:{probes.port}")
    say(f"{name}: probes on http://{http[0]}:{probes.port} (/healthz, /readyz, /metrics)")
    from paxos_agents.runtime.main import serve

    try:
        serve(spec, control)
    finally:
        probes.close()


class _RefusalRecorded(StandaloneControl):
    """The agent's own refusals (`serve`'s, then exit 78) go to the
    termination log too, besides the one line on stderr."""

    def fatal(self, message: str) -> None:
        super().fatal(message)
        _write_termination_log(message)


def _write_termination_log(line: str) -> None:
    """`line` into `$PAXOSCTL_TERMINATION_LOG` if set; a file that cannot be
    written costs the message, never the exit code (stderr has the line)."""
    path = os.environ.get(TERMINATION_LOG)
    if not path:
        return
    try:
        with open(path, "w") as f:
            f.write(line + "\n")
    except OSError as e:
        print(f"cannot write ${TERMINATION_LOG} {path}: {e.strerror or e}", file=sys.stderr, flush=True)


def _refuse_a_running_supervisor(state_dir: Path) -> None:
    """A supervisor runs (or restarts) its own agents there: a second agent
    of the same name would take over its endpoint and its store."""
    from ..supervisor.pidfile import live_supervisor

    record = live_supervisor(state_dir)
    if record is not None:
        raise NeedsOperator(f"a supervisor (pid {record.pid or 'unknown'}) runs the cluster in "
                            f"{state_dir}: stop it (paxosctl down) or give --state-dir another folder")


def _hold_the_name(lock: Path, name: str, state_dir: Path) -> None:
    """Lock `run/NAME.lock` for this process's life (the descriptor is never
    closed; the kernel releases the lock when the process ends, however).

    A second `paxosctl agent NAME` in the same state dir would take over the
    first's socket and open the same store beside it: two processes with
    one acceptor's promises and votes, each deciding on its own copy in
    memory, which can undo a chosen value."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise NeedsOperator(f"{name} already runs in {state_dir} ({lock} is locked by "
                            "another process): stop it first") from None


def _publish_http(path: Path, address: str) -> None:
    """Say where the probes listen in `run/NAME.http` (whole, then renamed):
    `paxosctl metrics` scrapes there when the manifest does not place them."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(address + "\n")
    os.replace(tmp, path)


def _log_to_stdout(name: str) -> None:
    """One line per record on stdout, as a container's or unit's log wants."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s {name}[%(process)d] %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)  # StreamHandler flushes every record
