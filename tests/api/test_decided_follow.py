"""`paxosctl decided --follow`: streams new decisions as they are applied.

Real processes: the CLI in a subprocess, reading a live cluster, and a
client proposing while it follows. Every wait has a deadline.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time

from clusters import PAXOSCTL, Cluster, describe, wait_until


class Follower:
    """`paxosctl decided --follow ARGS` running, its stdout lines in a queue."""

    def __init__(self, cluster: Cluster, *args: str) -> None:
        self.process = subprocess.Popen(
            [PAXOSCTL, "decided", "--follow", *args, "-f", str(cluster.manifest)],
            cwd=cluster.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)  # end of output

    def next_line(self, timeout: float = 20) -> str | None:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line from decided --follow within {timeout}s") from None

    def until(self, text: str, timeout: float = 20) -> list[str]:
        """The lines up to and including the first that contains `text`."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            line = self.next_line(max(0.1, deadline - time.monotonic()))
            assert line is not None, f"output ended before {text!r}: {seen}"
            seen.append(line)
            if text in line:
                return seen

    def finish(self, timeout: float = 20) -> tuple[int, str]:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError("decided --follow did not end") from None
        assert self.process.stderr is not None
        return code, self.process.stderr.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def test_follow_prints_json_lines_for_values_proposed_after_it_started(api_cluster: Cluster) -> None:
    with api_cluster.client() as client:
        first = client.propose("follow json 0")
        follower = Follower(api_cluster, "--from", str(first.slot), "-o", "json")
        try:
            follower.until(first.request_id)  # it read the log up to now
            later = [client.propose(v) for v in ("follow json 1", b"\xff\x00 not utf-8")]
            lines = follower.until(later[-1].request_id)
        finally:
            follower.stop()
    objects = [json.loads(line) for line in lines]  # every line is one JSON object
    for o in objects:
        assert set(o) == {"slot", "index", "position", "request_id", "value", "noop"}, o
        assert o["position"] == f"{o['slot']}.{o['index']}"
    mine = {o["request_id"]: o for o in objects}
    assert mine[later[0].request_id]["value"] == "follow json 1"
    assert mine[later[0].request_id]["position"] == later[0].position
    assert mine[later[1].request_id]["value"] == {"base64": "/wAgbm90IHV0Zi04"}


def test_follow_text_is_escaped_and_a_limit_ends_it(api_cluster: Cluster) -> None:
    with api_cluster.client() as client:
        start = client.propose("before the limit").slot + 1
        follower = Follower(api_cluster, "--from", str(start), "--limit", "2")
        try:
            proposed = []
            # Propose until it ends: slots after `start` may be no-ops.
            deadline = time.monotonic() + 30
            while follower.process.poll() is None:
                assert time.monotonic() < deadline, "decided --follow --limit 2 did not end"
                proposed.append(client.propose(f"tab\there\nnewline {len(proposed)}"))
                try:
                    follower.process.wait(0.2)
                except subprocess.TimeoutExpired:
                    pass
            code, stderr = follower.finish()
        finally:
            follower.stop()
    lines = []
    while (line := follower.next_line()) is not None:
        lines.append(line)
    assert (code, stderr) == (0, ""), stderr
    assert len(lines) == 2, lines
    # Each line: a no-op slot, or one of ours, tab-separated and escaped.
    ours = {f"{d.position}\t{d.request_id}\ttab\\there\\nnewline {i}"
            for i, d in enumerate(proposed)}
    assert all(line in ours or line.endswith("\t-\t(no-op)") for line in lines), lines
    assert any(line in ours for line in lines), lines


def test_ctrl_c_ends_follow_with_130_and_no_traceback(api_cluster: Cluster) -> None:
    with api_cluster.client() as client:
        first = client.propose("before ctrl-c")
    follower = Follower(api_cluster, "--from", str(first.slot))
    try:
        follower.until(first.request_id)  # following, waiting for more
        follower.process.send_signal(signal.SIGINT)
        code, stderr = follower.finish()
    finally:
        follower.stop()
    assert code == 130 and "Traceback" not in stderr, stderr


def test_a_closed_pipe_during_follow_exits_0(api_cluster: Cluster) -> None:
    """`decided --follow | head -1`: head leaves after one line; the next
    decision's write finds the pipe closed and paxosctl exits 0, quietly."""
    with api_cluster.client() as client:
        start = client.propose("before the pipe").slot
        script = (f'"{PAXOSCTL}" decided --follow --from {start} -f "{api_cluster.manifest}"'
                  ' | head -1; exit ${PIPESTATUS[0]}')
        shell = subprocess.Popen(["bash", "-c", script], cwd=api_cluster.dir,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # Decisions go on until paxosctl has one to write after head left.
            def ended() -> bool:
                client.propose("into a closed pipe")
                return shell.poll() is not None
            wait_until(ended, 30, "decided --follow to end once head left")
            out, err = shell.communicate(timeout=10)
        finally:
            if shell.poll() is None:
                shell.kill()
    assert shell.returncode == 0 and err == "", (shell.returncode, err)
    assert len(out.splitlines()) == 1


def test_follow_refuses_bad_input(api_cluster: Cluster) -> None:
    result = api_cluster.run("decided", "--follow", "-o", "xml")
    assert result.returncode == 2 and result.stdout == "", describe(result)
    assert result.stderr.startswith(
        "error: -o/--output: unknown format 'xml'; allowed: text, json, yaml")
    result = api_cluster.run("decided", "--follow", "--limit", "0")
    assert result.returncode == 2 and "Traceback" not in result.stderr, describe(result)
