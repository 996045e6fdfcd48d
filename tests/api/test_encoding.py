"""The client's per-batch builders give exactly what the per-command ones give.

`paxosctl.client.encoding.propose_body` builds a PROPOSE body from the
requests' columns (no `Command` per command): its bytes must be
`clientwire.encode_commands`'s, or agents would read other commands than
were proposed. `checks.check_values` checks a batch in C-level passes: its
verdicts must be `check_value`'s, value by value.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paxos_agents.core.commands import Command
from paxos_agents.runtime import clientwire as wire
from paxosctl.client.checks import check_value, check_values
from paxosctl.client.encoding import propose_body
from paxosctl.errors import UsageError

commands = st.lists(st.tuples(st.text(min_size=1, max_size=40), st.binary(max_size=64),
                              st.integers(min_value=-1, max_value=2**63 - 1)),
                    min_size=1, max_size=30)


@given(commands)
def test_a_propose_body_from_columns_is_encode_commands_bytes(batch) -> None:
    ids, payloads, issued = (list(column) for column in zip(*batch))
    expected = wire.encode_commands(Command(r, p, i) for r, p, i in batch)
    assert propose_body(ids, payloads, issued) == expected
    assert [(c.request_id, c.payload, c.issued) for c in wire.decode_batch(expected).commands] == batch


def test_an_empty_batch_is_the_empty_body() -> None:
    assert propose_body([], [], []) == wire.encode_commands([]) == b""


LIMIT = 100
#: Batches, each with at most one value `check_value` refuses, anywhere in it.
BATCHES = {
    "all-bytes": [b"a", b"b" * LIMIT, b""],
    "a-str": [b"a", "b\u00e9", b"c"],
    "a-bytearray": [bytearray(b"a"), b"b"],
    "over-the-limit-last": [b"a", b"b", b"c" * (LIMIT + 1)],
    "over-the-limit-first": [b"c" * (LIMIT + 1), b"a"],
    "an-int": [b"a", 5],
    "a-lone-surrogate": ["v\udcff", b"a"],
    "none": [],
}


@pytest.mark.parametrize("values", BATCHES.values(), ids=BATCHES.keys())
@pytest.mark.parametrize("limit", [LIMIT, None], ids=["limit", "no-limit"])
def test_a_batch_is_checked_as_each_value_alone(values: list[object], limit: int | None) -> None:
    try:
        expected = [check_value(v, limit) for v in values]
    except UsageError as e:
        with pytest.raises(UsageError) as caught:
            check_values(list(values), limit)
        assert str(caught.value) == str(e)
    else:
        got = check_values(list(values), limit)
        assert got == expected and all(type(p) is bytes for p in got)
