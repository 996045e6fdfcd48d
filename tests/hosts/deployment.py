"""A cluster on namespace hosts, run as an engine would run it (not a test module).

`Deployment` puts one `paxosctl agent NAME` on each of three hosts, kept
running by the host's runner as systemd or Kubernetes would (restarted on
exit, never on the permanent exit code), over TCP + mutual TLS with a
real `paxosctl certs init`, and a fourth host, "client", for the CLI and
the load (`driver.py`). The manifest and certificates sit in one folder
every host reads (a ConfigMap and its Secrets); each agent's state is on
its host's volume. Every agent is started with `--bootstrap`, as a pod
spec made for a new cluster keeps it: the flag must never let a wiped disk
back in.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from clusters import wait_until
from hosts import Host, Network

from paxos_agents.runtime.frames import EXIT_NEEDS_OPERATOR
from paxosctl.tools.history import Operation, Report, check

BIN = Path(sys.executable).parent
PAXOSCTL = str(BIN / "paxosctl")
DRIVER = str(Path(__file__).with_name("driver.py"))
#: The data port of every agent, the probes' port beside it.
PORT = 7100
HTTP_PORT = 9465
NAMES = ("replica-0", "replica-1", "replica-2")

MANIFEST = """\
[cluster]
name = "hosts"

[agents.replica]
role = "replica"
replicas = 3

[paxos]
election_timeout = "{election}"

[metrics]
enabled = false

[transport]
kind = "tls"
port = {port}
http_port = {http_port}
name_template = "{{name}}.{{group}}.{{namespace}}.svc"
namespace = "demo"
"""


#: send_admin to each agent named (argv: manifest, frame, certificate kind, names...).
ADMIN = """
import json, sys
from paxosctl.client.admin import AdminRefused, AdminTarget, send_admin
from paxosctl.endpoints import from_manifest
from paxosctl.manifest import load_manifest
endpoints = from_manifest(load_manifest(sys.argv[1]), sys.argv[1])
for name in sys.argv[4:]:
    try:
        print(json.dumps(send_admin(AdminTarget.of(endpoints, name, sys.argv[3]), json.loads(sys.argv[2]))))
    except AdminRefused as e:
        print(json.dumps({"refused": e.code, "line": str(e)}))
"""

#: The sum of the series of one family whose labels include the given ones
#: (argv: url, family, labels as JSON) in a Prometheus scrape, or None.
SCRAPE = """
import json, sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
want = json.loads(sys.argv[3])
found = [s.value for f in text_string_to_metric_families(text) for s in f.samples
         if s.name == sys.argv[2] and want.items() <= s.labels.items()]
print(sum(found) if found else None)
"""


def dns_name(agent: str) -> str:
    """The name the manifest's template gives `agent` (all are of group "replica")."""
    return f"{agent}.replica.demo.svc"


