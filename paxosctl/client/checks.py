"""What a proposal may carry, checked at the call (README "Python API"):
`check_proposal` and `check_timeout`, shared by every client, before
anything is queued, so the I/O thread never sees a command it cannot encode.
"""

from __future__ import annotations

from paxos_agents.core.configs import CONFIG_PREFIX
from paxos_agents.runtime import clientwire as wire

from ..errors import UsageError

#: The largest `issued` stamp: an i64 on the wire (`Value`'s layout).
MAX_ISSUED = 2**63 - 1


def check_value(value: object, max_value_bytes: int | None = None) -> bytes:
    """The payload of `value` if it may be proposed; else `UsageError` (exit 2):
    `check_proposal`'s rule for the value alone (for ids the client made)."""
    # The usual case first (bytes): this runs per command.
    if type(value) is bytes:
        payload = value
    elif isinstance(value, str):
        try:
            payload = value.encode()
        except UnicodeEncodeError as e:
            raise UsageError(f"value: a str must be encodable as UTF-8 (it is sent so); "
                             f"{ascii(value[e.start:e.start + 1])} at position {e.start} is not: "
                             "pass bytes for arbitrary data") from None
    elif isinstance(value, (bytes, bytearray, memoryview)):
        payload = bytes(value)
    else:
        raise UsageError(f"value: expected bytes or str, got {type(value).__name__}")
    if max_value_bytes is not None and len(payload) > max_value_bytes:
        raise UsageError(f"value is {len(payload)} bytes; the limit is {max_value_bytes} "
                         "(paxos.max_value_bytes)")
    return payload


def check_values(values: list[object], max_value_bytes: int | None = None) -> list[bytes]:
    """The payloads of `values`, each checked as `check_value` checks it;
    the first bad one raises its `UsageError` (so none is sent).

    A batch of bytes within the limit (the usual `propose_many`) is checked
    in two C-level passes, its types and its longest value, not a call per
    value."""
    if set(map(type, values)) <= {bytes} and (
            max_value_bytes is None or max(map(len, values), default=0) <= max_value_bytes):
        return values  # type: ignore[return-value]  # every one is bytes
    return [check_value(v, max_value_bytes) for v in values]


def check_proposal(value: object, request_id: object, issued: object,
                   max_value_bytes: int | None = None) -> bytes:
    """The payload of a proposal whose arguments are well formed; else
    `UsageError` (exit 2), one line naming the argument and what is allowed.

    The rules (README "Python API"): `value` is bytes (or bytearray,
    memoryview) or a str, sent as UTF-8, of at most `max_value_bytes`
    (when known: the cluster's paxos.max_value_bytes); `request_id` is a
    non-empty str of at most `wire.MAX_REQUEST_ID_BYTES` bytes of UTF-8
    (so no lone surrogates), not starting with NUL (reserved: the ids of
    configuration commands start with CONFIG_PREFIX); `issued` is None or
    an int from -1 to 2**63 - 1. Checked at the call, before anything is
    queued: the I/O thread never sees a command it cannot encode.
    """
    payload = check_value(value, max_value_bytes)
    if not isinstance(request_id, str):
        raise UsageError(f"request_id: expected a str, got {type(request_id).__name__}")
    if not request_id:
        raise UsageError("request_id: expected a non-empty str (or none: one is made)")
    if request_id.startswith("\0"):
        raise UsageError(f"request_id: must not start with NUL (reserved for configuration "
                         f"commands, {ascii(CONFIG_PREFIX)}...), got {ascii(request_id)[:60]}")
    try:
        size = len(request_id) if request_id.isascii() else len(request_id.encode())
    except UnicodeEncodeError as e:
        raise UsageError(f"request_id: not encodable as UTF-8 "
                         f"({ascii(request_id[e.start:e.start + 1])} at position {e.start}, "
                         "a lone surrogate)") from None
    if size > wire.MAX_REQUEST_ID_BYTES:
        raise UsageError(f"request_id: {size} bytes of UTF-8; allowed: 1 to "
                         f"{wire.MAX_REQUEST_ID_BYTES}")
    if issued is not None and (type(issued) is not int or not -1 <= issued <= MAX_ISSUED):
        shown = issued if type(issued) is int else type(issued).__name__
        raise UsageError(f"issued: expected an int from -1 to {MAX_ISSUED} (the stamp a "
                         f"first try reported), got {shown}")
    return payload


_INFINITY = float("inf")


def check_timeout(timeout: object) -> float:
    """`timeout` as seconds if it is a finite number > 0; else `UsageError`."""
    if type(timeout) is float and 0 < timeout < _INFINITY:
        return timeout
    if (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
            or not 0 < timeout < _INFINITY):
        raise UsageError(f"timeout: expected seconds, a finite number > 0, got {timeout!r}")
    return float(timeout)
