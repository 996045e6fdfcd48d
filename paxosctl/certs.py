"""A cluster's certificates: its CA, one certificate per agent, an operator's
and a client's, made, issued and rotated by `paxosctl certs`.

Files, under DIR (default: `certs/` beside the manifest):

    DIR/ca.crt                    the cluster CA (ECDSA P-256, 10 years, path length 0)
    DIR/ca.key                    its key: for `certs issue`/`rotate` only, never
                                  needed by a running agent; keep it off agents' hosts
    DIR/agent/<name>.crt|.key     spiffe://<cluster-id>/agent/<name>, one per agent
    DIR/operator/operator.crt|.key  spiffe://<cluster-id>/operator/operator (admin frames)
    DIR/client/client.crt|.key    spiffe://<cluster-id>/client/client (propose, read)
    DIR/<kind>/<name>.crt.old|.key.old   the previous leaf, kept by `certs rotate`
                                  until the next rotate replaces it

Keys are 0600 and folders 0700; every file is written whole (a temporary
file renamed into place), so a crash leaves the old file or the new one.
Leaves are ECDSA P-256, valid one year by default, and carry the identity
as their one URI SAN (see `paxos_agents.runtime.identity`) plus DNS/IP SANs
for tools that check names: the agent's name, `localhost`, 127.0.0.1, and
whatever `extra_sans` the caller passes (the extension point for placement
addresses, when the manifest has them).

The cluster id is the manifest's `[cluster] id`; `init` makes one (16 hex
characters) and writes it into the manifest, keeping the user's text.
Errors are `PaxosctlError`s with one line: `UsageError` (exit 2) for a bad
name, kind or manifest edit, `CertsError` (exit 1) for a missing or
existing CA.

The certificates themselves are built by `paxosctl.issuing` (bytes in,
bytes out); this module holds the files, the manifest's id and the
commands' work. `cryptography` is imported inside the functions that need
it: only the `certs` commands load it (~40 ms).
"""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from paxos_agents.runtime.identity import KINDS, CertificateProblem, Identity, check_files, spiffe_uris
from paxosctl.issuing import LEAF_DAYS, issue_leaf, make_ca, other_sans
from paxosctl.errors import PaxosctlError, UsageError
from paxosctl.manifest import GROUP_NAME, GROUP_NAME_ALLOWED, Manifest, load_manifest

#: The names `init` gives the operator and the client certificate.
OPERATOR, CLIENT = "operator", "client"
#: An agent's name is "<group>-<index>" (manifest.AgentSpec); an operator's or
#: client's name follows the manifest's group-name rule.
AGENT_NAME = re.compile(rf"(?:{GROUP_NAME.pattern})-(?:0|[1-9][0-9]{{0,5}})")
AGENT_NAME_ALLOWED = f'"<group>-<index>" as the manifest names agents (group: {GROUP_NAME_ALLOWED})'
_ID_LINE = re.compile(r"^\s*\[\s*cluster\s*\]\s*(#.*)?$")


class CertsError(PaxosctlError):
    """The certificates folder is not in the state the command needs: a CA
    already there (`init`), none there (`issue`, `rotate`), or unreadable."""

    exit_code = 1


@dataclass(frozen=True, slots=True)
class Leaf:
    """One leaf certificate's files."""

    identity: Identity
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class CertsDir:
    """Where a cluster's certificate files are (see the module docstring)."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    def leaf(self, identity: Identity) -> Leaf:
        folder = self.root / identity.kind
        return Leaf(identity, folder / f"{identity.name}.crt", folder / f"{identity.name}.key")

    def leaves(self, cluster_id: str) -> list[Leaf]:
        """Every leaf certificate in the folder (not the .old ones), kind by kind."""
        found = []
        for kind in KINDS:
            for cert in sorted((self.root / kind).glob("*.crt")):
                try:
                    found.append(self.leaf(Identity(cluster_id, kind, cert.stem)))
                except ValueError as exc:
                    raise CertsError(f"{cert}: not a file `paxosctl certs` wrote ({exc}); "
                                     f"move it out of {self.root / kind}") from None
        return found


def default_dir(manifest: Manifest) -> Path:
    """The manifest's `[transport] certs` folder (default: certs/ beside it)."""
    return manifest.transport.certs_dir(manifest.path)


def check_name(kind: str, name: str) -> None:
    """Refuse (UsageError) a kind outside KINDS, or a name the manifest
    would not give (agents) or accept as a group name (operator, client)."""
    if kind not in KINDS:
        raise UsageError(f"unknown kind {kind!r}; allowed: {', '.join(KINDS)}")
    if kind == "agent":
        if not AGENT_NAME.fullmatch(name):
            raise UsageError(f"invalid agent name {name!r}; allowed: {AGENT_NAME_ALLOWED}")
    elif not GROUP_NAME.fullmatch(name):
        raise UsageError(f"invalid {kind} name {name!r}; allowed: {GROUP_NAME_ALLOWED}")


