"""A real Prometheus server (Debian's `prometheus`) for the metrics tests.

    server = Prometheus.start(config_text, folder)   # on a free loopback port
    server.query("paxos_has_leader")                 # one series' value, or None
    server.api("rules")                              # any /api/v1 answer's data
    server.stop()

The config is written to `folder/prometheus.yml`, so its `rule_files`
are found beside it. .ci/run installs the package; where it is missing
the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from clusters import wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require(tool: str) -> str:
    """The path of `tool` (prometheus, promtool), or skip the test saying why."""
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (Debian's prometheus package; .ci/run installs it)")
    return path


class Prometheus:
    """One prometheus process, its web API on 127.0.0.1:`port`."""

    def __init__(self, config: str, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        path = folder / "prometheus.yml"
        path.write_text(config)
        self.log = open(folder / "prometheus.log", "wb")
        self.process = subprocess.Popen(
            [require("prometheus"), f"--config.file={path}",
             f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_until(self._ready, 60, "prometheus to be ready", interval=0.25)
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError("prometheus exited: "
                                 + (self.folder / "prometheus.log").read_text()[-2000:])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        """`data` of a successful /api/v1/`path` answer (asserts success, else
        shows the error Prometheus gave)."""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as e:  # 400/422: a bad query, with its error
            body = json.load(e)
        assert body.get("status") == "success", (path, params, body)
        return body["data"]

    def query(self, promql: str) -> float | None:
        """The value of an instant query that returns one series (None if empty)."""
        result = self.api("query", query=promql)["result"]
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(15)
        self.log.close()
