"""The commands and habits kubectl, docker compose and supervisorctl users
reach for (issue 13), against real clusters: stop/start, describe, events,
status -w and its truthful states, -o yaml, logs of many agents, down
--purge, manifest discovery, version, completion.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml
from clusters import PAXOSCTL, Cluster, ClusterFactory, describe, paxosctl, wait_until

from paxosctl import __version__

#: Heartbeats judged slowly enough that a SIGSTOPped agent is seen
#: `unresponsive` long before the supervisor kills it.
PATIENT = {"heartbeat_interval": "100ms", "heartbeat_timeout": "60s"}
#: Restarts come fast, so a test can see one without waiting long.
QUICK = {"policy": "always", "backoff_initial": "50ms"}


@pytest.fixture(scope="module")
def kit(module_clusters: ClusterFactory) -> Cluster:
    """One roles cluster for this module; each test leaves every agent running."""
    return module_clusters("roles", name="kit", health=PATIENT, restart=QUICK)


def agent_row(cluster: Cluster, name: str) -> dict:
    return next(a for a in status_json(cluster)["agents"] if a["name"] == name)


def status_json(cluster: Cluster) -> dict:
    result = cluster.run("status", "-o", "json")
    assert result.returncode in (0, 3), describe(result)
    return json.loads(result.stdout)


class Streamed:
    """A long-running paxosctl (a watch or a follow) whose stdout lines are
    read by a thread, so a test waits for a line with a deadline."""

    def __init__(self, cluster: Cluster, *args: str) -> None:
        self.process = subprocess.Popen(
            [PAXOSCTL, *args, "--file", str(cluster.manifest)], cwd=cluster.dir,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "COLUMNS": "200"})
        self._lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.seen: list[str] = []
        threading.Thread(target=lambda: [self._lines.put(l) for l in self.process.stdout],
                         daemon=True).start()

    def saw(self, predicate) -> bool:
        while not self._lines.empty():
            self.seen.append(self._lines.get())
        return any(predicate(line) for line in self.seen)

    def interrupt(self) -> int:
        """Ctrl-C, as a person ends a watch; the exit code."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=10)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# ------------------------------------------------------------- stop / start


def test_stop_keeps_an_agent_stopped_until_start(kit: Cluster) -> None:
    kit.wait_healthy()
    out = kit.run_ok("stop", "acceptor-1").stdout
    assert out == "stopped acceptor-1\n"
    row = agent_row(kit, "acceptor-1")
    assert (row["state"], row["pid"], row["should_run"]) == ("stopped", None, False)
    assert row["note"] == "stopped by the operator"
    # Operator-stopped is not "down": status exits 0 and still shows it.
    result = kit.run("status")
    assert result.returncode == 0, describe(result)
    assert "stopped by the operator" in result.stdout
    # The policy is "always" with a 50 ms backoff: a learner killed now is
    # back long before this check ends, and acceptor-1 must still be stopped.
    old = kit.agent("learner-0")["pid"]
    kit.run_ok("kill", "learner-0")
    wait_until(lambda: (a := kit.agent("learner-0"))["state"] == "running" and a["pid"] != old,
               30, "learner-0 back after its kill")
    assert agent_row(kit, "acceptor-1")["state"] == "stopped"
    assert kit.run_ok("stop", "acceptor-1").stdout == "acceptor-1 is already stopped\n"
    # The cluster keeps deciding on two acceptors of three.
    kit.run_ok("propose", "while one acceptor is stopped")
    out = kit.run_ok("start", "acceptor-1").stdout
    assert out.startswith("started acceptor-1 (pid "), out
    row = agent_row(kit, "acceptor-1")
    assert (row["state"], row["should_run"]) == ("running", True)
    assert kit.run_ok("start", "acceptor-1").stdout == "acceptor-1 is already running\n"
    events = json.loads(kit.run_ok("events", "acceptor-1", "-o", "json").stdout)["events"]
    kinds = [e["kind"] for e in events]
    assert kinds[-4:] == ["stopping", "exited", "started", "running"], kinds


