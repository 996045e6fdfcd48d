"""What a proposer refuses a client, on the wire: TOO_LARGE and CONFLICT.

A real agent process (tests/runtime/lone_agent.py: a replica deciding
alone), a client on its real Unix socket. One PROPOSE frame carries a
value over `max_value_bytes` and a request id twice with two payloads:
the proposer answers one OUTCOMES frame, the refusals in the order they
were sent, the CONFLICT naming the digest of the payload it holds under
the id (the first); the rest of the frame is decided, the id with its
first payload. The conflict rule itself is table-tested in the core
(tests/core/test_core_conflicts.py); the same refusal while the first
payload is in flight behind a partition is checked through the CLI
(tests/cli/test_cli_outcomes.py, `request_id_conflict`, exit 2).
"""

from __future__ import annotations

from dataclasses import fields

from paxos_agents.core.commands import Command
from paxos_agents.runtime import clientwire as wire
from paxos_agents.runtime import frames
from paxos_agents.runtime.spec import AgentSpec
from paxos_agents.runtime.transport import CLIENT, hello

from test_agent_limits import lone, start  # noqa: F401 (lone: the fixture)

#: The agent's default `max_value_bytes` (lone_agent.py keeps it).
LIMIT = next(f.default for f in fields(AgentSpec) if f.name == "max_value_bytes")


def test_too_large_and_conflicting_commands_are_refused_in_the_order_sent(lone) -> None:
    agent = start()
    lone.append(agent)
    sent = [Command("x", b"first", -1), Command("x", b"second", -1),
            Command("big", b"v" * (LIMIT + 1), -1), Command("y", b"other", -1)]
    refusals: list[wire.Outcome] = []
    decided: dict[str, wire.Outcome] = {}
    with agent.dial(hello("lone", CLIENT, 0, "r0"), wire.PROPOSE + wire.encode_commands(sent),
                    wire.WATCH + wire.encode_ids(["x", "y"])) as sock:
        reader = frames.FrameReader()
        while len(decided) < 2:
            data = sock.recv(1 << 16)
            assert data, "the agent closed the client's connection"
            for frame in reader.feed(data):
                if frame[:1] == wire.OUTCOMES:
                    for outcome in wire.decode_outcomes(frame[1:]):
                        if outcome.status == wire.DECIDED:
                            decided[outcome.request_id] = outcome
                        else:
                            refusals.append(outcome)
    assert refusals == [wire.Outcome("x", wire.CONFLICT, -1, 0, wire.digest(b"first")),
                        wire.Outcome("big", wire.TOO_LARGE, LIMIT, 0, b"\0" * 8)]
    assert decided["x"].digest == wire.digest(b"first")
    assert decided["y"].digest == wire.digest(b"other")
