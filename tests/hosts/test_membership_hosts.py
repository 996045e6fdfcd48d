"""Membership across hosts with no supervisor (issue 23): `scale` and
`replace` driven from the client host against agents on namespace hosts,
under load, with the history check on every acknowledged command.

The change runs as `paxosctl scale/replace` runs it (paxosctl.tools.remotechange
`drive`: the members asked of the agents, the record announced over the
operator channel, the driver's topology.json on the client host) with a
test launcher in place of kubectl or systemctl: it asks this process,
through a file, to start an added agent on a spare host (its certificate
issued, its Service name moved there, `paxosctl agent NAME` with no
--bootstrap, kept running as an engine would) or to stop one.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
import time

import pytest
from deployment import NAMES, PAXOSCTL, Deployment, dns_name, wait_until

from paxos_agents.runtime.frames import EXIT_NEEDS_OPERATOR

#: Run on the client host: `drive` a change with a launcher that writes its
#: requests to FOLDER/requests (argv: manifest, folder, scale|replace, GROUP=N|AGENT, timeout).
CHANGE = """
import sys
from pathlib import Path
from paxosctl.tools.remotechange import drive
from paxosctl.endpoints import from_manifest
from paxosctl.errors import PaxosctlError
from paxosctl.manifest import load_manifest

class FileLauncher:
    def __init__(self, folder):
        self.folder = Path(folder)
    def _ask(self, line):
        with open(self.folder / "requests", "a") as f:
            f.write(line + "\\n")
    def start(self, spec, why):
        self._ask(f"start {spec.name}")
    def stop(self, name, why, retired):
        self._ask(f"stop {name}")
    def failed(self, name):
        path = self.folder / f"failed-{name}"
        return path.read_text() if path.exists() else None

path, folder, op, arg, timeout = sys.argv[1:6]
manifest = load_manifest(path)
endpoints = from_manifest(manifest, path)
if op == "scale":
    group, count = arg.split("=")
    kw = {"scale": (group, int(count))}
else:
    kw = {"replace": (arg, False)}
try:
    drive(manifest, manifest.path, endpoints, FileLauncher(folder), float(timeout), **kw)
except PaxosctlError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(e.exit_code)
"""

#: Run on the client host: what `paxosctl.client.members.current` learns (argv: manifest).
MEMBERS = """
import json, sys
from paxosctl.client.members import current
from paxosctl.endpoints import from_manifest
from paxosctl.manifest import load_manifest
manifest = load_manifest(sys.argv[1])
m = current(from_manifest(manifest, sys.argv[1]), manifest)
print(json.dumps({"version": m.version, "names": list(m.names), "acceptors": list(m.acceptors),
                  "retired": sorted(m.retired), "epoch": m.epoch, "in_force_epoch": m.in_force_epoch,
                  "config_acceptors": list(m.config_acceptors), "answering": sorted(m.answering),
                  "welcomes": {n: a.welcome for n, a in m.answers.items()}}))
