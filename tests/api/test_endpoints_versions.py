"""endpoints.json's versions: 1 for a cluster on Unix sockets (what every
client reads), 2 for one over TCP + TLS, so that a client that knows only
version 1 refuses it with one line instead of dialling sockets that are
not there. Read by `paxosctl.endpoints.read_endpoints`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paxosctl.endpoints import read_endpoints
from paxosctl.errors import PaxosctlError

BODY = {"cluster": "demo", "cluster_id": "abcdef0123456789", "proposers": ["proposer-0"],
        "learners": ["learner-0"], "retry_seconds": 1.0, "max_value_bytes": 1024}
TLS = {"kind": "tls", "certs": "/tmp/certs", "addresses": {}, "user_timeout_ms": 2000}


def write(run: Path, **fields) -> Path:
    run.mkdir(exist_ok=True)
    (run / "endpoints.json").write_text(json.dumps({**BODY, **fields}))
    return run


def test_version_1_is_a_unix_socket_cluster(tmp_path: Path) -> None:
    assert read_endpoints(write(tmp_path / "run", version=1), "c.toml").tls is None


def test_version_2_is_a_cluster_over_tls(tmp_path: Path) -> None:
    found = read_endpoints(write(tmp_path / "run", version=2, transport=TLS), "c.toml")
    assert found.tls is not None and found.tls.certs == Path("/tmp/certs")


@pytest.mark.parametrize(("fields", "line"), [
    ({"version": 3}, "is of another paxosctl version (3; this one reads 1 and 2)"),
    ({"version": 1, "transport": TLS}, "is malformed (version 1 with a transport)"),
    ({"version": 2}, "is malformed (version 2 without a transport)"),
], ids=["unknown", "tls-under-1", "2-without-tls"])
def test_other_versions_are_refused_in_one_line(tmp_path: Path, fields: dict, line: str) -> None:
    with pytest.raises(PaxosctlError) as refused:
        read_endpoints(write(tmp_path / "run", **fields), "c.toml")
    assert line in str(refused.value) and "\n" not in str(refused.value)
