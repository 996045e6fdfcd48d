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


class CuttingLearner:
    """A learner endpoint on a real Unix socket in the cluster's run folder
    that greets a client, then answers its first page with a CUT frame (as
    a learner does to a client past its output bound) and closes."""

    def __init__(self, run_dir, name: str) -> None:
        import socket

        self.path = run_dir / f"{name}.sock"
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(self.path))
        self.server.listen(1)
        self.cut = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        from paxos_agents.runtime import clientwire as wire
        from paxos_agents.runtime import frames

        conn, _ = self.server.accept()
        reader = frames.FrameReader()
        with conn:
            conn.sendall(frames.pack([frames.WELCOME + json.dumps(
                {"roles": ["learner"], "applied": 0, "log_start": 0}).encode()]))
            while True:
                data = conn.recv(1 << 16)
                if not data:
                    return
                for frame in reader.feed(data):
                    if frame[:1] == wire.SUBSCRIBE:
                        conn.sendall(frames.pack([wire.encode_subscribed(0)]))
                    elif frame[:1] == wire.PAGE:
                        conn.sendall(frames.pack([wire.CUT + json.dumps(
                            {"reason": "fell behind reading", "applied": 0}).encode()]))
                        self.cut.set()
                        return  # and close, as a learner does after CUT

    def close(self) -> None:
        self.server.close()
        self.path.unlink(missing_ok=True)


def test_a_reader_cut_off_by_its_learner_goes_on_at_another(api_cluster: Cluster,
                                                             monkeypatch) -> None:
    """CUT is taken as EOF: the reader says why (`on_cut`) and reads the
    same pages from the next learner, nothing twice, nothing missed."""
    import dataclasses

    import paxosctl.client.dataloop as dataloop
    from paxosctl.client.datapath import DataClient
    from paxosctl.client.decidedlog import read_log

    with api_cluster.client() as client:
        mine = [client.propose(f"before the cut {n}") for n in range(3)]
        endpoints = client.data().endpoints
    real = api_cluster.learners[0]
    fake = CuttingLearner(endpoints.run_dir, "cutter")
    monkeypatch.setattr(dataloop.random, "shuffle", lambda items: None)  # the cutter first
    cuts: list[tuple[str, str]] = []
    data = DataClient(dataclasses.replace(endpoints, learners=("cutter", real)),
                      on_cut=lambda learner, reason: cuts.append((learner, reason)))
    try:
        entries = list(read_log(data, mine[0].slot))
        assert fake.cut.is_set()
        assert cuts == [("cutter", "fell behind reading")]
        assert data.following == real
    finally:
        data.close()
        fake.close()
    positions = [(e.slot, e.index) for e in entries]
    assert positions == sorted(set(positions))
    assert {d.request_id for d in mine} <= {e.request_id for e in entries}