# -- files -----------------------------------------------------------------------


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write `path` whole with `mode`: a temporary file, fsynced, renamed into
    place (the mode is set before any byte is written)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits away; never added any
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _mkdir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _write_leaf(leaf: Leaf, pem: tuple[bytes, bytes]) -> None:
    _mkdir(leaf.cert.parent)
    # The key first: a certificate beside a key that is not its own is the
    # state `check_files` refuses, and a crash between the two writes
    # leaves it only until the command is run again.
    write_atomic(leaf.key, pem[1], 0o600)
    write_atomic(leaf.cert, pem[0], 0o644)


def _fail_os(exc: OSError, path: Path, doing: str) -> CertsError:
    return CertsError(f"{path}: cannot {doing}: {(exc.strerror or str(exc)).lower()}; "
                      "fix the folder's permissions or choose another with --dir")


# -- the manifest's [cluster] id ---------------------------------------------------


def add_cluster_id(manifest_path: Path, cluster_id: str) -> None:
    """Insert `id = "<cluster_id>"` right below the manifest's `[cluster]`
    header, keeping every other byte (comments, order, line endings).

    Refused (UsageError) if there is no `[cluster]` header line (a dotted or
    inline table), if the edited text would not read back with that id,
    or if the file cannot be written; the file is then unchanged.
    """
    where = f"{manifest_path}: cluster.id"
    manual = f'add id = "{cluster_id}" to [cluster] by hand and run the command again'
    try:
        raw = manifest_path.read_bytes()
        text = raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{where}: cannot read the manifest to add the cluster id ({exc}); {manual}") from None
    lines = text.splitlines(keepends=True)
    header = next((i for i, line in enumerate(lines) if _ID_LINE.match(line.rstrip("\r\n"))), None)
    if header is None:
        raise UsageError(f"{where}: cannot add the cluster id: no [cluster] header line; {manual}")
    newline = "\r\n" if lines[header].endswith("\r\n") else "\n"
    if not lines[header].endswith(("\n", "\r")):
        lines[header] += newline
    lines.insert(header + 1, f'id = "{cluster_id}"{newline}')
    edited = "".join(lines)
    try:
        if tomllib.loads(edited).get("cluster", {}).get("id") != cluster_id:
            raise ValueError("the id did not land in [cluster]")
    except (tomllib.TOMLDecodeError, ValueError, AttributeError):
        raise UsageError(f"{where}: cannot add the cluster id safely to this file; {manual}") from None
    bom = b"\xef\xbb\xbf" if raw.startswith(b"\xef\xbb\xbf") else b""
    target = manifest_path.resolve()  # a symlinked manifest stays a symlink
    try:
        write_atomic(target, bom + edited.encode(), target.stat().st_mode & 0o7777)
    except OSError as exc:
        raise UsageError(f"{where}: cannot write the manifest ({(exc.strerror or str(exc)).lower()}); "
                         f"{manual}") from None


def _cluster_id(manifest: Manifest) -> str:
    """The manifest's cluster id; refused if `certs init` never wrote one."""
    if manifest.cluster_id is None:
        raise CertsError(f"{manifest.path}: cluster.id: missing; run `paxosctl certs init -f {manifest.path}` first")
    return manifest.cluster_id


def _load_ca(certs: CertsDir, cluster_id: str) -> tuple[bytes, bytes]:
    """The CA's (certificate, key) PEM; refused if absent, or if it is the
    CA of another cluster id than the manifest's."""
    if not certs.ca_cert.exists() or not certs.ca_key.exists():
        raise CertsError(f"{certs.root}: no CA (ca.crt and ca.key); run `paxosctl certs init` first, "
                         f"or pass the folder it wrote with --dir")
    try:
        pem = certs.ca_cert.read_bytes(), certs.ca_key.read_bytes()
    except OSError as exc:
        raise _fail_os(exc, certs.root, "read the CA") from None
    from cryptography import x509

    try:
        found = spiffe_uris(x509.load_pem_x509_certificate(pem[0]))
    except ValueError:
        raise CertsError(f"{certs.ca_cert}: not a PEM certificate; restore it from a copy") from None
    if found != [f"spiffe://{cluster_id}"]:
        raise CertsError(f"{certs.ca_cert}: the CA of {found[0] if found else 'no cluster id'}, "
                         f"not of this manifest's cluster.id ({cluster_id}); pass its CA's folder with --dir")
    return pem


# -- the commands' work ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Done:
    """What a command wrote, for the CLI to print."""

    cluster_id: str
    certs: CertsDir
    leaves: tuple[Leaf, ...]
    added_id: bool = False


