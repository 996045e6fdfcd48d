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
    text = "".join(request_ids)
    if text.isascii():  # the usual case (this client's ids): one encode, and
        # a character is a byte, so each id's length is its length in bytes
        ids, id_lengths = text.encode("ascii"), map(len, request_ids)
    else:
        raw = list(map(str.encode, request_ids))
        ids, id_lengths = b"".join(raw), map(len, raw)
    head = struct.pack(f"<I{n}H{n}I{n}q", n, *id_lengths, *map(len, payloads), *issued)
    return b"".join((head, ids, *payloads))
