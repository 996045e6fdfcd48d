"""Request ids a client makes: `new_request_id` (the sync, async and data-path clients)."""

from __future__ import annotations

import os
import time


def new_request_id() -> str:
    """A fresh request id: propose with it, and retry with it after an unknown outcome.

    32 hex digits: the time in milliseconds (12), then 80 random bits (as
    UUIDv7 orders them). Ids made later sort later, so the learners'
    on-disk index (a B-tree keyed by request id) grows at its end: a batch
    of new ids touches a few pages, not one random page each.
    """
    return f"{time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF:012x}{os.urandom(10).hex()}"