class Deployment:
    """Three agents on hosts h0..h2 and a client host, over one `Network`."""

    def __init__(self, make_hosts: Any, *, election: str = "500ms", spare: bool | int = False) -> None:
        # As a headless Service names pods: replica-0.replica.demo.svc on h0, ...
        # `spare`: a host h3 with no agent, where one can be rescheduled (a
        # number: that many, h3, h4, ...).
        spares = [f"h{3 + i}" for i in range(int(spare))]
        self.net: Network = make_hosts(["h0", "h1", "h2", "client"] + spares,
                                       aliases={f"h{i}": [dns_name(name)] for i, name in enumerate(NAMES)})
        self.hosts = {name: self.net[f"h{i}"] for i, name in enumerate(NAMES)}
        self.client: Host = self.net["client"]
        self.config = Path(tempfile.mkdtemp(prefix="pxcfg", dir=self.net.folder))
        self.manifest = self.config / "cluster.toml"
        self.manifest.write_text(MANIFEST.format(election=election, port=PORT, http_port=HTTP_PORT))
        made = self.client.run([PAXOSCTL, "certs", "init", "-f", str(self.manifest)], cwd=self.config)
        assert made.returncode == 0, made.stderr
        self.runners = {name: self._start(name) for name in NAMES}
        self._loads: list[tuple[Any, Path, Path]] = []

    def argv(self, name: str) -> list[str]:
        host = self.hosts[name]
        return [PAXOSCTL, "agent", name, "-f", str(self.manifest), "--state-dir", str(host.volume),
                "--bootstrap"]

    def _start(self, name: str):
        return self.hosts[name].keep_running(name, self.argv(name), permanent_exit=EXIT_NEEDS_OPERATOR)

    # ------------------------------------------------------------- the CLI

    def cli(self, *args: str, timeout: float = 30):
        """`paxosctl ARGS -f MANIFEST` on the client host."""
        return self.client.run([PAXOSCTL, *args, "-f", str(self.manifest)], cwd=self.config,
                               timeout=timeout)

    def status(self) -> dict[str, Any]:
        """`status -o json` asked of the agents from the client host (exit 3 included)."""
        out = self.cli("status", "-o", "json")
        assert out.returncode in (0, 3), out.stderr
        return json.loads(out.stdout)

    def leader(self) -> str | None:
        return self.status()["leader"]

    def answering(self) -> dict[str, dict[str, Any]]:
        return {row["name"]: row for row in self.status()["agents"] if row["answered"]}

    def decided(self) -> list[dict[str, Any]]:
        out = self.cli("decided", "-o", "json", timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def admin(self, frame: dict[str, Any], names: tuple[str, ...] = NAMES, kind: str = "operator"):
        """Send the admin `frame` to agents `names` from the client host with the
        `kind` certificate; the completed process (stdout: one JSON answer per agent)."""
        return self.client.run([sys.executable, "-c", ADMIN, str(self.manifest), json.dumps(frame),
                                kind, *names], cwd=self.config)

    def metric(self, agent: str, name: str, **labels: str) -> float:
        """The sum of `agent`'s series `name` with `labels`, scraped from the
        client host over its /metrics (0 when there is none)."""
        out = self.client.run([sys.executable, "-c", SCRAPE, f"http://{dns_name(agent)}:{HTTP_PORT}/metrics",
                               name, json.dumps(labels)], cwd=self.config)
        assert out.returncode == 0, out.stderr
        return 0.0 if out.stdout.strip() == "None" else float(out.stdout)

    # ------------------------------------------------------------- the load

    def start_load(self, concurrency: int = 8) -> None:
        """`driver.py` on the client host until `finish_load`."""
        out = self.config / f"history-{len(self._loads)}.json"
        stop = self.config / f"stop-{len(self._loads)}"
        process = self.client.popen([sys.executable, DRIVER, str(self.manifest), str(out),
                                     "--concurrency", str(concurrency), "--stop-file", str(stop)],
                                    cwd=self.config, log="driver")
        self._loads.append((process, out, stop))

    def acks(self) -> list[tuple[float, int]]:
        """(monotonic time, slot) of every decision the current load got so far."""
        path = Path(str(self._loads[-1][1]) + ".acks")
        if not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:
                rows.append((float(parts[0]), int(parts[1])))
        return rows

    def acked_since(self, moment: float) -> int:
        return sum(1 for t, _ in self.acks() if t > moment)

    def finish_load(self, timeout: float = 90) -> list[Operation]:
        process, out, stop = self._loads[-1]
        stop.touch()
        code = process.wait(timeout)
        assert code == 0, (self.client.log_path("driver")).read_text()[-2000:]
        return [Operation(request_id=o["request_id"], value=o["value"], invoked=o["invoked"],
                          acked=o["acked"], slot=o["slot"], index=o["index"])
                for o in json.loads(out.read_text())]

    def caught_up(self, history: list[Operation], timeout: float = 30) -> int:
        """Wait until every agent that answers applied the highest slot `history`
        acknowledged (a learner reads only what it applied); that slot."""
        top = max(op.slot for op in history if op.acked is not None)
        wait_until(lambda: all((row.get("applied") if row.get("applied") is not None else -1) >= top
                               for row in self.answering().values()), timeout,
                   f"every answering agent applied slot {top}")
        return top

    def check(self, history: list[Operation]) -> Report:
        """The history check on every acknowledged command, against the decided
        log as a learner that applied the last acknowledged slot has it."""
        self.caught_up(history)
        report = check(history, self.decided())
        assert report.ok, report.problems()[:10]
        assert report.acknowledged > 0, report.summary()
        return report
