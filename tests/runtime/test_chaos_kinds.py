"""The chaos rule for one kind of message: `drop_kinds` (and `drop_to`)
drop every message of those kinds (to those agents), told apart by the
frame's TYPE byte; checked where settings come in (the ChaosSettings
itself, the manifest's [chaos], the supervisor's `paxosctl chaos`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from paxos_agents.core import Ballot, Command, Value
from paxos_agents.core.messages import Accept, Accepted, Promise
from paxos_agents.runtime.chaos import KINDS, Chaos, ChaosSettings
from paxos_agents.runtime.codec import encode
from paxosctl.errors import ManifestError
from paxosctl.manifest import load_manifest
from paxosctl.supervisor.chaos import update

B = Ballot(1, "p0")
V = Value.of([Command("r", b"v")])


def frame_of(kind: type, dst: str) -> bytes:
    if kind is Promise:
        return encode(Promise(src="a0", dst=dst, ballot=B, first_slot=0, votes=()))
    return encode(kind(src="x", dst=dst, ballot=B, slot=0, value=V))


def fates(settings: ChaosSettings, sends: list[tuple[type, str]]) -> list[int]:
    chaos = Chaos("a0")
    chaos.set(settings)
    return [chaos.fate(dst, frame_of(kind, dst)[1:2])[0] for kind, dst in sends]


SENDS = [(Accepted, "p0"), (Accepted, "l0"), (Accept, "p0"), (Promise, "p0"), (Accepted, "p0")]


def test_every_message_of_the_kind_to_the_named_agent_is_dropped_and_no_other():
    chaos = Chaos("a0")
    chaos.set(ChaosSettings(drop_kinds=("accepted",), drop_to=("p0",)))
    got = [chaos.fate(dst, frame_of(kind, dst)[1:2])[0] for kind, dst in SENDS * 50]
    assert got == [0, 1, 1, 1, 0] * 50  # probability 1: no dice
    assert chaos.counts["drop"] == 100


def test_without_drop_to_the_kind_is_dropped_to_every_agent():
    assert fates(ChaosSettings(drop_kinds=("accepted", "promise")), SENDS) == [0, 0, 1, 0, 0]


def test_the_drop_fraction_still_applies_to_the_other_kinds():
    got = fates(ChaosSettings(drop_kinds=("accepted",), drop=1.0), SENDS)
    assert got == [0, 0, 0, 0, 0]
    # ... and heals: the kinds' rule goes with the settings
    assert fates(ChaosSettings(), SENDS) == [1] * 5


def test_a_frame_too_short_to_have_a_type_byte_is_never_matched():
    chaos = Chaos("a0")
    chaos.set(ChaosSettings(drop_kinds=tuple(KINDS)))
    assert chaos.fate("p0", b"x"[1:2]) == (1, 0.0)


def test_kinds_are_the_protocol_records_names_and_bad_settings_are_refused():
    assert {"prepare", "promise", "accept", "accepted", "nack", "decide"} <= set(KINDS)
    with pytest.raises(ValueError, match=r"drop_kinds: no message kind 'acepted'; kinds: prepare, "):
        ChaosSettings(drop_kinds=("acepted",))
    with pytest.raises(ValueError, match="drop_to: .* give drop_kinds too"):
        ChaosSettings(drop_to=("p0",))
    on = ChaosSettings(drop_kinds=("accepted",), drop_to=("p0",))
    assert on.active and on.describe() == {"drop_kinds": ["accepted"], "drop_to": ["p0"]}
    assert ChaosSettings.from_json(on.to_json()) == on


AGENTS = ("proposer-0", "acceptor-0", "learner-0")


def test_the_supervisor_update_names_the_bad_kind_or_agent_and_heal_clears_the_rule():
    on = update(ChaosSettings(), {"drop_kinds": ["accepted"], "drop_to": ["proposer-0"]}, AGENTS)
    assert on.drop_kinds == ("accepted",) and on.drop_to == ("proposer-0",)
    with pytest.raises(ValueError, match="drop_to: no agent 'nobody'; agents: proposer-0, "):
        update(on, {"drop_to": ["nobody"]}, AGENTS)
    with pytest.raises(ValueError, match="drop_kinds: no message kind 'bogus'; kinds: "):
        update(on, {"drop_kinds": ["bogus"]}, AGENTS)
    with pytest.raises(ValueError, match="give drop_kinds too"):
        update(ChaosSettings(), {"drop_to": ["proposer-0"]}, AGENTS)
    assert update(on, {"drop_kinds": []}, AGENTS) == ChaosSettings()  # its targets go with it
    assert update(on, {"heal": True}, AGENTS) == ChaosSettings()


MANIFEST = """[cluster]
name = "demo"
[agents.proposer]
role = "proposer"
[agents.acceptor]
role = "acceptor"
replicas = 3
[agents.learner]
role = "learner"
[chaos]
"""


@pytest.mark.parametrize("chaos, fragment", [
    ('drop_kinds = ["acepted"]', "chaos.drop_kinds: no message kind \"acepted\"; kinds: prepare, promise"),
    ('drop_kinds = "accepted"', "chaos.drop_kinds: expected a list of message kinds"),
    ('drop_kinds = ["accepted"]\ndrop_to = ["nobody"]', 'chaos.drop_to: no agent "nobody"; agents: '),
    ('drop_to = ["proposer-0"]', "chaos.drop_to: names whose inbound drop_kinds to drop; give drop_kinds too"),
])
def test_the_manifest_refuses_an_unknown_kind_or_agent_in_one_line(tmp_path: Path, chaos, fragment):
    path = tmp_path / "cluster.toml"
    path.write_text(MANIFEST + chaos + "\n", encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    message = str(caught.value)
    assert message.splitlines() == [message] and caught.value.exit_code == 2
    assert fragment in message, message


def test_the_manifest_puts_the_rule_in_force(tmp_path: Path):
    path = tmp_path / "cluster.toml"
    path.write_text(MANIFEST + 'drop_kinds = ["accepted"]\ndrop_to = ["proposer-0"]\n', encoding="utf-8")
    assert load_manifest(path).chaos == ChaosSettings(drop_kinds=("accepted",), drop_to=("proposer-0",))


def test_the_chaos_help_lists_every_kind_the_rule_takes():
    """`paxosctl chaos --help` names the kinds by hand: it must name exactly
    the kinds the codec has (a new message type would otherwise be missing)."""
    import re

    from paxos_agents.runtime.chaos import KINDS
    from paxosctl.cli import load

    listed = re.search(r"kinds: ([a-z, \n]+)\.", load.chaos.__doc__).group(1)
    assert [k.strip() for k in listed.replace("\n", " ").split(",")] == list(KINDS)
