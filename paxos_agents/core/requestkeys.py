"""The request index's key for a request id: a stable 63-bit integer.

The learner's request index on disk is keyed by it (runtime/storage,
schema 6) and its `IdFilter` is built from it; requests.py says why a key
only narrows the search and full ids decide. Its own module so that the
store's readers (ready.py's `Record`, the runtime's storage) and the index
share it without importing each other.
"""

from __future__ import annotations

from hashlib import blake2b

#: Bits of a key below the millisecond field: a fold of the rest of the id.
_LOW_BITS = 21
_LOW_MASK = (1 << _LOW_BITS) - 1
#: The millisecond field's bits kept (2**42 ms: until the year 2109).
_MS_MASK = (1 << 42) - 1


def request_key(request_id: str) -> int:
    """The request index's key for `request_id`: a 63-bit integer, the same
    in every process and every release (stored on disk; never change it
    without a schema version and a migration).

    An id of the client's layout (32 hex digits, the first 12 the wall-clock
    milliseconds: paxosctl/client/ids.py) gives its milliseconds in the
    high 42 bits and an XOR fold of its other 80 bits (random prefix and
    counter) in the low 21; any other id (chosen by hand, `--request-id`)
    the first 63 bits of its BLAKE2b digest. Collisions are allowed: keys
    only narrow, full ids decide.
    """
    if len(request_id) == 32:
        try:
            n = int(request_id, 16)
        except ValueError:
            n = -1
        if n >= 0:
            return ((n >> 80) & _MS_MASK) << _LOW_BITS | (n ^ n >> 21 ^ n >> 42 ^ n >> 63) & _LOW_MASK
    digest = blake2b(request_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1
