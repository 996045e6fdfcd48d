"""Change what runs: `apply` a manifest, `scale` a group, `replace` an agent."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ..discovery import find_manifest
from ..durations import format_duration
from ..errors import NotRunning, PaxosctlError, UsageError
from ..manifest import load_manifest
from .common import AgentArgument, FileOption, connect, echo, echo_err, unsupervised

if TYPE_CHECKING:
    from ..endpoints import Endpoints
    from ..manifest import Manifest
    from ..membership.remote import Launcher


def apply(
    file: FileOption = None,
    timeout: Annotated[float, typer.Option(
        min=1, max=3600, help="Seconds to wait for the changes to be in force.")] = 60.0,
) -> None:
    """Change the running cluster to match FILE, touching only what changed (as SIGHUP does).

    Prints one line per change, then waits until it is in force: new agents
    running, removed ones stopped, agents restarted one at a time for
    settings they read at start; a new number of acceptors is a membership
    change, as `scale`. A refused change (an agent's role, log.retain,
    paxos.alpha, the cluster's name or state_dir, the acceptors together
    with other changes) changes nothing and exits 2; no difference exits 0.
    """
    from ..errors import RequestFailed

    started = time.monotonic()
    file = find_manifest(file)
    try:
        client = connect(file)
    except NotRunning:
        raise NotRunning(f"no cluster running for {file}: apply changes a running cluster",
                         hint=f"start it with: paxosctl up -d -f {file} (if it runs with another "
                              "cluster.state_dir, that cannot change while it runs: put it back)"
                         ) from None
    manifest = load_manifest(file)
    with client:
        try:
            reply = client.request("apply", timeout=timeout + 10, file=str(manifest.path),
                                   wait=timeout)
        except RequestFailed as e:
            for line in e.reply.get("refused", []):
                echo_err(f"refused: {line}")
            for line in e.reply.get("changes", []):
                echo(line)
            if e.error == "bad_request":
                raise UsageError(e.message.removeprefix("bad apply request: ")) from None
            raise
    if not reply["changes"]:
        echo(f"no change: cluster {manifest.name} already runs {file}")
        return
    for line in reply["changes"]:
        echo(line)
    restarted = f"; restarted {', '.join(reply['restarted'])}" if reply["restarted"] else ""
    echo(f"applied {file}: in force after {time.monotonic() - started:.1f}s{restarted}")


ENGINES = ("k8s", "systemd")

EngineOption = Annotated[Optional[str], typer.Option(
    "--engine", help="With no supervisor (agents on their own hosts): what starts and stops "
                     f"agents, one of: {', '.join(ENGINES)}.", show_default=False)]
ApplyOption = Annotated[bool, typer.Option(
    "--apply", help="Apply what the engine needs (kubectl apply / delete, or the units "
                    "written and started) instead of printing it.")]
KubectlOption = Annotated[str, typer.Option("--kubectl", help="The kubectl to run (--apply).")]
NamespaceOption = Annotated[str, typer.Option(
    "--namespace", "-n", help="The Kubernetes namespace of the cluster.")]
ImageOption = Annotated[str, typer.Option("--image", help="The agents' container image.")]
SystemctlOption = Annotated[str, typer.Option("--systemctl", help="The systemctl to run (--apply).")]
UnitDirOption = Annotated[Path, typer.Option(
    "--unit-dir", help="Where --apply writes an added agent's unit.")]


def scale(
    change: Annotated[list[str], typer.Argument(
        help="GROUP=N: the agent group (a manifest [agents.GROUP] table) and its new count.",
        metavar="GROUP=N")],
    file: FileOption = None,
    timeout: Annotated[float, typer.Option(
        min=1, max=3600, help="Seconds to wait for the change to be in force.")] = 60.0,
    no_wait: Annotated[bool, typer.Option(
        "--no-wait", help="Start the change and exit; paxosctl status shows its progress.")] = False,
    engine: EngineOption = None,
    apply: ApplyOption = False,
    kubectl: KubectlOption = "kubectl",
    namespace: NamespaceOption = "paxos",
    image: ImageOption = "paxosctl:latest",
    systemctl: SystemctlOption = "systemctl",
    unit_dir: UnitDirOption = Path("/etc/systemd/system"),
) -> None:
    """Grow or shrink an agent group on the running cluster, e.g. acceptor=5.

    New agents take the group's next unused names; shrinking removes the
    highest-numbered ones (their files stay). When the acceptors change,
    the new set is decided as a configuration through Paxos and takes
    effect alpha slots later; removed acceptors stop only once it is in
    force. Waits until then. Refused, exit 2 and nothing changed: an
    unknown group, fewer than 1 of a role, removing a majority of the
    acceptors at once; exit 1 while another change is in progress.
    """
    if len(change) != 1:
        raise UsageError(f"expected one GROUP=N, got {len(change)}: a membership change runs alone")
    group, sep, count = change[0].partition("=")
    if not sep or not group or not count.strip().isdigit():
        raise UsageError(f"expected GROUP=N with N a whole number (e.g. acceptor=5), got {change[0]!r}")
    remote = _unsupervised_or_none(file, engine, no_wait)
    if remote is not None:
        manifest, endpoints, path = remote
        launcher = _launcher(engine, manifest, apply, kubectl, namespace, image, systemctl, unit_dir)
        drive(manifest, path, endpoints, launcher, timeout, scale=(group, int(count)))
        return
    _membership_change(file, "scale", f"scaling {group} to {int(count)}", timeout, no_wait,
                       group=group, replicas=int(count))


def replace(
    agent: AgentArgument,
    file: FileOption = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace it even though it runs and is healthy.")] = False,
    timeout: Annotated[float, typer.Option(
        min=1, max=3600, help="Seconds to wait for the change to be in force.")] = 60.0,
    no_wait: Annotated[bool, typer.Option(
        "--no-wait", help="Start the change and exit; paxosctl status shows its progress.")] = False,
    engine: EngineOption = None,
    apply: ApplyOption = False,
    kubectl: KubectlOption = "kubectl",
    namespace: NamespaceOption = "paxos",
    image: ImageOption = "paxosctl:latest",
    systemctl: SystemctlOption = "systemctl",
    unit_dir: UnitDirOption = Path("/etc/systemd/system"),
) -> None:
    """Replace an agent by a new member, e.g. an acceptor whose disk was lost.

    The new member takes its group's next unused name and starts empty; the
    old name is retired for good, so its stale files can never vote again
    (they stay on disk). An acceptor is swapped through a configuration
    change. A running, healthy agent is refused (exit 2) without --force.
    """
    remote = _unsupervised_or_none(file, engine, no_wait)
    if remote is not None:
        manifest, endpoints, path = remote
        launcher = _launcher(engine, manifest, apply, kubectl, namespace, image, systemctl, unit_dir)
        drive(manifest, path, endpoints, launcher, timeout, replace=(agent, force))
        return
    _membership_change(file, "replace", f"replacing {agent}", timeout, no_wait,
                       agent=agent, force=force)


def _membership_change(file: str | None, op: str, doing: str, timeout: float, no_wait: bool,
                       **fields: Any) -> None:
    """Send `op` (scale or replace), print what it does, wait unless `no_wait`."""
    from ..errors import RequestFailed

    started = time.monotonic()
    with connect(file) as client:
        if not no_wait:
            echo(f"{doing}: waiting until the change is in force (at most {format_duration(timeout)})")
        try:
            reply = client.request(op, timeout=timeout + 10, wait=0 if no_wait else timeout,
                                   **fields)
        except RequestFailed as e:
            if e.error == "bad_request":
                raise UsageError(e.message.removeprefix(f"bad {op} request: ")) from None
            raise
    if reply.get("unchanged"):
        echo(f"no change: {reply['why'].removeprefix('scale ')}")
        return
    for line in reply["changes"]:
        echo(line)
    if no_wait:
        echo(f"{reply['why']}: started; see paxosctl status")
    else:
        epoch = f" (configuration epoch {reply['epoch']})" if reply.get("epoch") else ""
        echo(f"{reply['why']}: in force after {time.monotonic() - started:.1f}s{epoch}")


# ------------------------------------------------------- with no supervisor

#: Seconds between two polls of the agents while a change runs with no supervisor.
POLL_SECONDS = 0.25
#: Seconds an agent has to answer one poll.
POLL_ANSWER_SECONDS = 2.0


class ChangeTimeout(PaxosctlError):
    """The change is not in force by --timeout (it is recorded: run the command again)."""

    exit_code = 124


def _unsupervised_or_none(file: str | None, engine: str | None, no_wait: bool):
    """(manifest, endpoints, manifest path) when no supervisor runs the
    cluster and its agents run on their own hosts (`unsupervised`); None
    when the supervisor is the one to ask. UsageError (exit 2) for a missing
    or unknown --engine, or one given where a supervisor runs the agents."""
    manifest = load_manifest(find_manifest(file))
    found = unsupervised(manifest, str(manifest.path))
    if found is None:
        if engine is not None:
            raise UsageError("--engine: only for a cluster no supervisor runs here, whose agents "
                             "the manifest places over TLS; leave it out")
        return None
    if engine is None:
        raise UsageError(f"no supervisor runs {manifest.name} (its agents run on their own hosts): "
                         f"give --engine {' or --engine '.join(ENGINES)}, what starts and stops them")
    if engine not in ENGINES:
        raise UsageError(f"--engine: {engine!r} is not an engine; allowed: {', '.join(ENGINES)}")
    if no_wait:
        raise UsageError("--no-wait: with no supervisor this command itself drives the change "
                         "until it is in force; leave it out (--timeout bounds the wait)")
    return found[0], found[1], manifest.path


def _launcher(engine: str | None, manifest: "Manifest", apply: bool, kubectl: str,
              namespace: str, image: str, systemctl: str, unit_dir: Path) -> "Launcher":
    from ..membership.launchers import KubernetesLauncher, SystemdLauncher

    if engine == "k8s":
        return KubernetesLauncher(manifest, namespace, image, apply, kubectl, out=echo, err=echo_err)
    return SystemdLauncher(manifest, apply, unit_dir, systemctl, out=echo, err=echo_err)


def drive(manifest: "Manifest", file: Path, endpoints: "Endpoints", launcher: "Launcher",
          timeout: float, *, scale: tuple[str, int] | None = None,
          replace: tuple[str, bool] | None = None, out=echo, say=echo_err) -> None:
    """Carry out `scale` (group, count) or `replace` (agent, force) on agents
    no supervisor runs, in the foreground, until the change is in force.

    The members are asked of the agents (paxosctl.client.members); the
    change runs through the membership driver with a `RemoteEngine` whose
    `launcher` starts and stops processes. It is recorded in topology.json
    under the manifest's state dir before anything starts, so the same
    command run again (after a timeout, exit 124, or a lost laptop) resumes
    it; another command is refused while it is recorded. Refusals are one
    line: exit 2 for a change never allowed as asked, 1 for one not now."""
    from ..client.admin import AdminTarget, send_admin
    from ..client.members import current, placed
    from ..client.probe import survey
    from ..faults import Fault, OpError
    from ..layout import paths
    from ..membership import topology as topo
    from ..membership.driver import Driver
    from ..membership.names import replace_target, scale_target, with_agents
    from ..membership.plan import Asked, Current, Decided
    from ..membership.remote import RemoteEngine

    started = time.monotonic()
    path = paths(manifest.state_dir)["topology"]
    recorded = topo.load(path)
    also: list[str] = []
    if recorded is not None:
        also = [a.name for a in recorded.agents]
        if recorded.change is not None:
            also += [a.name for a in recorded.change.target]
    members = current(endpoints, manifest, also)
    if not members.answering:
        first = next(iter(members.answers.values()), None)
        raise PaxosctlError(f"no agent of {manifest.name} answers"
                            + (f" ({first.name}: {first.error})" if first else ""))
    ours = dict(manifest.placed_addresses())

    def addresses(names) -> dict[str, str]:
        """Where members the manifest does not place listen (its template or hosts)."""
        found = {}
        for name in names:
            if name in ours:
                continue
            try:
                where = manifest.transport.placement(name)
            except ValueError:
                continue
            if where.placed:
                found[name] = where.address
        return {**found, **{n: a for n, a in members.addresses.items() if n in set(names)}}

    def poll(names: tuple[str, ...]) -> dict[str, Any]:
        reach = placed(endpoints, manifest, names, members.addresses)
        return {a.name: (a.welcome if a.answered else None)
                for a in survey(reach, names, timeout=POLL_ANSWER_SECONDS, learn=False)}

    def admin(name: str, frame: dict[str, Any]) -> str | None:
        try:
            send_admin(AdminTarget.of(placed(endpoints, manifest, (name,), members.addresses), name),
                       frame)
        except PaxosctlError as e:  # AdminRefused included: its one line
            return str(e)
        return None

    retired = set(members.retired) | set(recorded.retired if recorded is not None else ())
    engine = RemoteEngine(poll_agents=poll, admin=admin, launcher=launcher,
                          names=set(members.names), retired=set(retired), place=addresses,
                          say=say, version=members.version)
    running = _specs(manifest, members.names)
    keep = recorded if recorded is not None else topo.Topology(agents=running,
                                                               retired=frozenset(retired))
    driver = Driver(engine, path, keep, on_done=lambda agents: None)
    if recorded is not None and recorded.change is not None:
        change = recorded.change
        if not _same_command(change.why, scale, replace):
            raise PaxosctlError(f"a membership change is in progress ({change.why}; recorded in "
                                f"{path}): run that command again to finish it first")
        why = change.why
        say(f"resuming {why} (recorded in {path}: running this command again is safe)")
        engine.retired |= change.retire  # named in the record once no longer members
        engine.poll()
        for spec in change.target:  # an added agent that does not answer is started (again)
            if spec.name not in {a.name for a in recorded.agents} and engine.reported(spec.name) is None:
                engine.names.discard(spec.name)
        driver.resume(recorded.agents, change, time.monotonic())
    else:
        running_manifest = with_agents(manifest, running)
        taken = set(members.names) | retired | ({a.name for a in recorded.agents} if recorded else set())
        try:
            if scale is not None:
                group, count = scale
                target = scale_target(running_manifest, group, count, taken)
                before = sum(1 for a in running if a.group == group)
                why, retire = f"scale {group} {before} -> {count}", frozenset()
            else:
                assert replace is not None
                agent, force = replace
                if agent not in members.names:
                    raise UsageError(f"{agent} is not a member of {manifest.name} now; members: "
                                     f"{', '.join(members.names)}")
                if agent in members.answering and not force:
                    raise UsageError(f"{agent} runs and answers; replace it anyway with --force")
                target, new = replace_target(running_manifest, agent, taken)
                why, retire = f"replace {agent} by {new.name}", frozenset({agent})
            if {a.name for a in target} == set(members.names):
                out(f"no change: {why.removeprefix('scale ')}")
                return
            _check_placed(manifest, [a.name for a in target if a.name not in members.names])
            decided = None
            if members.epoch >= 0:
                decided = Decided(members.epoch, members.config_acceptors, members.in_force_epoch,
                                  -1 if members.in_force_epoch >= members.epoch else 0)
            plan = driver.plan(Current(agents=running, decided=decided, running=members.answering,
                                       retired=frozenset(retired)), Asked(target, retire, why))
        except OpError as e:
            if e.fault is Fault.BAD_REQUEST:
                raise UsageError(e.message) from None
            raise PaxosctlError(e.message) from None
        for line in plan.summary()["changes"]:
            out(line)
        say(f"{why}: waiting until the change is in force (at most {format_duration(timeout)}); "
            f"recorded in {path}: if this stops, the same command resumes it")
        path.parent.mkdir(parents=True, exist_ok=True)
        engine.retired |= plan.asked.retire  # named in the record once no longer members
        engine.poll()
        driver.start(plan, time.monotonic())
    deadline = started + timeout
    while True:
        engine.poll()
        done = driver.advance(time.monotonic())
        if done is not None:
            break
        if time.monotonic() >= deadline:
            raise ChangeTimeout(f"{why}: not in force after {format_duration(timeout)} "
                                f"({driver.waiting()}); it is recorded in {path}: run the same "
                                "command again to resume it")
        time.sleep(POLL_SECONDS)
    if done.error is not None:
        raise PaxosctlError(f"{why} failed: {done.error}")
    epoch = f" (configuration epoch {done.epoch})" if done.epoch else ""
    out(f"{why}: in force after {time.monotonic() - started:.1f}s{epoch}")


def _same_command(why: str, scale: tuple[str, int] | None,
                  replace: tuple[str, bool] | None) -> bool:
    """Whether the recorded change `why` is the one this command asks for."""
    if scale is not None:
        return why.startswith(f"scale {scale[0]} ") and why.endswith(f"-> {scale[1]}")
    return replace is not None and why.startswith(f"replace {replace[0]} by ")


def _specs(manifest: "Manifest", names) -> tuple:
    """The `AgentSpec` of each member name (`<group>-<index>` of a manifest group)."""
    from ..manifest import AgentSpec

    roles = {a.group: a.role for a in manifest.agents}
    out = []
    for name in names:
        group, _, index = name.rpartition("-")
        if group not in roles or not index.isdigit():
            raise PaxosctlError(f"{name}, a member the agents report, is of no group of "
                                f"{manifest.path}: is it this cluster's manifest?")
        out.append(AgentSpec(name, group, roles[group], int(index)))
    return tuple(out)


def _check_placed(manifest: "Manifest", added: list[str]) -> None:
    """Refuse (exit 2, one line) a name the change adds that the manifest does
    not place: its peers and the CLI would not know where to dial it."""
    transport = manifest.transport
    for name in added:
        try:
            where = transport.placement(name)
        except ValueError as e:
            raise UsageError(f"{name}: transport.name_template {e}") from None
        if transport.host_tables and where.by not in ("host", "address"):
            raise UsageError(f"{name} is not placed: add it to the agents list of the "
                             f"[transport.hosts.<host>] that will run it in {manifest.path} "
                             "first, then run this again")
        if not where.placed:
            raise UsageError(f"{name} is not placed: give it an address in [transport.addresses] "
                             f"of {manifest.path} (or use transport.name_template) first")