def test_stop_kills_an_agent_that_ignores_sigterm(kit: Cluster) -> None:
    kit.wait_healthy()
    pid = kit.agent("learner-1")["pid"]
    kit.run_ok("kill", "-s", "STOP", "learner-1")  # a stopped process does not act on TERM
    try:
        result = kit.run("stop", "learner-1", timeout=60)
        assert result.returncode == 0, describe(result)
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        events = json.loads(kit.run_ok("events", "learner-1", "-o", "json").stdout)["events"]
        assert [e["kind"] for e in events][-2:] == ["killing", "exited"], events
        assert "ended by signal KILL (operator-stop)" in events[-1]["message"]
    finally:
        if psutil.pid_exists(pid):
            os.kill(pid, signal.SIGCONT)
        kit.run_ok("start", "learner-1")


def test_bad_agent_names_are_one_line_errors(kit: Cluster) -> None:
    for command in ("stop", "start", "describe"):
        result = kit.run(command, "nobody")
        assert result.returncode == 2, describe(result)
        assert result.stdout == ""
        assert result.stderr.startswith('error: bad ') and '"agent": no agent "nobody"' in \
            result.stderr, result.stderr
        assert "Traceback" not in result.stderr


# ------------------------------------------------------- truthful status


def test_a_frozen_agent_is_unresponsive_and_status_exits_3(kit: Cluster) -> None:
    kit.wait_healthy()
    kit.run_ok("kill", "-s", "STOP", "learner-1")
    try:
        wait_until(lambda: agent_row(kit, "learner-1")["state"] == "unresponsive", 15,
                   "the SIGSTOPped learner shown unresponsive")
        result = kit.run("status")
        assert result.returncode == 3, describe(result)
        line = next(l for l in result.stdout.splitlines() if l.startswith("learner-1 "))
        assert "unresponsive" in line and "no heartbeat for" in line, line
    finally:
        kit.run_ok("kill", "-s", "CONT", "learner-1")
    wait_until(lambda: kit.run("status").returncode == 0, 15, "status exit 0 after SIGCONT")


def test_note_and_describe_tell_the_last_exit(kit: Cluster) -> None:
    kit.wait_healthy()
    before = json.loads(kit.run_ok("describe", "proposer-1", "-o", "json").stdout)
    kit.run_ok("kill", "proposer-1")
    wait_until(lambda: (a := agent_row(kit, "proposer-1"))["state"] == "running"
               and a["pid"] != before["pid"], 30, "proposer-1 restarted")
    row = agent_row(kit, "proposer-1")
    assert row["note"].startswith("last: ended by signal KILL (operator-kill) "), row["note"]
    assert row["last_exit"]["signal"] == "SIGKILL" and row["last_exit"]["code"] == -9
    doc = json.loads(kit.run_ok("describe", "proposer-1", "-o", "json").stdout)
    assert (doc["schema"], doc["kind"], doc["name"]) == (1, "Agent", "proposer-1")
    agent = doc
    assert agent["incarnation"] == before["incarnation"] + 1
    assert agent["restarts_by_reason"].get("killed", 0) == \
        before["restarts_by_reason"].get("killed", 0) + 1
    assert Path(agent["files"]["state"]).is_file()
    assert agent["files"]["state_bytes"] == Path(agent["files"]["state"]).stat().st_size
    assert [e["kind"] for e in agent["events"]][-3:] == ["exited", "started", "running"]
    text = kit.run_ok("describe", "proposer-1").stdout
    assert "Last exit:" in text and "signal SIGKILL (operator-kill)" in text, text
    assert f"Incarnation:       {agent['incarnation']}" in text
    assert "Events:" in text and "operator-kill" in text
    assert yaml.safe_load(kit.run_ok("describe", "proposer-1", "-o", "yaml").stdout)[
        "name"] == "proposer-1"


