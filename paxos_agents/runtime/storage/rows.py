"""How values, the configuration history and meta fields sit in the file's rows.

Pure conversions between what `SqliteStorage` (and the migrations) read
or write and the core's types; no file is opened here. A row that does not
convert raises TypeError or ValueError, which the caller turns into a
`StorageError` naming the file.
"""

from __future__ import annotations

import json

from paxos_agents.core.commands import BatchError, Command, Value


def json_value(text: object) -> Value:
    """A version-2 stored value: JSON `[[request_id, payload(, issued)], ...]`
    with text payloads, which become their UTF-8 bytes (surrogatepass: the
    old codec could hold any str, lone surrogates included)."""
    if type(text) is not str:
        raise TypeError(f"expected JSON text, got {type(text).__name__}")
    items = json.loads(text)
    if type(items) is not list:
        raise ValueError("not a list of commands")
    commands = []
    for item in items:
        if type(item) is not list or not 2 <= len(item) <= 3:
            raise ValueError(f"not a command: {item!r:.60}")
        request_id, payload, *issued = item
        if type(request_id) is not str or type(payload) is not str:
            raise ValueError(f"command fields must be strings: {item!r:.60}")
        stamp = issued[0] if issued else -1
        if type(stamp) is not int or stamp < -1:
            raise ValueError(f"command issued must be an integer >= -1: {item!r:.60}")
        commands.append(Command(request_id, payload.encode("utf-8", "surrogatepass"), stamp))
    try:
        return Value.of(commands)
    except BatchError as exc:
        raise ValueError(str(exc)) from None


def configs_text(configs: list) -> str:
    """`Persist.configs` as stored: compact JSON text (TypeError if it is not JSON-able)."""
    if type(configs) is not list:
        raise TypeError(f"configs must be a list, got {type(configs).__name__}")
    return json.dumps(configs, separators=(",", ":"), allow_nan=False)


def configs_from_text(text: object) -> list | None:
    """The stored history (None if none was stored); ValueError/TypeError if damaged."""
    if text is None:
        return None
    configs = json.loads(text_field(text))
    if type(configs) is not list:
        raise ValueError("configs is not a JSON list")
    return configs


def configs_copy(configs: list | None) -> list | None:
    """`configs` as it comes back from SqliteStorage: a new list, through JSON."""
    return None if configs is None else json.loads(configs_text(configs))


def blob_value(data: object) -> Value:
    """A stored value (version 3): the batch's bytes, not decoded here."""
    if type(data) is not bytes:
        raise TypeError(f"expected a BLOB value, got {type(data).__name__}")
    return Value.from_bytes(data)


def int_field(obj: object) -> int:
    """A meta value that must be an integer (TypeError otherwise)."""
    if type(obj) is not int:
        raise TypeError(f"expected an integer, got {obj!r:.40}")
    return obj


def text_field(obj: object) -> str:
    """A meta value that must be text (TypeError otherwise)."""
    if type(obj) is not str:
        raise TypeError(f"expected text, got {obj!r:.40}")
    return obj

