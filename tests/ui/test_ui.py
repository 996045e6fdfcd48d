"""`paxosctl ui` in a real headless Chromium, against a real cluster.

Debian's chromium (/usr/bin/chromium), driven over the DevTools protocol
through a pipe (tests/ui/browser.py). Without it these tests skip, except
under CI=true, where they fail (.ci/run installs it).

Set PAXOSCTL_UI_SCREENSHOT=docs/ui.png to also save the page's
screenshot there (the README's picture):

    PAXOSCTL_UI_SCREENSHOT=docs/ui.png .venv/bin/python -m pytest -q tests/ui -k follows
"""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import clusters
from browser import Browser, chromium
from clusters import wait_until

if chromium() is None:
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is not installed (CI=true: a skip is a failure; .ci/run "
                    "installs Debian's chromium)", pytrace=False)
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def cluster(module_clusters):
    """One cluster of 7 agents (2 proposers, 3 acceptors, 2 learners) for the module."""
    return module_clusters("roles")


class Ui:
    """A running `paxosctl ui` process and the URL its first line printed."""

    def __init__(self, cluster, *flags: str) -> None:
        self.process = subprocess.Popen(
            [clusters.PAXOSCTL, "ui", "--port", "0", "--file", str(cluster.manifest), *flags],
            cwd=cluster.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self.process.stdout], [], [], 20)
        assert ready, "paxosctl ui printed no URL within 20 s"
        self.url = self.process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=[A-Za-z0-9_-]{32}", self.url), self.url
        parts = urlsplit(self.url)
        self.port = parts.port
        self.token = parts.query.removeprefix("token=")

    def request(self, method: str, path: str, *, host: str | None = None,
                headers: dict[str, str] | None = None, body: object = None):
        """(status, body text) of one request to the server."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        data = json.dumps(body).encode() if body is not None else None
        all_headers = {"Host": host or f"127.0.0.1:{self.port}", **(headers or {})}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=all_headers)
        response = conn.getresponse()
        text = response.read().decode()
        conn.close()
        return response.status, text

    def state(self) -> dict:
        status, text = self.request("GET", f"/state?token={self.token}")
        assert status == 200, text
        return json.loads(text)

    def stop(self) -> None:
        """Ctrl-C: it ends with 130, as every command Ctrl-C ends."""
        self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout=15)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        stderr = self.process.stderr.read()
        assert code == 130, stderr
        assert "Traceback" not in stderr, stderr


@pytest.fixture
def ui(cluster):
    server = Ui(cluster)
    try:
        yield server
    finally:
        server.stop()


def test_page_follows_the_cluster(cluster, ui, tmp_path):
    """7 agents, a decided slot after `propose`, messages drawn, a leader
    change after `kill` of the leader; no actions shown; no error on the page."""
    cluster.wait_healthy()
    with Browser.start(tmp_path) as browser:
        page = browser.open(ui.url)
        page.wait("document.querySelectorAll('#agents .agent').length === 7", 20, "7 agents")
        leader = page.wait("document.body.dataset.leader", 20, "a leader")
        assert leader == cluster.status()["leader"]
        assert page.evaluate(f"document.querySelector('.agent[data-name=\"{leader}\"]')"
                             ".dataset.leader") == "yes"
        assert page.evaluate("document.getElementById('actions').hidden") is True
        before = int(page.evaluate("document.body.dataset.messages || '0'"))

        out = cluster.run_ok("propose", "seen-in-the-browser").stdout
        position = re.search(r"decided at (\d+\.\d+)", out).group(1)
        text = page.wait(f"document.querySelector('#log li[data-position=\"{position}\"]')"
                         "?.textContent", 10, f"slot {position} decided")
        assert "seen-in-the-browser" in text
        # The Accepts and Accepteds of that slot came as protocol records.
        page.wait(f"Number(document.body.dataset.messages || 0) > {before}", 10,
                  "the slot's messages")

        # The killed leader restarts at once (backoff 100 ms) and may win the
        # election again: a leader after the kill is another proposer, or the
        # same one in its next incarnation.
        agent = f"document.querySelector('.agent[data-name=\"{leader}\"]')"
        incarnation = page.evaluate(f"{agent}.dataset.incarnation")
        cluster.run_ok("kill", leader)
        new = page.wait(
            "(() => { const l = document.body.dataset.leader; if (!l) return null;"
            f" if (l !== {json.dumps(leader)}) return l;"
            f" const i = {agent}.dataset.incarnation;"
            f" return i && i !== {json.dumps(incarnation)} ? l : null; }})()",
            30, f"a leader elected after {leader} was killed")
        assert new in cluster.proposers
        if new != leader:
            page.wait("[...document.querySelectorAll('#notes li')].some(li => "
                      f"/leader: .* -> {new}$/.test(li.textContent))", 10,
                      "the leader change in the events")

        # Under load, far above 40 messages a second: counts per link, not dots.
        load = subprocess.Popen([clusters.PAXOSCTL, "bench", "--file", str(cluster.manifest),
                                 "--duration", "5s", "--warmup", "0", "--concurrency", "16"],
                                cwd=cluster.dir, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            page.wait("document.body.dataset.mode === 'aggregate' && "
                      "document.querySelectorAll('#links line').length > 0", 20,
                      "counts per link under load")
        finally:
            load.terminate()
            load.wait(timeout=30)

        shot = page.screenshot(tmp_path / "ui.png")
        assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000
        if os.environ.get("PAXOSCTL_UI_SCREENSHOT"):
            page.screenshot(Path(os.environ["PAXOSCTL_UI_SCREENSHOT"]))
        assert page.errors == []


def test_refuses_without_token_foreign_host_or_origin(cluster, ui):
    """The token, the Host header and an action's Origin are checked; actions
    are off without --allow-actions."""
    own = f"http://127.0.0.1:{ui.port}"
    assert ui.request("GET", f"/?token={ui.token}")[0] == 200
    assert ui.request("GET", f"/?token={ui.token}", host=f"localhost:{ui.port}")[0] == 200
    assert ui.request("GET", "/")[0] == 403
    assert ui.request("GET", "/events")[0] == 403
    assert ui.request("GET", "/app.js")[0] == 403
    assert ui.request("GET", f"/state?token={ui.token[:-1]}x")[0] == 403
    # DNS rebinding: another site's name resolving to 127.0.0.1.
    status, text = ui.request("GET", f"/?token={ui.token}", host=f"evil.example:{ui.port}")
    assert status == 421, text
    kill = {"action": "kill", "agent": cluster.acceptors[0]}
    status, text = ui.request("POST", f"/action?token={ui.token}",
                              headers={"Origin": "http://evil.example"}, body=kill)
    assert (status, "Origin") == (403, text.split()[0]), text
    assert ui.request("POST", f"/action?token={ui.token}", body=kill)[0] == 403  # no Origin
    status, text = ui.request("POST", f"/action?token={ui.token}",
                              headers={"Origin": own}, body=kill)
    assert status == 403 and "--allow-actions" in text, text
    assert wait_until(ui.state, 10, "the first state")["actions"] is False
    assert cluster.agent(cluster.acceptors[0])["restarts"] == 0


def test_actions_when_allowed(cluster, tmp_path):
    """With --allow-actions: slow down and heal reach the supervisor (what
    `paxosctl chaos` shows), a bad action is refused with what is allowed,
    a foreign Origin is still refused, and the page's kill button kills."""
    ui = Ui(cluster, "--allow-actions")
    try:
        own = {"Origin": f"http://127.0.0.1:{ui.port}"}
        wait_until(lambda: ui.state().get("actions"), 10, "actions on in the state")
        status, text = ui.request("POST", f"/action?token={ui.token}",
                                  headers={"Origin": "http://evil.example"},
                                  body={"action": "heal"})
        assert status == 403, text
        status, text = ui.request("POST", f"/action?token={ui.token}", headers=own,
                                  body={"action": "slow", "seconds": 0.05})
        assert status == 200, text
        assert json.loads(cluster.run_ok("chaos", "-o", "json").stdout) == {"delay_s": 0.05}
        status, text = ui.request("POST", f"/action?token={ui.token}", headers=own,
                                  body={"action": "cut", "agent": "nobody"})
        assert status == 400 and "agents:" in json.loads(text)["error"], text
        status, text = ui.request("POST", f"/action?token={ui.token}", headers=own,
                                  body={"action": "heal"})
        assert status == 200, text
        assert json.loads(cluster.run_ok("chaos", "-o", "json").stdout) == {}

        # The page's own button: Chromium's Origin is the page's, and it passes.
        victim = cluster.acceptors[1]
        pid = cluster.agent(victim)["pid"]
        with Browser.start(tmp_path) as browser:
            page = browser.open(ui.url)
            page.wait(f"!document.getElementById('actions').hidden && "
                      f"[...document.getElementById('target').options].some(o => o.value === "
                      f"{json.dumps(victim)})", 20, "the actions")
            page.evaluate(f"document.getElementById('target').value = {json.dumps(victim)}; "
                          "document.getElementById('kill').click(); true")
            page.wait("document.getElementById('said').textContent === 'kill: done'", 10,
                      "the kill done")
            wait_until(lambda: cluster.agent(victim)["pid"] not in (None, pid), 30,
                       f"{victim} killed and restarted")
            assert page.errors == []
    finally:
        cluster.run("chaos", "--heal")
        ui.stop()