def test_status_machine_formats_are_versioned_and_wide(kit: Cluster) -> None:
    kit.wait_healthy()
    as_json = json.loads(kit.run_ok("status", "-o", "json").stdout)
    as_yaml = yaml.safe_load(kit.run_ok("ps", "-o", "yaml").stdout)
    for doc in (as_json, as_yaml):
        assert (doc["schema"], doc["kind"], doc["cluster"]) == (1, "Status", "kit")
        for agent in doc["agents"]:
            assert {"cpu_s", "rss_bytes", "last_heartbeat_s", "note", "should_run"} <= set(agent)
    assert [a["name"] for a in as_json["agents"]] == [a["name"] for a in as_yaml["agents"]]
    wide = kit.run_ok("status", "-o", "wide").stdout.splitlines()
    assert wide[1].split() == ["NAME", "ROLE", "STATE", "PID", "RESTARTS", "AGE", "CPU", "RSS",
                               "HEARTBEAT", "NOTE"]


def test_status_watch_redraws_on_change_and_ctrl_c_ends_it(kit: Cluster) -> None:
    kit.wait_healthy()
    watch = Streamed(kit, "status", "-w", "-o", "json")
    try:
        wait_until(lambda: watch.saw(lambda l: l.startswith("{")), 15, "the first document")
        first = len(watch.seen)
        kit.run_ok("stop", "learner-0")
        wait_until(lambda: watch.saw(lambda l: any(
            a["name"] == "learner-0" and a["state"] == "stopped"
            for a in json.loads(l)["agents"])), 15, "a document showing learner-0 stopped")
        assert len(watch.seen) > first
        assert all(json.loads(l)["kind"] == "Status" for l in watch.seen)
        assert watch.interrupt() == 130
    finally:
        watch.kill()
        kit.run_ok("start", "learner-0")


# ------------------------------------------------------------------ events