"""


class SpareLauncher:
    """The test's side of the launcher: starts and stops agents on spare hosts."""

    def __init__(self, d: Deployment, spares: list[str]) -> None:
        self.d = d
        self.free = list(spares)
        self.folder = d.config / "launcher"
        self.folder.mkdir()
        self.requests = self.folder / "requests"
        self.handled: list[str] = []
        #: While set, requests wait (an engine slow to schedule a pod).
        self.hold = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        done = 0
        while not self._stop.wait(0.05):
            lines = self.requests.read_text().splitlines() if self.requests.exists() else []
            if self.hold.is_set():
                continue
            for line in lines[done:]:
                verb, name = line.split()
                self.start(name) if verb == "start" else self.stop(name)
                self.handled.append(line)
            done = len(lines)
            for name, runner in self.d.runners.items():
                failed = self.folder / f"failed-{name}"
                if runner.state == "exited" and not failed.exists():
                    failed.write_text(f"exited {runner.exit_codes[-1]}")

    def start(self, name: str) -> None:
        d = self.d
        if name in d.runners and d.runners[name].state in ("running", "backoff", "starting"):
            return  # asked again (a resumed change): it runs
        issued = d.client.run([PAXOSCTL, "certs", "issue", name, "-f", str(d.manifest)], cwd=d.config)
        assert issued.returncode == 0, issued.stderr
        host = d.net[self.free.pop(0)]
        host.add_alias(dns_name(name))
        d.hosts[name] = host
        d.runners[name] = host.keep_running(
            name, [PAXOSCTL, "agent", name, "-f", str(d.manifest), "--state-dir", str(host.volume)],
            permanent_exit=EXIT_NEEDS_OPERATOR)

    def stop(self, name: str) -> None:
        runner = self.d.runners.get(name)
        if runner is not None:
            runner.stop()

    def change(self, op: str, arg: str, timeout: float = 40):
        """`drive` the change on the client host; the completed process."""
        return self.d.client.run([sys.executable, "-c", CHANGE, str(self.d.manifest), str(self.folder),
                                  op, arg, str(timeout)], cwd=self.d.config, timeout=timeout + 15)

    def wait_handled(self, last: list[str], timeout: float = 10) -> None:
        """Wait until the last requests handled are `last`: the launcher's
        thread reads the requests file on its own clock, so a change can be
        in force a moment before the thread has acted on its last request."""
        try:
            wait_until(lambda: self.handled[-len(last):] == last, timeout, f"the launcher to handle {last}")
        except AssertionError as e:
            raise AssertionError(f"{e}; handled: {self.handled}") from None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def members(d: Deployment) -> dict:
    out = d.client.run([sys.executable, "-c", MEMBERS, str(d.manifest)], cwd=d.config)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def in_force(d: Deployment, acceptors: set[str]) -> dict:
    """Wait until every answering agent runs the same record and a configuration
    with `acceptors` is in force; what `members.current` then says."""
    found: dict = {}

    def check() -> bool:
        nonlocal found
        found = members(d)
        return (set(found["config_acceptors"]) == acceptors and found["epoch"] >= 1
                and found["in_force_epoch"] == found["epoch"]
                and set(found["names"]) == acceptors
                and all(w.get("members_version") == found["version"] for w in
                        (found["welcomes"][n] for n in found["answering"])))
    wait_until(check, 20, f"acceptors {sorted(acceptors)} in force on every agent")
    return found


def loaded(d: Deployment, more: int = 20) -> None:
    """Wait until the load has `more` further acknowledgements."""
    now = time.monotonic()
    wait_until(lambda: d.acked_since(now) >= more, 30, f"{more} more acknowledged commands")


@pytest.fixture
def grown(make_hosts):
    """A deployment grown from 3 to 5 replicas under load (history checked)."""
    d = Deployment(make_hosts, spare=2)
    launcher = SpareLauncher(d, ["h3", "h4"])
    try:
        wait_until(lambda: d.leader() is not None, 20, "a leader")
        d.start_load()
        loaded(d)
        done = launcher.change("scale", "replica=5")
        assert done.returncode == 0, done.stderr
        assert "scale replica 3 -> 5: in force after" in done.stdout, done.stdout
        launcher.wait_handled(["start replica-3", "start replica-4"])
        found = in_force(d, {*NAMES, "replica-3", "replica-4"})
        loaded(d)
        history = d.finish_load()
        d.check(history)
        yield d, launcher, found, history
    finally:
        launcher.close()


def test_grow_3_to_5_under_load_then_a_restarted_agent_runs_the_stored_membership(grown):
    d, launcher, found, history = grown
    assert found["version"] >= 1 and found["answering"] == sorted({*NAMES, "replica-3", "replica-4"})
    # replica-0 restarted: its manifest says three replicas; its store says five.
    runner = d.runners["replica-0"]
    before = found["welcomes"]["replica-0"]["incarnation"]
    d.hosts["replica-0"].kill_all()
    runner.wait_started(2, timeout=20)
    wait_until(lambda: members(d)["welcomes"].get("replica-0", {}).get("incarnation", 0) > before,
               20, "replica-0 answering again, a new incarnation")
    again = members(d)["welcomes"]["replica-0"]
    assert again["members_version"] == found["version"]
    assert set(again["membership"]["acceptors"]) == {*NAMES, "replica-3", "replica-4"}
    # It works with the added agents: the cluster decides with replica-3 and -4
    # while two of the first three are down (a majority of five: 0, 3, 4).
    d.hosts["replica-1"].partition()
    d.hosts["replica-2"].partition()
    try:
        d.start_load()
        loaded(d, 10)
        d.hosts["replica-1"].heal()
        d.hosts["replica-2"].heal()
        d.check(history + d.finish_load())  # the check reads the whole decided log
    finally:
        d.hosts["replica-1"].heal()
        d.hosts["replica-2"].heal()


