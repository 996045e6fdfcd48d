"""A PROPOSE body built from columns: the commands of a batch without a
`Command` object each.

`paxos_agents.runtime.clientwire.encode_commands` takes `Command`s (a
frozen dataclass: about 0.46 µs to make, per command) and reads their
fields back out to build `Value`'s struct-of-arrays layout. The client
holds its requests' ids, payloads and stamps already, so it builds the
same bytes from those three lists: one `struct.pack` for the arrays and
one `join` for the rest. The bytes are exactly `encode_commands`'s
(tests/api/test_encoding.py compares them); nothing on the wire changes.
"""

from __future__ import annotations

import struct


def propose_body(request_ids: list[str], payloads: list[bytes], issued: list[int]) -> bytes:
    """The PROPOSE body of the commands (`request_ids[i]`, `payloads[i]`,
    `issued[i]`), in order: `Value`'s layout (paxos_agents.core.commands).

    Raises what encoding them raises (UnicodeEncodeError, struct.error) for
    a command `check_proposal` would have refused; empty lists: the no-op's
    empty body, as `encode_commands` gives (a PROPOSE never carries one).
    """
    n = len(request_ids)
    if not n:
        return b""
    raw = list(map(str.encode, request_ids))
    head = struct.pack(f"<I{n}H{n}I{n}q", n, *map(len, raw), *map(len, payloads), *issued)
    return b"".join((head, *raw, *payloads))
