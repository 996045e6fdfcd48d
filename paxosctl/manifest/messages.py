"""How the manifest's errors read: one line, `<file>: <key.path>: <problem>`,
every value quoted as it reads in the file (`show`), with did-you-mean hints."""

from __future__ import annotations

import difflib
import math
import re
import sys
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from paxosctl.durations import quote_text
from paxosctl.errors import ManifestError


def error(path: Path, keys: tuple[str, ...], problem: str, *, hint: str | None = None) -> ManifestError:
    """The one-line error "<file>: <key.path>: <problem>"; no key path when
    `keys` is empty (the error concerns the whole file)."""
    file = display_path(path)
    where = f"{file}: {key_path(keys)}: " if keys else f"{file}: "
    return ManifestError(one_line(where + problem), hint=hint)


def show(value: Any) -> str:
    """A TOML value as it reads in a one-line message."""
    if isinstance(value, str):
        return quote_text(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        # str() of an enormous int is slow (and refused past 4300 digits).
        if value.bit_length() > 100:
            digits = int(value.bit_length() * math.log10(2)) + 1
            return f"{'-' if value < 0 else ''}an integer of about {digits} digits"
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return quote_text(str(value))


def key_path(keys: tuple[str, ...]) -> str:
    """Keys joined with dots; a key that is not a bare TOML key is quoted."""
    return ".".join(k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else quote_text(k) for k in keys)


def one_line(message: str) -> str:
    """Every value in a message is quoted already; this is the last guard."""
    return " ".join(message.splitlines())


def display_path(path: Path) -> str:
    """The manifest's path as error messages show it: relative to the
    current folder when it is inside it, else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except (ValueError, OSError):
        return str(path)


def did_you_mean(word: str, choices: tuple[str, ...]) -> str | None:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"did you mean {close[0]!r}?" if close else None


def misplaced(key: str) -> str | None:
    """A hint for a [cluster] key written above every table."""
    if key in ("name", "state_dir"):
        return f"{key} belongs in the [cluster] table"
    return None


def join_or(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def long_number_at(text: str) -> str | None:
    """"(at line X, column Y)" for the first run of digits too long for
    int() to parse, or None if there is none."""
    limit = sys.get_int_max_str_digits()
    match = re.search(r"[0-9_]{%d,}" % (limit + 1), text) if limit else None
    if not match:
        return None
    line = text.count("\n", 0, match.start()) + 1
    column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
    return f"(at line {line}, column {column})"
