"""`paxosctl certs init|issue|rotate` on a copy of examples/cluster.toml:
the files, their modes, the manifest's new id, and the refusals."""

from __future__ import annotations

import stat
import tomllib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from clusters import describe, paxosctl
from paxos_agents.runtime.identity import Identity, check_files
from paxosctl.manifest import load_manifest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster.toml"
AGENTS = ["proposer-0", "proposer-1", "acceptor-0", "acceptor-1", "acceptor-2", "learner-0", "learner-1"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def manifest(tmp_path) -> Path:
    path = tmp_path / "cluster.toml"
    # A free metrics port, so that `validate` does not depend on this machine.
    path.write_text(EXAMPLE.read_text().replace('"127.0.0.1:9464"', '"127.0.0.1:0"'))
    return path


def _ok(*args: str, cwd: Path):
    result = paxosctl(*args, cwd=cwd)
    assert result.returncode == 0, describe(result)
    return result


def _refused(code: int, *args: str, cwd: Path) -> str:
    result = paxosctl(*args, cwd=cwd)
    assert result.returncode == code, describe(result)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), describe(result)
    return lines[0]


def _cluster_id(manifest: Path) -> str:
    return tomllib.loads(manifest.read_text())["cluster"]["id"]


def _check(certs: Path, cluster_id: str, kind: str, name: str) -> None:
    folder = certs / kind
    check_files(folder / f"{name}.crt", folder / f"{name}.key", certs / "ca.crt",
                Identity(cluster_id, kind, name), datetime.now(timezone.utc))


def test_init_writes_the_ca_and_every_certificate_with_their_modes(manifest):
    before = manifest.read_text()
    result = _ok("certs", "init", "-f", str(manifest), cwd=manifest.parent)
    cluster_id = _cluster_id(manifest)
    assert len(cluster_id) == 16 and int(cluster_id, 16) >= 0
    # The user's text is kept whole: one line added below [cluster].
    assert manifest.read_text() == before.replace("[cluster]\n", f'[cluster]\nid = "{cluster_id}"\n', 1)
    assert load_manifest(manifest).cluster_id == cluster_id
    _ok("validate", str(manifest), cwd=manifest.parent)

    certs = manifest.parent / "certs"
    assert _mode(certs) == 0o700 and _mode(certs / "ca.key") == 0o600
    for kind, name in [*(("agent", a) for a in AGENTS), ("operator", "operator"), ("client", "client")]:
        assert _mode(certs / kind) == 0o700
        assert _mode(certs / kind / f"{name}.key") == 0o600
        _check(certs, cluster_id, kind, name)
    assert sorted(p.stem for p in (certs / "agent").iterdir() if p.suffix == ".crt") == sorted(AGENTS)
    assert not list(certs.rglob("*.tmp")), "a temporary file was left behind"
    assert "never needed by a running agent" in result.stdout


def test_a_second_init_refuses_and_changes_nothing(manifest):
    _ok("certs", "init", "-f", str(manifest), cwd=manifest.parent)
    certs = manifest.parent / "certs"
    files = {p: p.read_bytes() for p in certs.rglob("*") if p.is_file()}
    text = manifest.read_text()
    line = _refused(1, "certs", "init", "-f", str(manifest), cwd=manifest.parent)
    assert line == f"error: certs already initialised in {certs}; use `certs issue` or `certs rotate`"
    assert {p: p.read_bytes() for p in certs.rglob("*") if p.is_file()} == files
    assert manifest.read_text() == text


def test_init_keeps_an_id_the_manifest_has_and_takes_another_folder(manifest, tmp_path):
    manifest.write_text(manifest.read_text().replace("[cluster]\n", '[cluster]\nid = "prod-eu-1"\n'))
    before = manifest.read_text()
    elsewhere = tmp_path / "pki"
    _ok("certs", "init", "-f", str(manifest), "--dir", str(elsewhere), cwd=manifest.parent)
    assert manifest.read_text() == before
    _check(elsewhere, "prod-eu-1", "agent", "acceptor-0")


def test_init_refuses_a_manifest_it_cannot_edit_and_writes_nothing(manifest):
    # [cluster] as an inline table: there is no header line to add the id under.
    text = manifest.read_text().replace('[cluster]\nname = "demo"\n', 'cluster = { name = "demo" }\n')
    manifest.write_text(text)
    line = _refused(2, "certs", "init", "-f", str(manifest), cwd=manifest.parent)
    assert "cluster.id" in line and "add id = " in line and "by hand" in line
    assert manifest.read_text() == text
    assert not (manifest.parent / "certs").exists()


def test_issue_signs_a_new_name_with_the_existing_ca(manifest):
    _ok("certs", "init", "-f", str(manifest), cwd=manifest.parent)
    certs, cluster_id = manifest.parent / "certs", _cluster_id(manifest)
    ca = (certs / "ca.crt").read_bytes()
    _ok("certs", "issue", "acceptor-3", "-f", str(manifest), cwd=manifest.parent)
    _check(certs, cluster_id, "agent", "acceptor-3")
    assert _mode(certs / "agent" / "acceptor-3.key") == 0o600

    old = (certs / "client" / "client.crt").read_bytes()
    _ok("certs", "issue", "client", "--kind", "client", "-f", str(manifest), cwd=manifest.parent)
    assert (certs / "client" / "client.crt").read_bytes() != old
    _check(certs, cluster_id, "client", "client")
    assert (certs / "ca.crt").read_bytes() == ca


