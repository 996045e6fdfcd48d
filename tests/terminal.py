"""A command in a pseudo-terminal, and what its screen shows, for tests.

    with Terminal([PAXOSCTL, "top"], cwd=folder, rows=24, cols=80) as term:
        term.until(lambda s: s.shows("leader"), 10, "the first screen")
        term.send(b"q")
        assert term.wait(5) == 0

`Terminal` runs the command with a pty's slave as its stdin, stdout,
stderr and controlling terminal (so Ctrl-C, byte 3, is a real SIGINT from
the line discipline), its size set with TIOCSWINSZ, TERM as given; it
reads the master with `select` against a deadline, never by sleeping.
`raw` keeps every byte read; `screen` is what a terminal shows.

`Screen`: a small terminal emulator: what a screen shows after a byte stream.

Enough of the VT100/xterm control sequences that ncurses sends (cursor
addressing and moves, erasing, scroll regions, insert and delete of
characters and lines, repeat) to rebuild the text a person would see; it
ignores attributes (colours, reverse video) and modes. `Screen.feed`
takes bytes as they come; `Screen.text()` is the screen, one string per
row, right blanks stripped. Used by the `paxosctl top` tests, which drive
it in a pseudo-terminal: curses sends only what changed, so a test reads
the screen, not the byte stream.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from typing import Callable

_CSI = re.compile(rb"\x1b\[([?>=]?)([0-9;]*)([ -/]*)([@-~])")


class Screen:
    def __init__(self, rows: int = 24, cols: int = 80) -> None:
        self.rows, self.cols = rows, cols
        self.grid = [[" "] * cols for _ in range(rows)]
        self.y = self.x = 0
        self.top, self.bottom = 0, rows - 1
        self.saved = (0, 0)
        self.last = " "
        self.pending = b""
        self.wrap_next = False

    # --------------------------------------------------------------- reading

    def text(self) -> list[str]:
        return ["".join(row).rstrip() for row in self.grid]

    def shows(self, needle: str) -> bool:
        return any(needle in line for line in self.text())

    # --------------------------------------------------------------- feeding

    def feed(self, data: bytes) -> None:
        data = self.pending + data
        self.pending = b""
        i = 0
        while i < len(data):
            b = data[i]
            if b == 0x1b:
                used = self._escape(data, i)
                if used == 0:  # an incomplete sequence: wait for the rest
                    self.pending = data[i:]
                    return
                i += used
                continue
            if b >= 0x80:  # a UTF-8 sequence: decode it whole
                n = 2 if b < 0xe0 else 3 if b < 0xf0 else 4
                if i + n > len(data):
                    self.pending = data[i:]
                    return
                self._put(data[i:i + n].decode("utf-8", "replace"))
                i += n
                continue
            i += 1
            if b == 0x0d:
                self.x, self.wrap_next = 0, False
            elif b == 0x0a:
                self._index()
            elif b == 0x08:
                self.x, self.wrap_next = max(self.x - 1, 0), False
            elif b == 0x09:
                self.x = min((self.x // 8 + 1) * 8, self.cols - 1)
            elif b >= 0x20:
                self._put(chr(b))

    def _put(self, ch: str) -> None:
        if self.wrap_next:
            self.x, self.wrap_next = 0, False
            self._index()
        self.grid[self.y][self.x] = ch
        self.last = ch
        if self.x == self.cols - 1:
            self.wrap_next = True
        else:
            self.x += 1

    def _index(self) -> None:
        if self.y == self.bottom:
            self._scroll_up(1)
        elif self.y < self.rows - 1:
            self.y += 1

    def _scroll_up(self, n: int) -> None:
        for _ in range(n):
            del self.grid[self.top]
            self.grid.insert(self.bottom, [" "] * self.cols)

    def _scroll_down(self, n: int) -> None:
        for _ in range(n):
            del self.grid[self.bottom]
            self.grid.insert(self.top, [" "] * self.cols)

    def _escape(self, data: bytes, i: int) -> int:
        """Act on the escape sequence at data[i]; its length (0: incomplete)."""
        if i + 1 >= len(data):
            return 0
        kind = data[i + 1]
        if kind == ord("["):
            m = _CSI.match(data, i)
            if m is None:
                return 0 if len(data) - i < 32 else 2  # wait, or skip a garbled one
            self._csi(m.group(1), [int(p) if p else None for p in m.group(2).split(b";")],
                      m.group(4))
            return m.end() - i
        if kind in b"()*+":  # character set selection: one more byte
            return 3 if i + 2 < len(data) else 0
        if kind == ord("]"):  # an OSC string, to BEL or ST
            end = data.find(b"\x07", i)
            st = data.find(b"\x1b\\", i)
            ends = [e + 1 for e in (end,) if e >= 0] + [s + 2 for s in (st,) if s >= 0]
            return min(ends) - i if ends else 0
        if kind == ord("7"):
            self.saved = (self.y, self.x)
        elif kind == ord("8"):
            self.y, self.x = self.saved
        elif kind == ord("D"):
            self._index()
        elif kind == ord("E"):
            self.x = 0
            self._index()
        elif kind == ord("M"):
            if self.y == self.top:
                self._scroll_down(1)
            elif self.y > 0:
                self.y -= 1
        return 2

    def _csi(self, private: bytes, params: list[int | None], final: bytes) -> None:
        def p(k: int, default: int = 1) -> int:
            v = params[k] if k < len(params) else None
            return default if v is None or (v == 0 and default == 1) else v

        if private:  # modes (?1049h, ?25l...): nothing to show
            return
        self.wrap_next = False
        f = final.decode()
        if f in "Hf":
            self.y = min(p(0) - 1, self.rows - 1)
            self.x = min(p(1) - 1, self.cols - 1)
        elif f == "A":
            self.y = max(self.y - p(0), 0)
        elif f == "B":
            self.y = min(self.y + p(0), self.rows - 1)
        elif f == "C":
            self.x = min(self.x + p(0), self.cols - 1)
        elif f == "D":
            self.x = max(self.x - p(0), 0)
        elif f == "G":
            self.x = min(p(0) - 1, self.cols - 1)
        elif f == "d":
            self.y = min(p(0) - 1, self.rows - 1)
        elif f == "K":
            mode = p(0, 0)
            row = self.grid[self.y]
            lo, hi = {0: (self.x, self.cols), 1: (0, self.x + 1), 2: (0, self.cols)}[mode]
            row[lo:hi] = [" "] * (hi - lo)
        elif f == "J":
            mode = p(0, 0)
            if mode == 0:
                self.grid[self.y][self.x:] = [" "] * (self.cols - self.x)
                rows = range(self.y + 1, self.rows)
            elif mode == 1:
                self.grid[self.y][:self.x + 1] = [" "] * (self.x + 1)
                rows = range(0, self.y)
            else:
                rows = range(self.rows)
            for r in rows:
                self.grid[r] = [" "] * self.cols
        elif f == "X":
            n = min(p(0), self.cols - self.x)
            self.grid[self.y][self.x:self.x + n] = [" "] * n
        elif f == "@":
            row = self.grid[self.y]
            n = min(p(0), self.cols - self.x)
            row[self.x:self.x] = [" "] * n
            del row[self.cols:]
        elif f == "P":
            row = self.grid[self.y]
            n = min(p(0), self.cols - self.x)
            del row[self.x:self.x + n]
            row += [" "] * n
        elif f in "LM" and self.top <= self.y <= self.bottom:
            for _ in range(p(0)):
                if f == "L":
                    del self.grid[self.bottom]
                    self.grid.insert(self.y, [" "] * self.cols)
                else:
                    del self.grid[self.y]
                    self.grid.insert(self.bottom, [" "] * self.cols)
        elif f == "S":
            self._scroll_up(p(0))
        elif f == "T":
            self._scroll_down(p(0))
        elif f == "b":
            for _ in range(p(0)):
                self._put(self.last)
        elif f == "r":
            self.top = p(0) - 1
            self.bottom = (params[1] if len(params) > 1 and params[1] else self.rows) - 1
            self.y = self.x = 0


class Terminal:
    """A command running in a pseudo-terminal (see the module docstring)."""

    def __init__(self, argv: list[str], *, cwd: str | os.PathLike, rows: int = 24,
                 cols: int = 80, term: str = "vt100", env: dict[str, str] | None = None) -> None:
        self.screen = Screen(rows, cols)
        self.raw = b""
        self.closed = False
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        environment = {**os.environ, **(env or {}), "TERM": term,
                       "LINES": str(rows), "COLUMNS": str(cols)}
        environment.pop("NO_COLOR", None)
        self.master = master
        self.process = subprocess.Popen(
            argv, cwd=cwd, env=environment, stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True,  # its own session, whose controlling terminal is the pty
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)

    def _read(self, timeout: float) -> bool:
        """Read what is there within `timeout`; False once the other end closed."""
        if self.closed:
            return False
        ready, _, _ = select.select([self.master], [], [], max(timeout, 0))
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every holder of the slave closed it
            data = b""
        if not data:
            self.closed = True
            return False
        self.raw += data
        self.screen.feed(data)
        return True

    def until(self, predicate: Callable[[Screen], object], timeout: float, what: str) -> None:
        """Read until `predicate(screen)` holds; AssertionError with the screen at the deadline."""
        deadline = time.monotonic() + timeout
        while not predicate(self.screen):
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.2)) and not predicate(self.screen):
                shown = "\n".join(self.screen.text())
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                                     f"the screen:\n{shown}")

    def send(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def wait(self, timeout: float) -> int:
        """Read to the end of the output and wait for the command; its exit code."""
        deadline = time.monotonic() + timeout
        while self._read(deadline - time.monotonic()) and time.monotonic() < deadline:
            pass
        return self.process.wait(max(deadline - time.monotonic(), 0.1))

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        os.close(self.master)

    def __enter__(self) -> "Terminal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
