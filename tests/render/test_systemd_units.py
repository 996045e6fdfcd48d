"""`paxosctl render systemd`: one unit per agent on a host, each verified by
`systemd-analyze verify` (pointed at this venv's paxosctl with --bin: verify
needs ExecStart's binary), and each ExecStart a `paxosctl agent` command
line that the agent's own CLI accepts."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rendering import EXAMPLES, example, paxosctl
from units import parse_unit, setting

from paxosctl.manifest import load_manifest
from paxosctl.render import systemd

PAXOSCTL = str(Path(sys.executable).parent / "paxosctl")


@pytest.mark.parametrize("manifest", EXAMPLES)
def test_every_rendered_unit_passes_systemd_analyze_verify(tmp_short, manifest):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (package systemd)")
    example(tmp_short, manifest, certs=False)
    out = tmp_short / "units"
    done = paxosctl(tmp_short, "render", "systemd", "-f", manifest, "--output", str(out), "--bin", PAXOSCTL)
    assert done.returncode == 0, done
    cluster = load_manifest(tmp_short / manifest)
    files = [out / systemd.unit_name(cluster, a.name) for a in cluster.agents]
    assert sorted(out.iterdir()) == sorted(files)
    assert done.stdout.split() == [str(f) for f in files]
    result = subprocess.run([analyze, "verify", *map(str, files)], capture_output=True, text=True, timeout=120)
    # verify exits 0 even for unknown keys and bad values: its warnings count too.
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


def test_a_unit_runs_its_agent_and_restarts_only_what_a_restart_can_fix(tmp_short):
    example(tmp_short, "hosts.toml", certs=False)
    manifest = load_manifest(tmp_short / "hosts.toml")
    units = systemd.units(manifest, "host-2", systemd.Options(bin=PAXOSCTL))
    assert list(units) == [f"paxosctl-hosts-{a}.service" for a in ("acceptor-1", "proposer-1", "learner-1")]
    unit = parse_unit(units["paxosctl-hosts-acceptor-1.service"])
    assert shlex.split(setting(unit, "Service", "ExecStart")) == [
        PAXOSCTL, "agent", "acceptor-1", "-f", "/etc/paxosctl/hosts.toml", "--state-dir",
        "/var/lib/paxosctl/hosts", "--bootstrap"]
    assert setting(unit, "Service", "Type") == "exec"
    assert setting(unit, "Service", "Restart") == "on-failure"
    assert setting(unit, "Service", "RestartSec") == "2s"
    assert setting(unit, "Service", "RestartPreventExitStatus").split() == ["78", "2"]
    assert setting(unit, "Service", "User") == "paxosctl"
    assert setting(unit, "Service", "StateDirectory") == "paxosctl/hosts"
    assert setting(unit, "Service", "WorkingDirectory") == "/etc/paxosctl"
    shipped = parse_unit((Path(__file__).resolve().parents[2] / "examples" / "paxosctl.service").read_text())
    hardening = {k: v for k, v in shipped["Service"].items() if k.startswith(
        ("Protect", "Restrict", "Private", "NoNew", "Capability", "SystemCall", "Lock"))}
    assert hardening and {k: unit["Service"].get(k) for k in hardening} == hardening
    # An agent `scale` adds starts without --bootstrap: admitted by the change.
    added = parse_unit(systemd.unit(manifest, "acceptor-3", systemd.Options(bin=PAXOSCTL)))
    assert "--bootstrap" not in setting(added, "Service", "ExecStart")


def test_the_exit_statuses_it_does_not_restart_are_the_agents_refusals(tmp_short):
    """RestartPreventExitStatus holds what `paxosctl agent` exits with for a
    bad manifest or option (2) and for state it cannot open (78)."""
    example(tmp_short, "replicas.toml", certs=False)
    manifest = load_manifest(tmp_short / "replicas.toml")
    unit = parse_unit(systemd.unit(manifest, "replica-0", systemd.Options(bin=PAXOSCTL,
                                                                            state_dir=str(tmp_short / "st"))))
    prevented = {int(s) for s in setting(unit, "Service", "RestartPreventExitStatus").split()}
    argv = shlex.split(setting(unit, "Service", "ExecStart"))
    argv[argv.index("-f") + 1] = str(tmp_short / "replicas.toml")  # where the manifest is here
    store = tmp_short / "st" / "state" / "replica-0.db"
    store.parent.mkdir(parents=True)
    store.write_bytes(b"not a database" * 100)
    refused = subprocess.run([*argv, "--http", "127.0.0.1:0"], capture_output=True, text=True, timeout=30)
    bad = subprocess.run([*argv, "--http", "nowhere"], capture_output=True, text=True, timeout=30)
    assert {refused.returncode, bad.returncode} == prevented, (refused, bad)
    assert setting(unit, "Service", "ReadWritePaths") == str(tmp_short / "st")  # not under /var/lib


def test_without_host_every_agent_and_with_an_unplaced_manifest_host_is_refused(tmp_short):
    example(tmp_short, "cluster.toml", certs=False)
    manifest = load_manifest(tmp_short / "cluster.toml")
    assert len(systemd.units(manifest, None, systemd.Options())) == len(manifest.agents) == 7
    done = paxosctl(tmp_short, "render", "systemd", "-f", "cluster.toml", "--host", "db1", "--output", "u")
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "error: --host: cluster.toml has no host 'db1'; hosts: none ([transport.hosts] is empty: "
        "leave --host out)"], done
    assert not (tmp_short / "u").exists()


@pytest.mark.parametrize(("args", "message"), [
    (("--host", "host-9"), "--host: hosts.toml has no host 'host-9'; hosts: host-1, host-2, host-3"),
    (("--output", "afile"), "--output: afile is a file, not a folder"),
    (("--bin", "paxosctl"), "--bin: 'paxosctl' is not usable in a unit; allowed: an absolute path"),
    (("--manifest-path", "/etc/my paxos.toml"), "--manifest-path: '/etc/my paxos.toml' is not usable"),
], ids=["unknown-host", "output-is-a-file", "relative-bin", "space-in-path"])
def test_bad_input_is_one_line_and_exit_2(tmp_short, args, message):
    example(tmp_short, "hosts.toml", certs=False)
    (tmp_short / "afile").write_text("")
    flags = dict(zip(args[::2], args[1::2]))
    flags.setdefault("--output", "units")
    done = paxosctl(tmp_short, "render", "systemd", "-f", "hosts.toml", *[x for kv in flags.items() for x in kv])
    assert done.returncode == 2 and done.stdout == "", done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), done.stderr
    assert not (tmp_short / "units").exists()
