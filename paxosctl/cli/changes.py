"""Change what runs: `apply` a manifest, `scale` a group, `replace` an agent."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ..discovery import find_manifest
from ..durations import format_duration
from ..errors import NotRunning, UsageError
from ..manifest import load_manifest
from .common import (IMAGE_DEFAULT, AgentArgument, ClusterDomainOption, FileOption, ImageOption,
                     NamespaceOption, SecretsOption, StorageClassOption, StorageOption, connect, echo,
                     echo_err, unsupervised)

if TYPE_CHECKING:
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
    image: ImageOption = IMAGE_DEFAULT,
    storage_class: StorageClassOption = None,
    storage: StorageOption = "1Gi",
    cluster_domain: ClusterDomainOption = "cluster.local",
    secrets: SecretsOption = False,
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
        launcher = _launcher(engine, manifest, apply, kubectl, systemctl, unit_dir, pods=dict(
            namespace=namespace, image=image, storage_class=storage_class, storage=storage,
            cluster_domain=cluster_domain, secrets=secrets))
        from ..tools.remotechange import drive

        drive(manifest, path, endpoints, launcher, timeout, scale=(group, int(count)),
              out=echo, say=echo_err)
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
    image: ImageOption = IMAGE_DEFAULT,
    storage_class: StorageClassOption = None,
    storage: StorageOption = "1Gi",
    cluster_domain: ClusterDomainOption = "cluster.local",
    secrets: SecretsOption = False,
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
        launcher = _launcher(engine, manifest, apply, kubectl, systemctl, unit_dir, pods=dict(
            namespace=namespace, image=image, storage_class=storage_class, storage=storage,
            cluster_domain=cluster_domain, secrets=secrets))
        from ..tools.remotechange import drive

        drive(manifest, path, endpoints, launcher, timeout, replace=(agent, force),
              out=echo, say=echo_err)
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
              systemctl: str, unit_dir: Path, pods: dict[str, Any]) -> "Launcher":
    """What starts and stops agents for `engine`; `pods`: render k8s's options."""
    from ..membership.launchers import KubernetesLauncher, SystemdLauncher
    from ..render import k8s

    if engine == "k8s":
        secrets = pods.pop("secrets")
        folder = manifest.transport.certs_dir(manifest.path) if secrets else None
        return KubernetesLauncher(manifest, k8s.Options(secrets_from=folder, **pods), apply, kubectl,
                                  out=echo, err=echo_err)
    return SystemdLauncher(manifest, apply, unit_dir, systemctl, out=echo, err=echo_err)
