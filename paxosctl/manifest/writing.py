"""Writing TOML values, for the tools and tests that write manifests
(tomllib only reads)."""

from __future__ import annotations

import json
from typing import Any


def toml_value(value: Any) -> str:
    """`value` (bool, int, float, str, or a list/tuple of those) as a TOML value,
    for tools and tests that write manifests (tomllib only reads)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")

