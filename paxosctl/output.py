"""How commands print data: aligned tables for people, JSON and YAML for programs.

Every command that prints data takes `-o/--output`. The machine formats
(json, yaml) carry `SCHEMA`, the version of this output's shape: a
script checks it, and a release that changes a field's meaning raises it
(CHANGELOG.md says what changed). Fields are only ever added within one
schema version.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

#: The version of the JSON/YAML documents the CLI prints.
SCHEMA = 1

#: The machine formats, and the tables (wide adds columns).
MACHINE = ("json", "yaml")


def allowed(value: str, formats: Sequence[str]) -> str:
    """`value` if it is one of `formats`; else UsageError naming them."""
    from .errors import UsageError

    if value not in formats:
        raise UsageError(f"-o/--output: unknown format {value!r}; allowed: {', '.join(formats)}")
    return value


def document(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """`body` as a versioned document: {"schema": 1, "kind": kind, ...}."""
    return {"schema": SCHEMA, "kind": kind, **body}


def render(data: Any, fmt: str) -> str:
    """`data` (JSON types only) as one JSON line, or as a YAML document."""
    if fmt == "json":
        return json.dumps(data)
    if fmt == "yaml":
        # PyYAML, imported only here (13 ms): quoting strings such as "no",
        # "1e3" or "a: b" correctly is its job, not ours.
        import yaml

        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True,
                              default_flow_style=False).rstrip("\n")
    raise ValueError(f"not a machine format: {fmt!r}")


def chaos_line(active: dict[str, Any]) -> str:
    """The chaos in force (a chaos reply's "chaos") as one line for people:
    `chaos: drop=0.05, drop_kinds=accepted` or `chaos: off`."""
    if not active:
        return "chaos: off"
    return "chaos: " + ", ".join(f"{k}={','.join(v) if isinstance(v, list) else v}"
                                 for k, v in active.items())


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """`rows` (the first is the header) as lines of left-aligned columns,
    two spaces apart, without trailing blanks."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in rows]
