"""One owner per state dir: the live supervisor of one cluster.

    state_dir/              0700 if the first `up` created it; an existing folder keeps its mode
      supervisor.lock       flock(LOCK_EX) by the live supervisor, for its whole life
      supervisor.pid        which process holds the lock, and what it runs (see pidfile)
      cluster.json          who owns the folder, written by the first `up`:
                            {"format": 1, "name": "demo", "id": "9a1e...",
                             "manifest": "/abs/cluster.toml", "created": "2026-..."}

`claim` makes the calling process the owner. It takes the lock before it
writes anything else in the state dir, then checks and records the
identity and writes the pid file. Everything else a supervisor writes
there (control socket, logs, SQLite files) it writes as the owner, and
only the owner ever unlinks the socket or the pid file: of two `up`s at
once, the one that lost the lock touches nothing. The owner records what
it makes there (paxosctl.supervisor.footprint), so that `down --purge` removes that
and nothing of the operator's; it changes the mode of no folder it did not
make (the state dir may be the operator's project folder).

`cluster.json` names the cluster that owns the folder; its `id` is the one
every agent's store records (see members.py). A manifest with another
cluster name is refused by every command (`check_owner`), so two
manifests that share a state_dir by mistake never drive each other's
cluster.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import AlreadyRunning, ForeignStateDir, ManifestError
from .footprint import Footprint
from ..layout import FOLDERS, paths, running_agents
from .members import stores_cluster_id
from ..manifest import STATE_DIR_ALLOWED, Manifest, display_path, state_dir_error
from .pidfile import (SupervisorRecord, live_supervisor, read_pid_file, remove_pid_file,
                      write_pid_file)

#: cluster.json's format version; another is refused.
IDENTITY_FORMAT = 1
#: How long `claim` waits for the lock: probes (pidfile.lock_held) hold it
#: for microseconds, a live supervisor for good.
CLAIM_WAIT_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class ClusterIdentity:
    """The cluster that owns a state dir, as cluster.json records it.

    `manifest` is the manifest the cluster was last started from.
    """

    name: str
    id: str
    manifest: str | None
    created: str


class Claim:
    """This process's ownership of a state dir: the lock, held until `release`."""

    def __init__(self, state_dir: Path, fd: int, identity: ClusterIdentity,
                 footprint: Footprint | None) -> None:
        self.state_dir = state_dir
        self.identity = identity
        #: What the cluster made here; None for a claim that lays nothing out (purge's).
        self.footprint = footprint
        self._fd: int | None = fd

    def release(self) -> None:
        """Remove the pid file, then let go of the lock: in that order, so a
        pid file is only ever removed by the process that holds the lock."""
        if self._fd is None:
            return
        remove_pid_file(paths(self.state_dir)["pid"])
        os.close(self._fd)
        self._fd = None


