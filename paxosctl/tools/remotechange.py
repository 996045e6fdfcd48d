"""A membership change driven from where the command runs, against agents
no supervisor runs (`paxosctl scale|replace --engine k8s|systemd`).

`drive` asks the agents for the members (paxosctl.client.members), plans
the change with the membership driver, and runs it through a
`RemoteEngine` (paxosctl.membership.remote) whose launcher
(paxosctl.membership.launchers) starts and stops the processes, polling
the agents until the change is in force. The change is recorded in
topology.json under the manifest's state dir first, so the same command
run again resumes it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..client.admin import AdminTarget, send_admin
from ..client.members import current, placed, placed_at
from ..client.probe import survey
from ..durations import format_duration
from ..errors import PaxosctlError, UsageError
from ..faults import Fault, OpError
from ..layout import paths
from ..membership import topology as topo
from ..membership.driver import Driver
from ..membership.names import replace_target, scale_target, with_agents
from ..membership.plan import Asked, Current, Decided
from ..membership.remote import RemoteEngine

if TYPE_CHECKING:
    from ..endpoints import Endpoints
    from ..manifest import Manifest
    from ..membership.remote import Launcher

#: Seconds between two polls of the agents while a change runs with no supervisor.
POLL_SECONDS = 0.25
#: Seconds an agent has to answer one poll.
POLL_ANSWER_SECONDS = 2.0


class ChangeTimeout(PaxosctlError):
    """The change is not in force by --timeout (it is recorded: run the command again)."""

    exit_code = 124

def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def drive(manifest: "Manifest", file: Path, endpoints: "Endpoints", launcher: "Launcher",
          timeout: float, *, scale: tuple[str, int] | None = None,
          replace: tuple[str, bool] | None = None, out: Callable[[str], None] = print,
          say: Callable[[str], None] = _stderr) -> None:
    """Carry out `scale` (group, count) or `replace` (agent, force) on agents
    no supervisor runs, in the foreground, until the change is in force.

    The members are asked of the agents (paxosctl.client.members); the
    change runs through the membership driver with a `RemoteEngine` whose
    `launcher` starts and stops processes. It is recorded in topology.json
    under the manifest's state dir before anything starts, so the same
    command run again (after a timeout, exit 124, or a lost laptop) resumes
    it; another command is refused while it is recorded. Refusals are one
    line: exit 2 for a change never allowed as asked, 1 for one not now."""
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
    def addresses(names) -> dict[str, str]:
        """Where each member listens, as this manifest places it (the record's
        address wins), for the record: the agents' own manifests may predate
        the host list or address an operator gave an added name here."""
        found = {n: placed_at(manifest, n) for n in names}
        return {**{n: a for n, a in found.items() if a is not None},
                **{n: a for n, a in members.addresses.items() if n in set(names)}}

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
                          say=say, version=members.version, used=set(members.used))
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
        taken = (set(members.names) | retired | set(members.used)
                 | ({a.name for a in recorded.agents} if recorded else set()))
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