def test_port_in_use_is_one_line_error(cluster, ui):
    """A second `paxosctl ui` on a port taken: one line naming it, exit 1, no traceback."""
    result = cluster.run("ui", "--port", str(ui.port), timeout=30)
    assert result.returncode == 1, clusters.describe(result)
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: cannot listen on 127.0.0.1:{ui.port}: "), result.stderr
    assert "Traceback" not in result.stderr


def test_works_without_a_supervisor_here(make_cluster, tmp_path):
    """From a host where no supervisor runs the cluster (a copy of the
    manifest in another state dir, the agents placed over TLS): the page
    shows the agents, the leader and a decided slot, read from the agents
    themselves; actions are off (they need a supervisor)."""
    cluster = make_cluster("roles", name="away", transport="tls", start=False)
    socks = [socket.socket() for _ in cluster.agent_names]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    cluster.manifest.write_text(cluster.manifest.read_text() + "\n[transport.addresses]\n" + "".join(
        f'{name} = "127.0.0.1:{port}"\n' for name, port in zip(cluster.agent_names, ports)))
    cluster.up()
    cluster.wait_healthy()
    away = tmp_path / "away"
    away.mkdir()
    (away / "cluster.toml").write_text(cluster.manifest.read_text().replace(
        "[transport]\n", f'[transport]\ncerts = "{cluster.dir / "certs"}"\n', 1))
    elsewhere = clusters.Cluster(dir=away, topology="roles", name="away",
                                 manifest=away / "cluster.toml", state_dir=away / ".paxosctl",
                                 groups=cluster.groups)
    ui = Ui(elsewhere, "--allow-actions")
    try:
        state = wait_until(lambda: (s := ui.state()) and s["leader"] and s, 20, "a leader")
        assert state["supervised"] is False and state["actions"] is False
        assert len(state["agents"]) == 7 and all(a["answered"] for a in state["agents"])
        assert state["leader"] == cluster.status()["leader"]
        out = elsewhere.run_ok("propose", "from-afar").stdout
        position = re.search(r"decided at (\d+\.\d+)", out).group(1)
        with Browser.start(tmp_path) as browser:
            page = browser.open(ui.url)
            page.wait("document.querySelectorAll('#agents .agent.running').length === 7", 20,
                      "7 agents running")
            text = page.wait(f"document.querySelector('#log li[data-position=\"{position}\"]')"
                             "?.textContent", 10, f"slot {position} decided")
            assert "from-afar" in text
            assert page.evaluate("document.getElementById('actions').hidden") is True
            assert page.errors == []
    finally:
        ui.stop()