def claim(manifest: Manifest, *, lay_out: bool = True) -> Claim:
    """Make this process the owner of manifest.state_dir, or raise.

    Creates the state dir (0700, and any missing parents; an existing one
    keeps its mode), takes its lock, checks that it belongs to this
    cluster (recording the identity on first use) and writes the pid
    file. With `lay_out` (every caller but purge) it then makes the
    cluster's folders, logs/, state/ and run/, where missing, and records
    what it made (`Claim.footprint`); purge's claim writes no identity.
    Raises AlreadyRunning or ForeignStateDir (exit 1) if another
    supervisor holds the lock or another cluster owns the folder, and
    ManifestError (exit 2) if the folder cannot be created, leaving
    nothing behind that it created.
    """
    state_dir = manifest.state_dir
    where = paths(state_dir)
    created = _make_dirs(manifest)
    try:
        fd = os.open(where["lock"], os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        _remove_dirs(created)
        raise state_dir_error(manifest, f"cannot create {where['lock']} ({_reason(exc)}); "
                                        f"allowed: {STATE_DIR_ALLOWED}") from None
    try:
        _lock(fd, manifest)
        # The owner from here on.
        stray = read_pid_file(where["pid"])
        if stray is not None and stray.pid != os.getpid():
            # A live supervisor that took no lock: paxosctl 0.2's.
            raise conflict(manifest, stray)
        _refuse_standalone_agents(state_dir)
        try:
            ran_here = _ran_here(state_dir)  # before this claim writes cluster.json
            # Purge (no lay_out) records no identity: it is about to delete it.
            identity = _own_identity(manifest, record=lay_out)
            write_pid_file(where["pid"], cluster=manifest.name, manifest=str(manifest.path),
                           digest=manifest_digest(manifest))
            footprint = (_lay_out(manifest, made_state_dir=state_dir in created, ran_here=ran_here)
                         if lay_out else None)
        except OSError as exc:
            raise state_dir_error(manifest, f"cannot write in {state_dir} ({_reason(exc)}); "
                                            f"allowed: {STATE_DIR_ALLOWED}") from None
    except BaseException:
        os.close(fd)
        raise
    return Claim(state_dir, fd, identity, footprint)


def check_owner(manifest: Manifest) -> ClusterIdentity | None:
    """The identity of manifest.state_dir (None before its first `up`).

    Raises ForeignStateDir if another cluster owns it, or if cluster.json
    cannot be read. Creates nothing.
    """
    identity = read_identity(manifest.state_dir)
    if identity is not None:
        if identity.name != manifest.name:
            raise _foreign(manifest, identity.name, identity.manifest,
                           live_supervisor(manifest.state_dir))
        return identity
    record = live_supervisor(manifest.state_dir)  # one that has not recorded it yet
    if record is not None and record.cluster not in (None, manifest.name):
        raise _foreign(manifest, record.cluster, record.manifest, record)
    return None


def read_identity(state_dir: Path) -> ClusterIdentity | None:
    """cluster.json's identity; None if there is none (or no folder).
    Raises ForeignStateDir if it cannot be read or trusted."""
    path = paths(state_dir)["identity"]
    way_out = (f"it names the cluster that owns {state_dir}: restore it from a copy, "
               "or remove it to let the next `paxosctl up` claim the folder")
    try:
        text = path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ForeignStateDir(f"cannot read {path} ({_reason(exc)})") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise ForeignStateDir(f"{path} is not valid JSON; {way_out}") from None
    if not isinstance(data, dict) or data.get("format") != IDENTITY_FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise ForeignStateDir(f"{path} has format {found!r}; this paxosctl reads format "
                              f"{IDENTITY_FORMAT} (a newer paxosctl may have written it)")
    fields = {key: data.get(key) for key in ("name", "id", "manifest", "created")}
    if not all(isinstance(fields[key], str) and fields[key] for key in ("name", "id")):
        raise ForeignStateDir(f"{path} has no cluster name or id; {way_out}")
    if not isinstance(fields["manifest"], str):
        fields["manifest"] = None
    if not isinstance(fields["created"], str):
        fields["created"] = ""
    return ClusterIdentity(**fields)


def manifest_digest(manifest: Manifest) -> str:
    """Every setting of `manifest` as a short hash: not its path, comments or
    layout. Two manifests with equal digests start the same cluster.

    Agents count per group, not by name: after `paxosctl replace` the
    cluster runs other names (paxosctl.membership.topology) for the same manifest."""
    settings = dataclasses.asdict(manifest)
    del settings["path"]
    counts: dict[str, list] = {}
    for agent in manifest.agents:
        counts.setdefault(agent.group, [agent.role, 0])[1] += 1
    settings["agents"] = counts
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def runs(manifest: Manifest, record: SupervisorRecord) -> bool:
    """True if the live supervisor `record` runs exactly `manifest`'s cluster."""
    return (record.pid is not None and record.cluster == manifest.name
            and record.digest == manifest_digest(manifest))


def conflict(manifest: Manifest, record: SupervisorRecord) -> AlreadyRunning | ForeignStateDir:
    """Why `manifest`'s cluster cannot start while `record` holds its state dir."""
    if record.cluster not in (None, manifest.name):
        return _foreign(manifest, record.cluster, record.manifest, record)
    pid = record.pid if record.pid is not None else "unknown"
    running = f"cluster {manifest.name} is already running (supervisor pid {pid})"
    file = display_path(manifest.path)
    if record.digest is None or record.digest == manifest_digest(manifest):
        return AlreadyRunning(running)
    started = f" ({record.manifest} as it was then)" if record.manifest else ""
    return AlreadyRunning(
        f"{running}, but {file} differs from what it runs (the manifest it was started "
        f"from{started}, as apply, scale and replace changed it)",
        hint=f"to run {file}: paxosctl apply -f {file} (or paxosctl down -f {file}, then up)")


# -- helpers -------------------------------------------------------------------


def _lock(fd: int, manifest: Manifest) -> None:
    """Take the lock on `fd`, or raise the conflict with its holder."""
    deadline = time.monotonic() + CLAIM_WAIT_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        if time.monotonic() >= deadline:
            holder = live_supervisor(manifest.state_dir)
            if holder is not None:
                raise conflict(manifest, holder)
            deadline = time.monotonic() + CLAIM_WAIT_SECONDS  # it just stopped: try again
        time.sleep(0.01)


def _refuse_standalone_agents(state_dir: Path) -> None:
    """Raise AlreadyRunning if a `paxosctl agent NAME` runs in `state_dir`.

    Such an agent holds `run/NAME.lock` (flock LOCK_EX) for its life. A
    supervisor started beside it would spawn a second process of the same
    name on the same store (two acceptors' worth of votes from one disk),
    and `down --purge` would delete a running agent's files. The agent
    takes its name's lock before it looks for a supervisor, and the
    supervisor takes its own lock before it looks here: of the two started
    at once, at least one sees the other."""
    held = running_agents(state_dir)
    if held:
        lock = paths(state_dir)["run"] / f"{held[0]}.lock"
        raise AlreadyRunning(
            f"agent {held[0]} runs on its own in {state_dir} (paxosctl agent; {lock} "
            "is locked): stop it first, or give this cluster another state_dir")


def _ran_here(state_dir: Path) -> bool:
    """True if a cluster has run in `state_dir` (what older releases leave
    behind: cluster.json, members.json, topology.json or a store)."""
    return bool(Footprint.derived(state_dir).folders)


def _lay_out(manifest: Manifest, *, made_state_dir: bool, ran_here: bool) -> Footprint:
    """The footprint of the state dir, its folders made. The caller holds the lock.

    The first claim of a state dir an older release ran in (no record)
    seeds the record with what that release made (Footprint.derived)."""
    state_dir = manifest.state_dir
    footprint = Footprint.load(state_dir)
    if footprint is None:
        footprint = (Footprint.derived(state_dir, (a.name for a in manifest.agents)) if ran_here
                     else Footprint(state_dir))
        footprint.save()
    if made_state_dir:
        # Made before we held the lock that lets us write here (see footprint.py).
        footprint.add_folder(state_dir)
    for name in FOLDERS:
        footprint.make_folder(state_dir / name)
    return footprint


def _own_identity(manifest: Manifest, *, record: bool = True) -> ClusterIdentity:
    """The state dir's identity, recorded now (with `record`) if it has none.
    The caller holds the lock."""
    identity = read_identity(manifest.state_dir)
    if identity is not None and identity.name != manifest.name:
        raise _foreign(manifest, identity.name, identity.manifest, None)
    if identity is None:
        identity = ClusterIdentity(
            name=manifest.name,
            # A state dir from paxosctl 0.2 has stores that record the member
            # registry's cluster id: keep it (read from the stores themselves
            # if the registry is gone too). A new one takes the manifest's
            # `[cluster] id` (`certs init` writes it): the id in HELLOs, in
            # the stores and in the certificates is then one.
            id=(_registry_cluster_id(manifest.state_dir) or stores_cluster_id(manifest.state_dir)
                or manifest.cluster_id or uuid.uuid4().hex),
            manifest=str(manifest.path),
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        check_cluster_id(manifest, identity.id)
    else:
        check_cluster_id(manifest, identity.id)
        if identity.manifest == str(manifest.path):
            return identity
        identity = dataclasses.replace(identity, manifest=str(manifest.path))
    if record:
        _write_identity(manifest.state_dir, identity)
    return identity


def check_cluster_id(manifest: Manifest, state_id: str) -> None:
    """Over TLS the state dir's cluster id (HELLOs, stores) must be the
    manifest's (certificates): refuse, one line, a state dir made before
    `certs init` gave the manifest another id."""
    if manifest.transport.tls and manifest.cluster_id is not None and manifest.cluster_id != state_id:
        raise ManifestError(
            f"{manifest.path}: cluster.id: {manifest.cluster_id!r} is not the id of the cluster in "
            f"{manifest.state_dir} ({state_id!r}), which its stores record; allowed: set "
            f"id = \"{state_id}\" under [cluster] and issue the certificates again "
            f"(`paxosctl certs init --dir NEW_FOLDER`, then point [transport] certs at it)")


def _write_identity(state_dir: Path, identity: ClusterIdentity) -> None:
    """Write cluster.json whole: a crash leaves the old file or the new one."""
    path = paths(state_dir)["identity"]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump({"format": IDENTITY_FORMAT, **dataclasses.asdict(identity)}, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _registry_cluster_id(state_dir: Path) -> str | None:
    try:
        value = json.loads(paths(state_dir)["members"].read_text()).get("cluster_id")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def _foreign(manifest: Manifest, owner: str, owner_manifest: str | None,
             record: SupervisorRecord | None) -> ForeignStateDir:
    """The refusal of a manifest whose state_dir another cluster owns. It
    names the owner and suggests nothing that would act on it."""
    about = []
    if owner_manifest:
        about.append(f"manifest {owner_manifest}")
    if record is not None:
        about.append(f"running, supervisor pid {record.pid if record.pid is not None else 'unknown'}")
    file = display_path(manifest.path)
    return ForeignStateDir(
        f"{file}: cluster.state_dir: {manifest.state_dir} belongs to cluster {owner}"
        + (f" ({'; '.join(about)})" if about else "")
        + f", not to cluster {manifest.name}; give {file} a state_dir of its own")


def _make_dirs(manifest: Manifest) -> list[Path]:
    """Create state_dir and its missing parents, 0700; return those created.
    On failure remove them again and raise the state_dir error."""
    missing = []
    folder = manifest.state_dir
    try:
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
    except OSError as exc:
        raise state_dir_error(manifest, f"cannot inspect {folder} ({_reason(exc)}); "
                                        f"allowed: {STATE_DIR_ALLOWED}") from None
    created: list[Path] = []
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            continue  # a racing `up` made it first
        except OSError as exc:
            _remove_dirs(created)
            raise state_dir_error(manifest, f"cannot create {folder} ({_reason(exc)}); "
                                            f"allowed: {STATE_DIR_ALLOWED}") from None
        created.append(folder)
    if not manifest.state_dir.is_dir():
        _remove_dirs(created)
        raise state_dir_error(manifest, f"{manifest.state_dir} is not a folder; "
                                        f"allowed: {STATE_DIR_ALLOWED}")
    return created


def _remove_dirs(created: list[Path]) -> None:
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            pass


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()