def init(manifest_path: Path, directory: Path | None = None, *, now: datetime | None = None,
         days: int = LEAF_DAYS, extra_sans: Iterable[str] = ()) -> Done:
    """Make the cluster CA and a leaf per agent of the manifest, an operator's
    and a client's; give the manifest a `[cluster] id` if it has none.

    Refused (`CertsError`) if DIR already has a CA: `issue` and `rotate` work
    on an existing one. The id is written into the manifest before any
    file, so a refused edit leaves nothing behind.
    """
    manifest = load_manifest(manifest_path)
    certs = CertsDir(directory if directory is not None else default_dir(manifest))
    if certs.ca_cert.exists() or certs.ca_key.exists():
        raise CertsError(f"certs already initialised in {certs.root}; use `certs issue` or `certs rotate`")
    now = now or datetime.now(timezone.utc)
    cluster_id = manifest.cluster_id or secrets.token_hex(8)
    added = manifest.cluster_id is None
    if added:
        add_cluster_id(manifest.path, cluster_id)
    identities = ([Identity(cluster_id, "agent", a.name) for a in manifest.agents]
                  + [Identity(cluster_id, "operator", OPERATOR), Identity(cluster_id, "client", CLIENT)])
    try:
        _mkdir(certs.root)
        ca = make_ca(cluster_id, now=now)
        # The CA's key is the last file written: its presence marks a
        # finished init (a second init refuses), so a crash before it lets
        # the operator simply run init again.
        leaves = []
        for identity in identities:
            leaf = certs.leaf(identity)
            _write_leaf(leaf, issue_leaf(*ca, identity, now=now, days=days, extra_sans=tuple(extra_sans)))
            leaves.append(leaf)
        write_atomic(certs.ca_cert, ca[0], 0o644)
        write_atomic(certs.ca_key, ca[1], 0o600)
    except OSError as exc:
        raise _fail_os(exc, certs.root, "write certificates") from None
    return Done(cluster_id, certs, tuple(leaves), added_id=added)


def issue(manifest_path: Path, name: str, kind: str = "agent", directory: Path | None = None, *,
          now: datetime | None = None, days: int = LEAF_DAYS, extra_sans: Iterable[str] = ()) -> Done:
    """A new leaf for `name` of `kind`, signed by the existing CA (for the
    names `scale` and `replace` add). Replaces that name's files if any."""
    check_name(kind, name)
    manifest = load_manifest(manifest_path)
    certs = CertsDir(directory if directory is not None else default_dir(manifest))
    cluster_id = _cluster_id(manifest)
    ca = _load_ca(certs, cluster_id)
    identity = Identity(cluster_id, kind, name)
    leaf = certs.leaf(identity)
    try:
        _write_leaf(leaf, issue_leaf(*ca, identity, now=now or datetime.now(timezone.utc), days=days,
                                     extra_sans=tuple(extra_sans)))
    except OSError as exc:
        raise _fail_os(exc, leaf.cert.parent, "write the certificate") from None
    return Done(cluster_id, certs, (leaf,))


def rotate(manifest_path: Path, directory: Path | None = None, *, now: datetime | None = None,
           days: int = LEAF_DAYS) -> Done:
    """New keys and certificates for every leaf in DIR, same CA, same SANs.

    The previous files become `<name>.crt.old`/`.key.old` (replacing the
    .old of the rotate before), so a host that has not yet received the new
    files can be put back. Agents read their files when they start: restart
    them (one at a time) to use the new ones.
    """
    manifest = load_manifest(manifest_path)
    certs = CertsDir(directory if directory is not None else default_dir(manifest))
    cluster_id = _cluster_id(manifest)
    ca = _load_ca(certs, cluster_id)
    now = now or datetime.now(timezone.utc)
    leaves = certs.leaves(cluster_id)
    if not leaves:
        raise CertsError(f"{certs.root}: no certificates to rotate; issue them with `paxosctl certs issue NAME`")
    try:
        for leaf in leaves:
            old = leaf.cert.read_bytes()
            try:
                extra = other_sans(old, leaf.identity)
            except Exception:  # unreadable or foreign: rotate gives it the default SANs
                extra = []
            pem = issue_leaf(*ca, leaf.identity, now=now, days=days, extra_sans=extra)
            write_atomic(leaf.key.with_name(leaf.key.name + ".old"), leaf.key.read_bytes(), 0o600)
            write_atomic(leaf.cert.with_name(leaf.cert.name + ".old"), old, 0o644)
            _write_leaf(leaf, pem)
    except OSError as exc:
        raise _fail_os(exc, certs.root, "rotate the certificates") from None
    return Done(cluster_id, certs, tuple(leaves))


def check(leaf: Leaf, certs: CertsDir, now: datetime | None = None) -> None:
    """Check a leaf's files as an agent will at start (`check_files`);
    CertsError with its one line if they would be refused."""
    try:
        check_files(leaf.cert, leaf.key, certs.ca_cert, leaf.identity, now or datetime.now(timezone.utc))
    except CertificateProblem as exc:
        raise CertsError(exc.message) from None
