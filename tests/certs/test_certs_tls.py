"""Mutual TLS 1.3 between real sockets, and the checks an agent makes of its
own files before it starts (paxos_agents.runtime.identity).

Every refusal is one line that names the file (or the peer) and the fix,
and maps to a reason whose counter a listener increments.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from datetime import timedelta

import pytest

from paxos_agents.runtime.identity import (REASONS, CertificateProblem, Identity, check_files,
                                           describe_tls_error)
from pki import NOW, Pki, handshake

CLUSTER = "c0ffee0000000001"
OTHER = "c0ffee0000000002"


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path / "one", CLUSTER)


def _one_line(text: str) -> str:
    assert "\n" not in text and text, text
    return text


# -- (a) a good pair --------------------------------------------------------------


def test_good_pair_connects_and_each_side_reads_the_other(pki):
    agent = pki.leaf("agent", "acceptor-0")
    client = pki.leaf("client", "client")
    server_saw, client_saw = handshake(
        agent.server(), client.client(),
        server_checks={"cluster_id": CLUSTER},
        client_checks={"expect": Identity(CLUSTER, "agent", "acceptor-0")})
    assert (server_saw.error, client_saw.error) == (None, None)
    assert server_saw.identity == Identity(CLUSTER, "client", "client")
    assert client_saw.identity == Identity(CLUSTER, "agent", "acceptor-0")


def test_contexts_speak_tls_1_3_only(pki):
    agent = pki.leaf("agent", "acceptor-0")
    old = agent.client()
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_2
    server_saw, client_saw = handshake(agent.server(), old)
    assert server_saw.identity is None and client_saw.identity is None
    assert describe_tls_error(server_saw.error)[0] == "protocol"


# -- (b) refusals during the handshake ---------------------------------------------


def test_another_clusters_ca_is_refused_by_both_sides(tmp_path, pki):
    stranger = Pki(tmp_path / "two", OTHER).leaf("agent", "acceptor-0")
    server_saw, client_saw = handshake(pki.leaf("agent", "acceptor-0").server(), stranger.client())
    assert describe_tls_error(server_saw.error)[0] == "unknown_ca"
    assert describe_tls_error(client_saw.error)[0] == "unknown_ca"
    reason, line = describe_tls_error(server_saw.error)
    assert "fix:" in _one_line(line) and REASONS[reason][0] == "tls_unknown_ca"


def test_another_cluster_id_under_the_same_ca_is_refused(pki):
    # One CA shared by two clusters: the chain verifies, the URI does not.
    intruder = pki.leaf("agent", "acceptor-1", cluster_id=OTHER)
    server_saw, _ = handshake(pki.leaf("agent", "acceptor-0").server(), intruder.client(),
                              server_checks={"cluster_id": CLUSTER})
    assert isinstance(server_saw.error, CertificateProblem), server_saw.error
    assert server_saw.error.reason == "wrong_cluster"
    assert server_saw.error.counter == "tls_wrong_cluster"
    assert OTHER in _one_line(server_saw.error.message) and "fix:" in server_saw.error.message


@pytest.mark.parametrize(("kind", "name"), [("agent", "acceptor-1"), ("client", "acceptor-0")],
                         ids=["another-agent", "a-client-posing-as-the-agent"])
def test_dialler_refuses_a_server_that_is_not_the_agent_it_dialled(pki, kind, name):
    impostor = pki.leaf(kind, name)
    _, client_saw = handshake(impostor.server(), pki.leaf("client", "client").client(),
                              client_checks={"expect": Identity(CLUSTER, "agent", "acceptor-0")})
    assert isinstance(client_saw.error, CertificateProblem), client_saw.error
    assert client_saw.error.reason == "wrong_identity"
    assert f"{kind}/{name}" in _one_line(client_saw.error.message)


@pytest.mark.parametrize("uris", [
    (),
    (f"spiffe://{CLUSTER}/agent/acceptor-1", f"spiffe://{CLUSTER}/agent/acceptor-2"),
    (f"spiffe://{CLUSTER}/agent/acceptor-1/x",),
], ids=["none", "two", "malformed"])
def test_a_certificate_without_exactly_one_good_spiffe_uri_is_refused(pki, uris):
    odd = pki.with_uris(*uris)
    server_saw, _ = handshake(pki.leaf("agent", "acceptor-0").server(), odd.client(),
                              server_checks={"cluster_id": CLUSTER})
    assert isinstance(server_saw.error, CertificateProblem), server_saw.error
    assert server_saw.error.reason == "no_identity"
    problem = _refused(odd.cert, odd.key, odd.ca, None, NOW)
    assert problem.reason == "no_identity" and str(odd.cert) in problem.message


def test_expired_certificate_is_refused_in_the_handshake(pki):
    server_saw, client_saw = handshake(pki.leaf("agent", "acceptor-0").server(),
                                       pki.expired("agent", "acceptor-1").client())
    assert describe_tls_error(server_saw.error)[0] == "expired"
    assert describe_tls_error(client_saw.error)[0] == "expired"  # the alert the server sent


def test_not_yet_valid_certificate_is_refused_in_the_handshake(pki):
    server_saw, client_saw = handshake(pki.leaf("agent", "acceptor-0").server(),
                                       pki.not_yet_valid("agent", "acceptor-1").client())
    assert describe_tls_error(server_saw.error)[0] == "not_yet_valid"
    assert client_saw.error is not None


def test_a_dialler_without_a_certificate_is_refused(pki):
    agent = pki.leaf("agent", "acceptor-0")
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bare.check_hostname = False
    bare.load_verify_locations(agent.ca)
    server_saw, client_saw = handshake(agent.server(), bare)
    assert describe_tls_error(server_saw.error)[0] == "bad_certificate"
    assert client_saw.error is not None


# -- (b) refusals before starting: check_files -------------------------------------


def _refused(*args, **kwargs) -> CertificateProblem:
    with pytest.raises(CertificateProblem) as caught:
        check_files(*args, **kwargs)
    _one_line(caught.value.message)
    assert "; fix: " in caught.value.message
    return caught.value


def test_check_files_accepts_good_files_and_returns_the_identity(pki):
    files = pki.leaf("agent", "acceptor-0")
    expect = Identity(CLUSTER, "agent", "acceptor-0")
    assert check_files(files.cert, files.key, files.ca, expect, NOW) == expect


def test_check_files_refuses_another_clusters_ca(tmp_path, pki):
    stranger = Pki(tmp_path / "two", OTHER).leaf("agent", "acceptor-0")
    problem = _refused(stranger.cert, stranger.key, pki.ca, None, NOW)
    assert problem.reason == "unknown_ca"
    assert str(stranger.cert) in problem.message and str(pki.ca) in problem.message


@pytest.mark.parametrize(("expect", "reason"), [
    (Identity(OTHER, "agent", "acceptor-0"), "wrong_cluster"),
    (Identity(CLUSTER, "agent", "acceptor-1"), "wrong_identity"),
    (Identity(CLUSTER, "operator", "acceptor-0"), "wrong_identity"),
], ids=["other-cluster-id", "other-name", "other-kind"])
def test_check_files_refuses_another_identity(pki, expect, reason):
    files = pki.leaf("agent", "acceptor-0")
    problem = _refused(files.cert, files.key, files.ca, expect, NOW)
    assert problem.reason == reason
    assert str(files.cert) in problem.message and expect.uri in problem.message


def test_check_files_refuses_an_expired_certificate(pki):
    files = pki.expired("agent", "acceptor-0")
    problem = _refused(files.cert, files.key, files.ca, None, NOW)
    assert problem.reason == "expired" and str(files.cert) in problem.message
    assert "certs rotate" in problem.message


def test_check_files_refuses_a_certificate_not_yet_valid(pki):
    files = pki.not_yet_valid("agent", "acceptor-0")
    problem = _refused(files.cert, files.key, files.ca, None, NOW)
    assert problem.reason == "not_yet_valid" and str(files.cert) in problem.message
    # The same files are good once their time has come: the check reads `now`.
    assert check_files(files.cert, files.key, files.ca, None, NOW + timedelta(days=2))


def test_check_files_refuses_a_key_that_is_not_the_certificates(pki):
    one, two = pki.leaf("agent", "acceptor-0"), pki.leaf("agent", "acceptor-0")
    problem = _refused(one.cert, two.key, one.ca, None, NOW)
    assert problem.reason == "key_mismatch"
    assert str(two.key) in problem.message and str(one.cert) in problem.message


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604], ids=["0644", "0640", "0604"])
def test_check_files_refuses_a_key_readable_by_others(pki, mode):
    files = pki.leaf("agent", "acceptor-0")
    os.chmod(files.key, mode)
    problem = _refused(files.cert, files.key, files.ca, None, NOW)
    assert problem.reason == "key_permissions"
    assert str(files.key) in problem.message and f"{mode:04o}" in problem.message
    assert "chmod 600" in problem.message


def test_check_files_accepts_a_key_stricter_than_0600(pki):
    files = pki.leaf("agent", "acceptor-0")
    os.chmod(files.key, 0o400)
    assert check_files(files.cert, files.key, files.ca, None, NOW)


@pytest.mark.parametrize("which", ["cert", "key", "ca"])
def test_check_files_refuses_a_missing_file_naming_it(pki, which):
    files = pki.leaf("agent", "acceptor-0")
    paths = {"cert": files.cert, "key": files.key, "ca": files.ca}
    paths[which] = paths[which].with_name("missing.pem")
    problem = _refused(paths["cert"], paths["key"], paths["ca"], None, NOW)
    assert problem.reason == "unreadable" and str(paths[which]) in problem.message


def test_check_files_refuses_a_file_that_is_not_pem(pki):
    files = pki.leaf("agent", "acceptor-0")
    files.cert.write_text("hello\n")
    problem = _refused(files.cert, files.key, files.ca, None, NOW)
    assert problem.reason == "not_pem" and str(files.cert) in problem.message


# -- identities --------------------------------------------------------------------


def test_identity_round_trips():
    identity = Identity.parse("spiffe://c0ffee/agent/acceptor-2")
    assert identity == Identity("c0ffee", "agent", "acceptor-2")
    assert identity.uri == str(identity) == "spiffe://c0ffee/agent/acceptor-2"


@pytest.mark.parametrize(("uri", "names"), [
    ("https://c0ffee/agent/a-0", "spiffe"),
    ("spiffe://c0ffee/agent", "path segments"),
    ("spiffe://c0ffee/agent/a-0/", "path segments"),
    ("spiffe://c0ffee/admin/a-0", "kind"),
    ("spiffe://C0FFEE/agent/a-0", "cluster id"),
    ("spiffe://c0ffee:443/agent/a-0", "cluster id"),
    ("spiffe://c0ffee/agent/A-0", "agent name"),
    ("spiffe://c0ffee/agent/", "agent name"),
], ids=["scheme", "short", "trailing-slash", "kind", "upper-case-id", "port", "upper-case-name", "empty-name"])
def test_identity_parse_is_strict_and_says_what_is_allowed(uri, names):
    with pytest.raises(ValueError) as caught:
        Identity.parse(uri)
    message = _one_line(str(caught.value))
    assert names in message and "allowed" in message


def test_importing_identity_loads_neither_ssl_nor_cryptography():
    code = ("import sys, paxos_agents.runtime.identity, paxosctl.cli; "
            "print(sorted(m for m in ('ssl', 'cryptography') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
