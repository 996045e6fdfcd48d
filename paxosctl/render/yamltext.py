"""YAML for plain data: dicts, lists, str, int, bool and None, block style,
keys in the order given (Kubernetes readers do not care, people do).

Strings are double-quoted whenever plain style could be read back as
anything else (a number, a bool, null, a date, a key or a comment), so a
value is never re-typed by the reader; a string with newlines and no
other control characters is a block literal (`|`, or `|-` without a final
newline), as the ConfigMap's TOML reads best. JSON's string escapes are
valid in YAML's double-quoted style, so quoting is `json.dumps` without
its ASCII escapes (YAML reads a surrogate pair escape as two lone
surrogates), then `\\uXXXX` for what YAML does not print as itself
(`_ESCAPE`).
"""

from __future__ import annotations

import json
import re
from typing import Any

#: Plain (unquoted) only for strings that cannot mean anything else: a
#: letter or "/" first, then no character YAML gives a meaning to.
_PLAIN = re.compile(r"[A-Za-z/][A-Za-z0-9_./-]*")
#: YAML 1.1 and 1.2 words that read back as bools or null.
_WORDS = {"y", "yes", "n", "no", "true", "false", "on", "off", "null", "nan", "inf"}
_INDENT = "  "
#: Characters a YAML stream may not hold as they are (outside its printable
#: set: C0 controls but tab and newline, DEL, C1 controls, surrogates, U+FFFE/F),
#: or that a YAML 1.1 reader takes for a line break (NEL, U+2028, U+2029)
#: or a byte-order mark (U+FEFF).
_ESCAPE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\ufeff\ufffe\uffff]")


def dump(documents: list[Any]) -> str:
    """`documents` as a YAML stream, each after a `---` line."""
    return "".join("---\n" + _block(doc, 0) for doc in documents)


def scalar(value: Any) -> str:
    """One scalar on one line (TypeError for what is not plain data)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and value.lower() not in _WORDS:
            return value
        return _ESCAPE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(value, ensure_ascii=False))
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as YAML")


def _literal_fits(value: str) -> bool:
    """Can a block literal keep `value` exactly? It needs a newline, no
    other control character, a first line that does not start with a
    space (it would set the indentation) and lines without trailing spaces;
    `|` keeps one final newline and `|-` none, so no blank lines at the end."""
    if "\n" not in value or value[:1] in (" ", "\n"):
        return False
    if "\t" in value or "\r" in value or _ESCAPE.search(value):
        return False
    body = value[:-1] if value.endswith("\n") else value
    return not body.endswith("\n") and all(line == line.rstrip(" ") for line in body.split("\n"))


def _block(value: Any, depth: int) -> str:
    """`value` as the lines of a block at `depth` (a mapping or a sequence),
    or a scalar followed by a newline."""
    pad = _INDENT * depth
    if isinstance(value, dict):
        if not value:
            return "{}\n"
        return "".join(pad + _key(k) + ":" + _after(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        if not value:
            return "[]\n"
        # "- " then the item's first line; its other lines indented under it.
        out = []
        for item in value:
            if isinstance(item, (dict, list)) and item:
                inner = _block(item, depth + 1)
                out.append(pad + "- " + inner[len(pad) + len(_INDENT):])
            else:
                out.append(pad + "-" + _after(item, depth + 1))
        return "".join(out)
    return scalar(value) + "\n"


def _after(value: Any, depth: int) -> str:
    """What follows "key:" or "-": a nested block on the next lines, or " scalar"."""
    if isinstance(value, (dict, list)) and value:
        return "\n" + _block(value, depth)
    if isinstance(value, str) and _literal_fits(value):
        pad = _INDENT * depth
        chomp = "" if value.endswith("\n") else "-"
        lines = value[:-1].split("\n") if value.endswith("\n") else value.split("\n")
        return f" |{chomp}\n" + "".join((pad + line if line else "") + "\n" for line in lines)
    return " " + _block(value, depth)


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"cannot write the key {key!r}: keys are strings")
    return scalar(key)