def test_shrink_5_to_3_under_load(grown):
    d, launcher, found, history = grown
    d.start_load()
    loaded(d)
    done = launcher.change("scale", "replica=3")
    assert done.returncode == 0, done.stderr
    assert "scale replica 5 -> 3: in force after" in done.stdout, done.stdout
    in_force(d, set(NAMES))
    launcher.wait_handled(["stop replica-3", "stop replica-4"])
    assert d.runners["replica-3"].state == "stopped" and d.runners["replica-4"].state == "stopped"
    loaded(d)
    d.check(history + d.finish_load())


def test_replace_a_wiped_acceptor_under_load(make_hosts):
    d = Deployment(make_hosts, spare=1)
    launcher = SpareLauncher(d, ["h3"])
    try:
        wait_until(lambda: d.leader() is not None, 20, "a leader")
        d.start_load()
        loaded(d)
        # replica-2's disk is lost and its process killed: its runner starts it
        # again (still with --bootstrap), and its peers, who welcomed it, refuse it.
        wiped = d.hosts["replica-2"]
        wiped.lose_disk()
        assert d.runners["replica-2"].wait_exited(30) == EXIT_NEEDS_OPERATOR
        done = launcher.change("replace", "replica-2")
        assert done.returncode == 0, done.stderr
        assert "replace replica-2 by replica-3: in force after" in done.stdout, done.stdout
        found = in_force(d, {"replica-0", "replica-1", "replica-3"})
        assert found["retired"] == ["replica-2"]
        loaded(d)
        d.check(d.finish_load())
        # Started again by hand (its unit re-enabled by mistake), the retired
        # name is refused at once: its peers say it was retired.
        again = wiped.run([PAXOSCTL, "agent", "replica-2", "-f", str(d.manifest), "--state-dir",
                           str(wiped.volume), "--bootstrap"], timeout=30)
        assert again.returncode == EXIT_NEEDS_OPERATOR, again.stderr
        assert "retired by a replace" in again.stderr, again.stderr
        # It never voted: its new store holds no promise and no vote.
        with sqlite3.connect(wiped.volume / "state" / "replica-2.db") as db:
            assert db.execute("SELECT count(*) FROM votes").fetchone()[0] == 0
            meta = dict(db.execute("SELECT key, value FROM meta"))
        assert meta["promised_round"] == 0 and meta["admitted"] == 0
    finally:
        launcher.close()


def test_a_change_past_its_timeout_exits_124_and_the_same_command_resumes_it(make_hosts):
    d = Deployment(make_hosts, spare=1)
    launcher = SpareLauncher(d, ["h3"])
    try:
        wait_until(lambda: d.leader() is not None, 20, "a leader")
        launcher.hold.set()  # the engine does not start replica-3 yet
        first = launcher.change("scale", "replica=4", timeout=4)
        assert first.returncode == 124, first
        assert first.stderr.splitlines()[-1].startswith(
            "error: scale replica 3 -> 4: not in force after 4s (starting new agents (replica-3)); "
            "it is recorded in "), first.stderr
        assert first.stderr.rstrip().endswith("run the same command again to resume it")
        launcher.hold.clear()
        other = launcher.change("scale", "replica=5", timeout=10)
        assert other.returncode == 1 and "a membership change is in progress (scale replica 3 -> 4" \
            in other.stderr, other
        again = launcher.change("scale", "replica=4")
        assert again.returncode == 0, again.stderr
        assert "resuming scale replica 3 -> 4" in again.stderr, again.stderr
        assert "scale replica 3 -> 4: in force after" in again.stdout, again.stdout
        assert d.runners["replica-3"].starts == 1  # asked twice, started once
        in_force(d, {*NAMES, "replica-3"})
        # Done: the same command now has nothing to do.
        idle = launcher.change("scale", "replica=4")
        assert idle.returncode == 0 and idle.stdout.strip() == "no change: replica 4 -> 4", idle
    finally:
        launcher.close()
