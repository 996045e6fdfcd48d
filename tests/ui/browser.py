"""A headless Chromium driven over the DevTools protocol, through a pipe.

Debian's `chromium`, started with `--remote-debugging-pipe`: the browser
reads JSON commands, each ended by a NUL byte, on its fd 3 and writes
replies and events the same way on its fd 4. No websocket, no library:
`os.posix_spawn` puts our pipe ends on those two descriptors.

    with Browser.start(tmp) as browser:
        page = browser.open("http://127.0.0.1:8765/?token=...")
        page.wait("document.querySelectorAll('.agent').length === 7", 10, "7 agents")
        page.screenshot(tmp / "page.png")
        assert not page.errors

`page.errors` collects what the page reported as errors: uncaught
exceptions (Runtime.exceptionThrown), console.error calls
(Runtime.consoleAPICalled) and the browser's error entries (Log.entryAdded:
a failed load, a CSP violation).
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"

FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--remote-debugging-pipe", "--window-size=1280,800")


def chromium() -> str | None:
    """The browser's path, or None if it is not installed."""
    return CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")


class Browser:
    """One Chromium process and its pipe (see the module docstring)."""

    def __init__(self, pid: int, to_browser: int, from_browser: int) -> None:
        self.pid = pid
        self._out = to_browser
        self._in = from_browser
        self._next = 0
        self._lock = threading.Lock()
        self._replies: dict[int, queue.Queue[dict[str, Any]]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}  # sessionId -> events
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    def start(cls, folder: Path) -> "Browser":
        """Start the browser with its profile and log in `folder`."""
        path = chromium()
        assert path, "chromium is not installed"
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        log = folder / "chromium.log"
        args = [path, *FLAGS, f"--user-data-dir={folder / 'profile'}", "about:blank"]
        pid = os.posix_spawn(path, args, os.environ, setsid=True, file_actions=[
            (os.POSIX_SPAWN_DUP2, to_r, 3), (os.POSIX_SPAWN_DUP2, from_w, 4),
            (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
            (os.POSIX_SPAWN_OPEN, 2, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)])
        os.close(to_r)
        os.close(from_w)
        return cls(pid, to_w, from_r)

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._in, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                for q in list(self._replies.values()):
                    q.put({"error": {"message": "the browser closed the pipe"}})
                return
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if "id" in message:
                    q = self._replies.get(message["id"])
                    if q is not None:
                        q.put(message)
                else:
                    with self._lock:
                        self.events.setdefault(message.get("sessionId", ""), []).append(message)

    def send(self, method: str, params: dict[str, Any] | None = None, *,
             session: str | None = None, timeout: float = 30) -> dict[str, Any]:
        """One command; its result. AssertionError on an error reply or no reply in time."""
        with self._lock:
            self._next += 1
            number = self._next
            q: queue.Queue[dict[str, Any]] = queue.Queue()
            self._replies[number] = q
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        try:
            reply = q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{method}: no reply from the browser within {timeout}s") from None
        finally:
            self._replies.pop(number, None)
        assert "error" not in reply, f"{method}: {reply['error']}"
        return reply["result"]

    def open(self, url: str) -> "Page":
        """A new tab, watched for errors from its first moment, at `url`."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        for domain in ("Runtime", "Log", "Page"):
            page.send(f"{domain}.enable")
        page.send("Emulation.setDeviceMetricsOverride",
                  {"width": 1280, "height": 760, "deviceScaleFactor": 1, "mobile": False})
        page.send("Page.navigate", {"url": url})
        return page

    def close(self) -> None:
        """Ask the browser to end; SIGKILL its process group if it does not."""
        try:
            self.send("Browser.close", timeout=5)
        except (AssertionError, OSError):
            pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            done, _ = os.waitpid(self.pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.killpg(self.pid, signal.SIGKILL)  # the group setsid made: our browser only
            os.waitpid(self.pid, 0)
        for fd in (self._out, self._in):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Page:
    """One tab, attached in flat mode (its commands carry its sessionId)."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    def send(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        return self.browser.send(method, params, session=self.session, **kw)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-able)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        assert "exceptionDetails" not in result, f"{expression}: {result['exceptionDetails']}"
        return result["result"].get("value")

    def wait(self, expression: str, timeout: float, what: str) -> Any:
        """Poll `expression` until it is truthy; its value. AssertionError
        naming `what` (and the last value) at the deadline."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while True:
            try:
                value = self.evaluate(expression)
            except AssertionError as e:  # the page is between documents: not yet
                value, failed = None, str(e)
            else:
                failed = ""
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"the page never showed {what} within {timeout}s "
                                     f"(last: {value!r}{'; ' + failed if failed else ''})")
            time.sleep(0.05)

    @property
    def errors(self) -> list[str]:
        """What the page reported as errors so far (see the module docstring)."""
        out = []
        with self.browser._lock:
            events = list(self.browser.events.get(self.session, []))
        for e in events:
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                out.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
            elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console.error: " + " ".join(str(a.get("value", a.get("description")))
                                                        for a in p.get("args", [])))
            elif e["method"] == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(f"log: {p['entry'].get('text')} ({p['entry'].get('url', '')})")
        return out

    def screenshot(self, path: Path) -> Path:
        """A PNG of the page as it is, written to `path`."""
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))
        return path