def test_events_list_and_watch(kit: Cluster) -> None:
    kit.wait_healthy()
    doc = json.loads(kit.run_ok("events", "-o", "json").stdout)
    assert (doc["schema"], doc["kind"]) == (1, "EventList")
    seqs = [e["seq"] for e in doc["events"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    for name in kit.agent_names:
        kinds = {e["kind"] for e in doc["events"] if e["agent"] == name}
        assert {"started", "running"} <= kinds, (name, kinds)
    table = kit.run_ok("events").stdout.splitlines()
    assert table[0].split() == ["TIME", "TYPE", "AGENT", "KIND", "MESSAGE"]
    assert len(table) == len(doc["events"]) + 1
    watch = Streamed(kit, "events", "-w", "-o", "json")
    try:
        wait_until(lambda: watch.saw(lambda l: True), 15, "the events so far")
        kit.run_ok("restart", "learner-1")
        wait_until(lambda: watch.saw(lambda l: json.loads(l)["agent"] == "learner-1"
                                     and json.loads(l)["kind"] == "running"
                                     and json.loads(l)["seq"] > seqs[-1]),
                   30, "learner-1's new 'running' event streamed")
        assert watch.interrupt() == 130
    finally:
        watch.kill()


# -------------------------------------------------------------------- logs


def test_logs_of_every_agent_merged_with_prefixes(kit: Cluster) -> None:
    kit.wait_healthy()
    lines = kit.run_ok("logs").stdout.splitlines()
    sources = {line.split(" | ", 1)[0].strip() for line in lines}
    assert sources == {*kit.agent_names, "supervisor"}, sources
    stamps = [line.split(" | ", 1)[1][:23] for line in lines]
    stamped = [s for s in stamps if s[:2] == "20"]
    assert stamped == sorted(stamped), "lines are merged by time"
    two = kit.run_ok("logs", "acceptor-0", "learner-0", "--tail", "5").stdout.splitlines()
    assert len(two) == 5 and all(l.split(" | ")[0].strip() in ("acceptor-0", "learner-0")
                                 for l in two)
    # More than there are: all of them (a negative slice start once kept the last few).
    full = kit.run_ok("logs", "acceptor-0").stdout
    assert kit.run_ok("logs", "acceptor-0", "--tail", str(full.count("\n") + 1)).stdout == full
    one = kit.run_ok("logs", "acceptor-0", "-n", "2").stdout.splitlines()
    assert len(one) == 2 and " | " not in one[0]
    # --since: the cluster is minutes old, so the last hour is every line
    # of acceptor-0 (tests/cli/test_logview.py cuts finer, on its own files).
    assert kit.run_ok("logs", "acceptor-0", "--since", "1h").stdout == \
        kit.run_ok("logs", "acceptor-0").stdout
    bad = kit.run("logs", "--since", "soon")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --since:"), describe(bad)


def test_logs_follow_with_dash_f_and_several_agents(kit: Cluster) -> None:
    kit.wait_healthy()
    follow = Streamed(kit, "logs", "-f", "--tail", "0", "supervisor", "learner-0")
    try:
        log_file = kit.state_dir / "logs" / "supervisor.log"

        def following() -> bool:
            size = log_file.stat().st_size
            return any(f.path == str(log_file) and f.position == size
                       for f in psutil.Process(follow.process.pid).open_files())

        wait_until(following, 15, "logs -f to reach the end of the supervisor's log")
        kit.run_ok("restart", "learner-0")
        wait_until(lambda: follow.saw(lambda l: l.startswith("supervisor | ")
                                      and "learner-0: restart asked by the operator" in l),
                   15, "the supervisor's line, prefixed")
        wait_until(lambda: follow.saw(lambda l: l.startswith("learner-0  | ")), 15,
                   "a line of the restarted learner-0, prefixed")
        assert follow.interrupt() == 130
    finally:
        follow.kill()


# --------------------------------------------------------- version, completion


def test_version_names_client_and_supervisor(kit: Cluster, tmp_short: Path) -> None:
    doc = json.loads(kit.run_ok("version", "-o", "json").stdout)
    supervisor = kit.supervisor()
    assert doc["client"]["version"] == __version__
    assert doc["supervisor"] == {"version": __version__, "pid": supervisor.pid, "cluster": "kit"}
    text = kit.run_ok("version").stdout
    assert f"supervisor: paxosctl {__version__} (pid {supervisor.pid}, cluster kit)" in text
    alone = paxosctl("version", cwd=tmp_short)  # no manifest anywhere: the client alone
    assert alone.returncode == 0, describe(alone)
    assert "supervisor: (no cluster running here)" in alone.stdout


def test_completion_of_agent_names_and_output_formats(kit: Cluster) -> None:
    def complete(words: str) -> list[str]:
        env = {**os.environ, "_PAXOSCTL_COMPLETE": "complete_bash", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
        result = subprocess.run([PAXOSCTL], cwd=kit.dir, env=env, capture_output=True,
                                text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    assert complete("paxosctl describe acc") == ["acceptor-0", "acceptor-1", "acceptor-2"]
    assert complete("paxosctl stop lea") == ["learner-0", "learner-1"]
    assert complete("paxosctl status -o ") == ["table", "wide", "json", "yaml"]
    assert complete("paxosctl describe x -o y") == ["yaml"]
    script = kit.run_ok("completion", "bash", with_file=False).stdout
    assert "_PAXOSCTL_COMPLETE=complete_bash" in script
    bad = kit.run("completion", "tcsh", with_file=False)
    assert bad.returncode == 2 and "allowed: bash, zsh, fish" in bad.stderr


# ------------------------------------------------------ manifest discovery


def test_the_manifest_is_found_as_compose_finds_it(kit: Cluster, tmp_short: Path) -> None:
    deep = kit.dir / "a" / "b"
    deep.mkdir(parents=True, exist_ok=True)
    # No -f: ./cluster.toml of a parent folder.
    found = paxosctl("status", "-o", "json", cwd=deep)
    assert found.returncode == 0, describe(found)
    assert json.loads(found.stdout)["cluster"] == "kit"
    # PAXOSCTL_FILE, from a folder with no manifest above it.
    by_env = paxosctl("status", "-o", "json", cwd=tmp_short,
                      env={"PAXOSCTL_FILE": str(kit.manifest)})
    assert by_env.returncode == 0 and json.loads(by_env.stdout)["cluster"] == "kit", \
        describe(by_env)
    missing = paxosctl("status", cwd=tmp_short, env={"PAXOSCTL_FILE": str(tmp_short / "no")})
    assert missing.returncode == 2, describe(missing)
    assert missing.stderr.splitlines()[0] == f"error: PAXOSCTL_FILE={tmp_short / 'no'}: no such file"
    # validate: positional, -f, or found.
    for args in (("validate", str(kit.manifest)), ("validate", "-f", str(kit.manifest))):
        assert paxosctl(*args, cwd=tmp_short).returncode == 0
    assert "valid: cluster kit" in paxosctl("validate", cwd=deep).stdout
    two = paxosctl("validate", str(kit.manifest), "-f", "other.toml", cwd=tmp_short)
    assert two.returncode == 2 and "two manifests given" in two.stderr, describe(two)


def test_an_unknown_command_lists_the_commands(tmp_short: Path) -> None:
    result = paxosctl("bogus", cwd=tmp_short)
    assert result.returncode == 2, describe(result)
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: no command 'bogus'; commands: ")
    assert "did you mean" not in first and "logs" in first
    near = paxosctl("stauts", cwd=tmp_short)
    assert "(did you mean 'status'?)" in near.stderr.splitlines()[0]


# -------------------------------------------------------------- down --purge


def test_down_purge_deletes_only_what_the_cluster_wrote(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster("replicas", name="purged")
    cluster.run_ok("propose", "soon gone")
    ours = cluster.state_dir / "notes.txt"  # the operator's own file in the state dir
    ours.write_text("keep me")
    result = cluster.run("down", "--purge")
    assert result.returncode == 0, describe(result)
    assert "cluster purged stopped" in result.stdout
    assert f"purged cluster purged: deleted" in result.stdout
    assert "warning: kept 1 entries the cluster did not write" in result.stderr
    assert sorted(p.name for p in cluster.state_dir.iterdir()) == ["notes.txt"]
    assert ours.read_text() == "keep me"
    ours.unlink()
    # A purged cluster starts afresh: an empty decided log.
    cluster.up()
    assert json.loads(cluster.run_ok("decided", "-o", "json").stdout) == []
    cluster.run_ok("down", "--purge")
    # The folder was there before this `up` (the first purge kept it for
    # notes.txt), so it is not known to be the cluster's: emptied, kept.
    assert list(cluster.state_dir.iterdir()) == []
    cluster.state_dir.rmdir()
    again = cluster.run("down", "--purge")
    assert again.returncode == 0, describe(again)
    assert "is not running" in again.stdout and "nothing to purge" in again.stdout


def test_decided_and_version_in_yaml(kit: Cluster) -> None:
    kit.run_ok("propose", "yes")  # a value YAML would read as a bool if it were not quoted
    as_json = json.loads(kit.run_ok("decided", "-o", "json").stdout)
    as_yaml = yaml.safe_load(kit.run_ok("decided", "-o", "yaml").stdout)
    assert as_yaml == as_json and as_json[-1]["value"] == "yes"
    doc = yaml.safe_load(kit.run_ok("version", "-o", "yaml").stdout)
    assert (doc["schema"], doc["kind"], doc["client"]["version"]) == (1, "Version", __version__)