@pytest.mark.parametrize(("args", "code", "says"), [
    (["Acceptor-3"], 2, "invalid agent name 'Acceptor-3'; allowed:"),
    (["acceptor"], 2, "invalid agent name 'acceptor'; allowed:"),
    (["ci-bot", "--kind", "admin"], 2, "unknown kind 'admin'; allowed: agent, operator, client"),
    (["Bot", "--kind", "client"], 2, "invalid client name 'Bot'; allowed:"),
    (["acceptor-3", "--dir", "nowhere"], 1, "no CA (ca.crt and ca.key); run `paxosctl certs init` first"),
], ids=["upper-case", "no-index", "unknown-kind", "bad-client-name", "no-ca"])
def test_issue_refuses_with_one_line(manifest, args, code, says):
    _ok("certs", "init", "-f", str(manifest), cwd=manifest.parent)
    line = _refused(code, "certs", "issue", *args, "-f", str(manifest), cwd=manifest.parent)
    assert says in line


def test_issue_refuses_a_manifest_without_an_id(manifest):
    line = _refused(1, "certs", "issue", "acceptor-3", "-f", str(manifest), cwd=manifest.parent)
    assert "cluster.id: missing; run `paxosctl certs init" in line


def test_rotate_changes_every_leaf_keeps_the_ca_and_the_previous_files(manifest):
    _ok("certs", "init", "-f", str(manifest), cwd=manifest.parent)
    _ok("certs", "issue", "acceptor-3", "--san", "10.1.2.3", "-f", str(manifest), cwd=manifest.parent)
    certs, cluster_id = manifest.parent / "certs", _cluster_id(manifest)
    ca = {p: p.read_bytes() for p in (certs / "ca.crt", certs / "ca.key")}
    leaves = sorted(certs.glob("*/*.crt"))
    before = {p: (p.read_bytes(), p.with_suffix(".key").read_bytes()) for p in leaves}

    result = _ok("certs", "rotate", "-f", str(manifest), cwd=manifest.parent)
    assert "never needed by a running agent" in result.stdout
    assert {p: p.read_bytes() for p in ca} == ca
    assert sorted(certs.glob("*/*.crt")) == leaves
    for cert, (old_cert, old_key) in before.items():
        key = cert.with_suffix(".key")
        assert cert.read_bytes() != old_cert and key.read_bytes() != old_key, cert
        assert cert.with_name(cert.name + ".old").read_bytes() == old_cert
        assert key.with_name(key.name + ".old").read_bytes() == old_key
        assert _mode(key) == _mode(key.with_name(key.name + ".old")) == 0o600
        _check(certs, cluster_id, cert.parent.name, cert.stem)
    # The SANs a caller added survive the rotation.
    from cryptography import x509
    rotated = x509.load_pem_x509_certificate((certs / "agent" / "acceptor-3.crt").read_bytes())
    sans = rotated.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "10.1.2.3" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}


def test_a_bad_cluster_id_in_the_manifest_is_refused(manifest):
    manifest.write_text(manifest.read_text().replace("[cluster]\n", '[cluster]\nid = "Prod_1"\n'))
    line = _refused(2, "validate", str(manifest), cwd=manifest.parent)
    assert "cluster.id: invalid cluster id" in line and "allowed:" in line


def test_issue_refuses_the_ca_of_another_cluster(manifest, tmp_path):
    _ok("certs", "init", "-f", str(manifest), cwd=manifest.parent)
    other = tmp_path / "other.toml"
    other.write_text(manifest.read_text().replace(f'id = "{_cluster_id(manifest)}"', 'id = "other-cluster"'))
    line = _refused(1, "certs", "issue", "acceptor-3", "-f", str(other),
                    "--dir", str(manifest.parent / "certs"), cwd=tmp_path)
    assert f"the CA of spiffe://{_cluster_id(manifest)}, not of this manifest's cluster.id (other-cluster)" in line
    assert not (manifest.parent / "certs" / "agent" / "acceptor-3.crt").exists()


def test_rotate_refuses_a_stray_file_in_the_folder_and_rotates_nothing(manifest):
    _ok("certs", "init", "-f", str(manifest), cwd=manifest.parent)
    certs = manifest.parent / "certs"
    (certs / "agent" / "Backup Copy.crt").write_text("x")
    before = (certs / "agent" / "acceptor-0.crt").read_bytes()
    line = _refused(1, "certs", "rotate", "-f", str(manifest), cwd=manifest.parent)
    assert "Backup Copy.crt: not a file `paxosctl certs` wrote" in line and "move it out" in line
    assert (certs / "agent" / "acceptor-0.crt").read_bytes() == before
