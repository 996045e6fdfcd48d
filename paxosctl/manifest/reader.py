"""Reading a manifest file: `Reader` turns it into TOML tables and checks
single values; the sections' loaders (cluster.py, settings.py,
transport.py) build on it, and load.py runs them in order."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from paxosctl.durations import ALLOWED as DURATION_ALLOWED
from paxosctl.durations import parse_duration
from paxosctl.errors import ManifestError

from .messages import did_you_mean, error, key_path, long_number_at, show
from .model import MAX_DURATION, MAX_DURATION_SECONDS


class Reader:
    """One manifest file being read: the file as TOML (`read`), and the checks
    every section uses on a value (`table`, `no_unknown_keys`, `duration`,
    `integer`, `choice`), each failing with `fail`'s one-line error."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, keys: tuple[str, ...], problem: str, *, hint: str | None = None) -> ManifestError:
        return error(self.path, keys, problem, hint=hint)

    # -- the file as a whole --

    def read(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raise self.fail((), "cannot read the manifest: no such file; "
                                "pass the path of a TOML manifest such as cluster.toml") from None
        except IsADirectoryError:
            raise self.fail((), "cannot read the manifest: it is a folder; "
                                "pass the path of a TOML manifest such as cluster.toml") from None
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            raise self.fail((), f"cannot read the manifest: {reason}; "
                                "pass the path of a readable TOML manifest") from None
        try:
            # utf-8-sig: tolerate the byte-order mark some editors write.
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise self.fail((), f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                                "save the manifest as UTF-8") from None
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            # tomllib's message ends with "(at line X, column Y)": keep it.
            raise self.fail((), f"invalid TOML: {exc}") from None
        except ValueError as exc:
            # tomllib lets int()'s digit limit escape as a bare ValueError
            # (CPython refuses to parse ints of more than 4300 digits).
            where = long_number_at(text)
            if where is None:
                raise self.fail((), f"invalid TOML: {exc}") from None
            raise self.fail((), f"invalid TOML: integer too long {where}; TOML integers fit in 64 bits") from None
        except RecursionError:
            raise self.fail((), "invalid TOML: arrays or inline tables nested too deeply") from None

    def table(self, keys: tuple[str, ...], value: Any) -> dict[str, Any]:
        """`value` as a table: an absent optional section is an empty one."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            header = "[" + key_path(keys) + "]"
            raise self.fail(keys, f"expected a table ({header}), got {show(value)}")
        return value

    def no_unknown_keys(self, keys: tuple[str, ...], table: dict[str, Any], allowed: tuple[str, ...]) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(keys + (key,), "unknown key; allowed: " + ", ".join(allowed),
                                hint=did_you_mean(key, allowed))

    def duration(self, keys: tuple[str, ...], value: Any) -> float:
        if not isinstance(value, str):
            raise self.fail(keys, f"expected a duration string, got {show(value)}; "
                                  f'durations are strings like "200ms" or "2s" (units: us, ms, s, m, h)')
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise self.fail(keys, str(exc)) from None
        if seconds <= 0 or seconds > MAX_DURATION_SECONDS:
            raise self.fail(keys, f"{show(value)} is out of range; "
                                  f"expected {DURATION_ALLOWED} above zero and at most {MAX_DURATION}")
        return seconds

    def integer(self, keys: tuple[str, ...], value: Any, low: int, high: int,
                why: str = "") -> int:
        # bool is a subclass of int in Python, but `replicas = true` is a mistake.
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(keys, f"expected an integer from {low} to {high}, got {show(value)}"
                            + (f" ({why})" if why else ""))
        return value

    def choice(self, keys: tuple[str, ...], value: Any, noun: str, choices: tuple[str, ...]) -> str:
        allowed = ", ".join(choices)
        if not isinstance(value, str):
            raise self.fail(keys, f"expected a string, got {show(value)}; allowed: {allowed}")
        if value not in choices:
            raise self.fail(keys, f"unknown {noun} {show(value)}; allowed: {allowed}",
                            hint=did_you_mean(value, choices))
        return value
