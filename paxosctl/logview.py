"""Reading the cluster's log files for `paxosctl logs`: one or many, merged, followed.

Each agent and the supervisor write `state_dir/logs/<name>.log`, rotated
into `<name>.log.1`, `.2`, ... (logging.handlers.RotatingFileHandler:
`.1` is the newest backup). Every record starts with its local time,
`2026-11-30 10:40:50,123`; a record's later lines (a traceback) carry
none and belong to the record above them.

Several logs are merged by that time, as `docker compose logs` shows its
services: records of equal time keep their files' order, and each
file's own order is kept whatever the clocks say.
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

#: Length of the time at the start of a record: "2026-11-30 10:40:50,123".
STAMP_LENGTH = 23


def record_time(line: str) -> float | None:
    """The time (epoch seconds) a record line starts with; None for a
    continuation line or a line in another format."""
    if len(line) < STAMP_LENGTH or line[4] != "-" or line[19] != ",":
        return None
    try:
        stamp = datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S")
        return stamp.timestamp() + int(line[20:23]) / 1000
    except ValueError:
        return None


def files_of(logs: Path, name: str) -> list[Path]:
    """`name`'s log and its rotated backups that exist, oldest first."""
    backups = []
    for number in range(1, 1000):
        path = logs / f"{name}.log.{number}"
        if not path.exists():
            break
        backups.append(path)
    current = logs / f"{name}.log"
    return [*reversed(backups), *([current] if current.exists() else [])]


@dataclass(frozen=True, slots=True)
class Line:
    """A line of `source`'s log and the time of the record it belongs to."""

    at: float
    source: str
    text: str


def read(logs: Path, name: str, since: float | None = None,
         upto: "Follower | None" = None) -> list[Line]:
    """Every line of `name`'s logs (backups first), each with its record's
    time; with `since`, only records at or after it; with `upto`, the
    current file only up to where that follower starts (it prints the rest)."""
    lines: list[Line] = []
    at = 0.0
    for path in files_of(logs, name):
        with open(path, "rb") as f:
            if upto is not None and path == upto.path:
                data = f.read(upto.start) if upto.start is not None else b""
            else:
                data = f.read()
            for raw in data.decode(errors="replace").splitlines():
                stamp = record_time(raw)
                if stamp is not None:
                    at = stamp
                if since is None or at >= since:
                    lines.append(Line(at, name, raw))
    return lines


def merge(streams: Iterable[list[Line]]) -> Iterator[Line]:
    """The lines of several logs in time order (each log's own order kept)."""
    return heapq.merge(*streams, key=lambda line: line.at)


class Follower:
    """New lines appended to one log file since the last `poll`, across
    any number of rotations between two polls, and truncation.

    The file being followed stays open, so its last lines are read even
    after it was renamed away. Rotation is told by inode: when the name
    holds another file, the one followed was renamed to a backup
    (RotatingFileHandler: `.log` -> `.log.1` -> `.log.2` ...), and every
    backup newer than it (a lower number; all of them if it was deleted,
    past the backup count) was written after it: they are read whole,
    oldest first, then the new file from its start. Lines are lost only
    if a backup newer than the followed file was deleted before the poll
    (more rotations between two polls than the backup count).
    """

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name
        self._file: BinaryIO | None = None
        self._inode: int | None = None
        self._partial = b""
        self._open(at_end=True)
        #: Where following began in the file (None: it did not exist yet).
        self.start = self._file.tell() if self._file is not None else None

    def _open(self, *, at_end: bool) -> None:
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            self._file, self._inode = None, None
            return
        if at_end:
            f.seek(0, os.SEEK_END)
        self._file, self._inode = f, os.fstat(f.fileno()).st_ino
        self._partial = b""

    def poll(self) -> list[str]:
        """The complete lines written since the last call, in the order written."""
        out = self._read()
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return out
        if self._file is None or stat.st_ino != self._inode:
            # Rotated (once or more: another file under the name) or created
            # since. The rest of the followed file was read above; then the
            # backups written after it, then the new file from its start.
            if self._file is not None:
                out += self._finish()
                out += self._newer_backups()
            self._open(at_end=False)
            out += self._read()
        elif stat.st_size < self._file.tell():  # truncated
            self._file.seek(0)
            self._partial = b""
            out += self._read()
        return out

    def _finish(self) -> list[str]:
        """Close the followed file (rotated away: nothing more is written
        to it); its last line counts even without a newline."""
        assert self._file is not None
        self._file.close()
        self._file = None
        rest, self._partial = self._partial, b""
        return [rest.decode(errors="replace")] if rest else []

    def _newer_backups(self) -> list[str]:
        """The lines of the backups rotated after the followed file (inode
        `self._inode`), oldest first."""
        newer: list[bytes] = []
        seen: set[int] = set()
        for number in range(1, 1000):
            try:
                f = open(self.path.with_name(f"{self.path.name}.{number}"), "rb")
            except FileNotFoundError:
                break
            with f:
                inode = os.fstat(f.fileno()).st_ino
                if inode == self._inode:
                    break  # the followed file: the ones before it are newer
                if inode in seen:
                    continue  # renamed under us while we looked: read once
                seen.add(inode)
                newer.append(f.read())
        lines: list[str] = []
        for data in reversed(newer):  # `.N` (oldest) first, `.1` last
            parts = data.split(b"\n")
            if parts[-1] == b"":
                parts.pop()  # the newline that ends the last line
            lines += [raw.decode(errors="replace") for raw in parts]
        return lines

    def _read(self) -> list[str]:
        if self._file is None:
            return []
        chunk = self._file.read()
        if not chunk:
            return []
        data = self._partial + chunk
        *complete, self._partial = data.split(b"\n")
        return [line.decode(errors="replace") for line in complete]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
