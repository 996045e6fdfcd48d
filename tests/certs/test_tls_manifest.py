"""The manifest's `[transport]` (issue 22): validated one line at a time,
the certificate files checked by `paxosctl validate` (and `up`) before
anything starts, and one cluster id for HELLOs, stores and certificates.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clusters import manifest_text, paxosctl

from paxosctl.errors import ManifestError
from paxosctl.manifest import check_runtime, load_manifest, toml_value
from paxosctl.supervisor.ownership import claim


def write(folder: Path, transport: dict | None = None, *, cluster_id: str | None = None) -> Path:
    """A manifest with `[transport]` = `transport` (a dict value as an inline table)."""
    text = manifest_text("roles", "tlsdemo")
    if transport:
        text += "[transport]\n" + "".join(
            f"{key} = {inline(value)}\n" for key, value in transport.items())
    if cluster_id is not None:
        text = text.replace('name = "tlsdemo"', f'name = "tlsdemo"\nid = "{cluster_id}"', 1)
    path = folder / "cluster.toml"
    path.write_text(text)
    return path


def inline(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {inline(v)}" for k, v in value.items()) + " }"
    return toml_value(value)


@pytest.mark.parametrize("transport, key_path, fragment", [
    ({"kind": "quic"}, "transport.kind", 'unknown transport "quic"; allowed: "unix", "tls"'),
    ({"kind": "tls", "certs": 7}, "transport.certs", "expected a folder path, got 7"),
    ({"kind": "tls", "ports": 1}, "transport.ports", "unknown key; allowed: kind, certs, addresses, port"),
    ({"kind": "tls", "addresses": {"acceptor-9": "127.0.0.1:7000"}}, "transport.addresses.acceptor-9",
     "not an agent of this manifest"),
    ({"kind": "tls", "addresses": {"acceptor-0": "127.0.0.1"}}, "transport.addresses.acceptor-0",
     'expected "host:port"'),
    ({"addresses": {"acceptor-0": "127.0.0.1:7000"}}, "transport.addresses",
     'agents are placed only with kind = "tls"'),
], ids=["unknown-kind", "certs-not-a-path", "unknown-key", "address-of-no-agent", "address-without-port",
        "addresses-over-unix"])
def test_a_bad_transport_is_one_line_naming_the_key(tmp_path: Path, transport: dict, key_path: str,
                                                    fragment: str) -> None:
    path = write(tmp_path, transport)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    message = str(caught.value)
    assert message.splitlines() == [message] and message.startswith(f"{path}: {key_path}: "), message
    assert fragment in message, message


def test_unix_is_the_default_and_tls_places_agents(tmp_path: Path) -> None:
    assert load_manifest(write(tmp_path)).transport.kind == "unix"
    manifest = load_manifest(write(tmp_path, {"kind": "tls", "certs": "pki",
                                              "addresses": {"acceptor-0": "127.0.0.1:7100"}}))
    assert manifest.transport.tls and manifest.transport.certs_dir(manifest.path) == tmp_path / "pki"
    assert manifest.transport.addresses == (("acceptor-0", "127.0.0.1:7100"),)


def test_validate_checks_the_certificate_files(tmp_path: Path) -> None:
    """Before `certs init`: one line naming what is missing and the command
    that makes it; after it: valid; a key made readable by others: one line
    naming the file and the fix. Exit 2 each time, nothing started."""
    path = write(tmp_path, {"kind": "tls"})
    result = paxosctl("validate", str(path), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[0] == (
        f"error: cluster.toml: transport.kind: \"tls\" needs the cluster id in the certificates, and "
        f"[cluster] has no id; allowed: run `paxosctl certs init -f cluster.toml` (it adds it)")
    assert paxosctl("certs", "init", "-f", str(path), cwd=tmp_path).returncode == 0
    result = paxosctl("validate", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    key = tmp_path / "certs" / "agent" / "acceptor-1.key"
    key.chmod(0o644)
    result = paxosctl("validate", str(path), cwd=tmp_path)
    assert result.returncode == 2
    line = result.stderr.splitlines()[0]
    assert line.startswith(f"error: cluster.toml: transport.certs: {key}: private key has mode 0644"), line
    assert "fix: chmod 600 it" in line
    key.chmod(0o600)
    (tmp_path / "certs" / "client" / "client.crt").unlink()
    line = paxosctl("validate", str(path), cwd=tmp_path).stderr.splitlines()[0]
    assert line.endswith("no certificate for client client; allowed: run "
                         "`paxosctl certs issue client --kind client -f cluster.toml`"), line
    assert not (tmp_path / ".paxosctl").exists()


def test_the_manifests_cluster_id_is_the_state_dirs(tmp_path: Path) -> None:
    """A new state dir takes the manifest's id (HELLOs and stores then carry
    the certificates' id); over TLS a state dir of another id is refused."""
    manifest = load_manifest(write(tmp_path, {"kind": "tls"}, cluster_id="c0ffee00c0ffee00"))
    held = claim(manifest)
    try:
        assert held.identity.id == "c0ffee00c0ffee00"
    finally:
        held.release()
    other = load_manifest(write(tmp_path, {"kind": "tls"}, cluster_id="beef0000beef0000"))
    with pytest.raises(ManifestError) as caught:
        claim(other)
    message = str(caught.value)
    assert message.splitlines() == [message]
    assert "'beef0000beef0000' is not the id of the cluster in" in message and \
        'set id = "c0ffee00c0ffee00" under [cluster]' in message, message
    # Over Unix sockets the certificates' id is not used: the state dir's stands.
    unix = load_manifest(write(tmp_path, None, cluster_id="beef0000beef0000"))
    held = claim(unix)
    try:
        assert held.identity.id == "c0ffee00c0ffee00"
    finally:
        held.release()


def test_check_runtime_passes_unix_without_certificates(tmp_path: Path) -> None:
    assert check_runtime(load_manifest(write(tmp_path))) == []
