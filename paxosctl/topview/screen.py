"""The `paxosctl top` screen: curses, keys, and how it ends.

curses (the standard library's) draws it: no new dependency, it works over
ssh in any terminal terminfo knows (xterm, vt100, screen, tmux), and
`endwin()` gives the terminal back as it was (the alternate screen left,
the cursor shown again). No colours and no mouse are used: the selected
row is shown in reverse video (A_REVERSE, which vt100 has), falling back
to a `>` mark in the first column when the terminal has no attributes.

Layout, top to bottom: a title line; the agents' table (model.table_lines),
scrolled to keep the selected row in view; the last protocol records of
the selected agent or of all (tail.py), when three rows or more are left; the footer with the keys and
the sort. A terminal too small for all of it shows what fits, the title
and footer first, the table cut at the width (never wrapped).

Keys (the footer lists them):

    s           next sort: name, rate (commands/s, then slots/s), lag
    up/down, k/j  select an agent
    Enter       the selected agent's describe page (`paxosctl describe`)
    l           its last log lines (`paxosctl logs`)
    a           records of the selected agent / of all agents
    Esc, b      back to the table from a page; up/down scroll it
    q           quit (exit 0); Ctrl-C too

How it ends (`run` returns an `Outcome`; the CLI prints its line after the
terminal is restored):

- `q` or Ctrl-C: exit 0, nothing printed;
- the cluster went away: `GONE_AFTER` passes in a row reached nobody (the
  supervisor did not answer, or no agent did): exit `EXIT_GONE` (3, as
  `status` exits when agents do not run) with one line saying why.
"""

from __future__ import annotations

import curses
import enum
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

from .model import Row, Snapshot, SortKey, rows, sort_rows, table_lines
from .source import Source, Unreachable

#: Passes in a row that reach nobody before top says the cluster went away.
GONE_AFTER = 3

#: The exit code when the cluster went away.
EXIT_GONE = 3

#: Milliseconds a key is waited for between two checks of the clock: the
#: screen answers a key within this, whatever the interval.
KEY_WAIT_MS = 100

#: Log lines the `l` page shows (the last ones).
LOG_LINES = 200

ESCAPE = 27


@dataclass(frozen=True, slots=True)
class Outcome:
    """How top ended: the exit code, and the line to print (None: nothing)."""

    code: int
    line: str | None = None


class Page(enum.Enum):
    TABLE = "table"
    DESCRIBE = "describe"
    LOGS = "logs"


