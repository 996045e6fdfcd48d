"""README "On several hosts", as written, on namespace hosts.

examples/hosts.toml places the example cluster on 192.0.2.1-3, the
addresses of the fixture's first three hosts: `certs init` once, then on
each host `paxosctl agent NAME -f hosts.toml --state-dir ... --bootstrap`
for each of its agents, then `propose`, `decided`, `status` and `bench`
from a fourth host with no supervisor anywhere.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

from deployment import PAXOSCTL, wait_until

from paxos_agents.runtime.frames import EXIT_NEEDS_OPERATOR

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hosts.toml"


def test_the_readme_on_several_hosts_works_as_written(make_hosts, tmp_path) -> None:
    net = make_hosts(["h0", "h1", "h2", "client"])
    config = Path(net.folder) / "config"
    config.mkdir()
    shutil.copy(EXAMPLE, config / "hosts.toml")
    placed = tomllib.loads(EXAMPLE.read_text())["transport"]["hosts"]
    by_address = {host.address: host for host in net.hosts}
    assert sorted(t["address"] for t in placed.values()) == sorted(h.address for h in net.hosts[:3])

    made = net["client"].run([PAXOSCTL, "certs", "init", "-f", "hosts.toml"], cwd=config)
    assert made.returncode == 0, made.stderr
    runners = []
    for table in placed.values():
        host = by_address[table["address"]]
        for name in table["agents"]:
            runners.append(host.keep_running(
                name, [PAXOSCTL, "agent", name, "-f", "hosts.toml", "--state-dir", str(host.volume),
                       "--bootstrap"], cwd=config, permanent_exit=EXIT_NEEDS_OPERATOR))

    client = net["client"]

    def cli(*args: str):
        return client.run([PAXOSCTL, *args, "-f", "hosts.toml"], cwd=config, timeout=60)

    def status() -> dict:
        out = cli("status", "-o", "json")
        return json.loads(out.stdout) if out.returncode == 0 else {}

    ready = wait_until(lambda: (st := status()) and st["leader"] and st, 60,
                       "every agent answering, and a leader")
    assert len(ready["agents"]) == 7 and all(a["answered"] for a in ready["agents"])
    out = cli("propose", "hello")
    assert out.returncode == 0 and out.stdout.startswith("decided at "), out
    out = cli("decided")
    assert out.returncode == 0 and "hello" in out.stdout, out
    out = cli("status")
    assert out.returncode == 0 and "asked 7 agents directly" in out.stdout, out
    out = cli("bench", "--requests", "500", "--concurrency", "32", "-o", "json")
    assert out.returncode == 0 and json.loads(out.stdout)["errors"] == 0, out
    assert not any((config / ".paxosctl").glob("**/endpoints.json")), "the client needed no endpoints.json"
    assert all(r.exit_codes == [] for r in runners), [(r.name, r.exit_codes) for r in runners]