class Screen:
    """The state of the screen between two keys; `step` is one turn of the loop."""

    def __init__(self, source: Source, interval: float, first: Snapshot) -> None:
        self.source = source
        self.interval = interval
        self.before: Snapshot | None = None
        self.now = first
        self.table: list[Row] = rows(None, first)
        self.sort = SortKey.NAME
        self.selected: str | None = self.table and sort_rows(self.table, self.sort)[0].name or None
        self.page = Page.TABLE
        self.page_lines: list[str] = []
        self.page_title = ""
        self.scroll: int | None = 0  # the first line of a page shown; None: its end
        self.all_records = False
        self.misses = 0
        self.why = ""
        self.next_pass = time.monotonic() + interval

    # ----------------------------------------------------------- the data

    def poll(self, clock: float) -> Outcome | None:
        """Take a pass when one is due; an Outcome when the cluster went away."""
        if clock < self.next_pass:
            return None
        self.next_pass = max(self.next_pass + self.interval, clock)
        try:
            snapshot = self.source.snapshot()
        except Unreachable as e:
            self.misses += 1
            self.why = str(e)
            if self.misses >= GONE_AFTER:
                return Outcome(EXIT_GONE, f"paxosctl top: the cluster went away: {self.why}")
            return None
        self.misses = 0
        self.why = ""
        self.before, self.now = self.now, snapshot
        self.table = rows(self.before, self.now)
        return None

    def ordered(self) -> list[Row]:
        return sort_rows(self.table, self.sort)

    # ----------------------------------------------------------- the keys

    def key(self, key: int) -> Outcome | None:
        """Act on one key; an Outcome when it ends top."""
        if key == ord("q"):
            return Outcome(0)
        if self.page is not Page.TABLE:
            if key in (ESCAPE, ord("b"), curses.KEY_LEFT, curses.KEY_BACKSPACE):
                self.page = Page.TABLE
            else:
                step = {curses.KEY_DOWN: 1, ord("j"): 1, curses.KEY_UP: -1, ord("k"): -1,
                        curses.KEY_NPAGE: 10, curses.KEY_PPAGE: -10}.get(key, 0)
                # Drawing holds it to the last page (`lines`), which knows the height.
                self.scroll = max((self.scroll or 0) + step, 0)
            return None
        order = [r.name for r in self.ordered()]
        if key == ord("s"):
            self.sort = self.sort.next()
        elif key in (curses.KEY_DOWN, ord("j"), curses.KEY_UP, ord("k")) and order:
            at = order.index(self.selected) if self.selected in order else 0
            step = 1 if key in (curses.KEY_DOWN, ord("j")) else -1
            self.selected = order[max(0, min(len(order) - 1, at + step))]
        elif key in (curses.KEY_ENTER, 10, 13) and (name := self.selected):
            self.open(Page.DESCRIBE, f"describe {name}", partial(self.source.describe, name))
        elif key == ord("l") and (name := self.selected):
            self.open(Page.LOGS, f"logs {name} (the last {LOG_LINES})",
                      partial(self.source.logs, name, LOG_LINES))
        elif key == ord("a"):
            self.all_records = not self.all_records
        return None

    def open(self, page: Page, title: str, lines: Callable[[], list[str]]) -> None:
        """Show a page of `lines()` (or why there are none)."""
        try:
            self.page_lines = lines() or ["(nothing)"]
        except Unreachable as e:
            self.page_lines = [str(e)]
        self.page, self.page_title = page, title
        self.scroll = None if page is Page.LOGS else 0

    # ----------------------------------------------------------- drawing

    def lines(self, height: int) -> list[tuple[str, bool]]:
        """The screen as (text, highlighted) lines, at most `height` of them,
        the footer last (the title first when there is room for two)."""
        if height <= 0:
            return []
        now = self.now
        title = (f"paxosctl top - {now.cluster} - leader {now.leader or '(none)'} - "
                 f"via {now.source} - {time.strftime('%H:%M:%S')}")
        if self.misses:
            title = f"no answer ({self.misses}/{GONE_AFTER}): {self.why}"
        footer = self.footer()
        if height == 1:
            return [(footer, False)]
        body_height = height - 2
        if self.page is not Page.TABLE:
            room = max(body_height - 1, 1)
            last_page = max(len(self.page_lines) - room, 0)
            # None: the end (logs open on their newest lines); never past the last page.
            self.scroll = last_page if self.scroll is None else min(self.scroll, last_page)
            page = [(self.page_title, False)] + [
                (line, False) for line in self.page_lines[self.scroll:]]
            return [(title, False)] + _fit(page, body_height) + [(footer, False)]
        ordered = self.ordered()
        text = table_lines(ordered)
        header, table = text[0], list(zip(text[1:], (r.name == self.selected for r in ordered)))
        body: list[tuple[str, bool]] = [(header, False)]
        table_room = body_height - 1
        records_room = 0
        if table_room - len(table) >= 3:
            records_room = table_room - len(table)
            table_room = len(table)
        if len(table) > table_room > 0:  # scroll the table to keep the selection in view
            at = next((i for i, (_, chosen) in enumerate(table) if chosen), 0)
            first = min(max(0, at - table_room + 1), len(table) - table_room)
            table = table[first:first + table_room]
        body += table[:max(table_room, 0)]
        if records_room:
            who = None if self.all_records or not self.selected else self.selected
            body.append((f"last protocol records of {who or 'all agents'} "
                         f"(a: {'one' if who is None else 'all'})", False))
            try:
                shown = self.source.records(who, records_room - 1)
            except Unreachable as e:
                shown = [str(e)]
            body += [(line, False) for line in shown[-(records_room - 1):]]
        return [(title, False)] + _fit(body, body_height) + [(footer, False)]

    def footer(self) -> str:
        if self.page is not Page.TABLE:
            return "up/down scroll  Esc/b back  q quit"
        return f"sort: {self.sort.value} (s)  up/down select  Enter describe  l logs  a records  q quit"


def _fit(lines: list[tuple[str, bool]], height: int) -> list[tuple[str, bool]]:
    """`lines` cut or padded to `height` (at least zero) lines: the footer
    stays on the last line of the terminal."""
    height = max(height, 0)
    return lines[:height] + [("", False)] * (height - len(lines))


def draw(window: Any, screen: Screen) -> None:
    """Paint the screen in the window's current size; never past its edges
    (curses refuses a write to the bottom-right cell: the last column is left)."""
    height, width = window.getmaxyx()
    window.erase()
    marks = not curses.termattrs() & curses.A_REVERSE
    for y, (text, chosen) in enumerate(screen.lines(height)):
        if marks and chosen:
            text = ">" + text[1:]
        try:
            window.addnstr(y, 0, text, max(width - 1, 0),
                           curses.A_REVERSE if chosen and not marks else curses.A_NORMAL)
        except curses.error:
            pass  # a terminal resized under us: the next draw fits it
    window.refresh()


def run(source: Source, interval: float, first: Snapshot) -> Outcome:
    """Show top until `q`, Ctrl-C or the cluster going away; the terminal is
    restored (curses.wrapper's endwin) before this returns or raises."""
    def loop(window: Any) -> Outcome:
        try:
            curses.curs_set(0)
        except curses.error:
            pass  # a terminal that cannot hide its cursor shows it
        window.timeout(KEY_WAIT_MS)
        curses.set_escdelay(25)  # Esc means back at once, not after a second
        window.keypad(True)
        screen = Screen(source, interval, first)
        while True:
            outcome = screen.poll(time.monotonic())
            if outcome is not None:
                return outcome
            draw(window, screen)
            key = window.getch()
            if key == -1 or key == curses.KEY_RESIZE:
                continue
            outcome = screen.key(key)
            if outcome is not None:
                return outcome

    try:
        return curses.wrapper(loop)
    except KeyboardInterrupt:
        return Outcome(0)
    finally:
        source.close()
