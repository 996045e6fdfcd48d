"""The proposer's and the learner's rooms sit below their role: each owns its
state and imports neither its role, the node, nor another room (the role
passes what a room needs in its calls). Read from the source, as
tests/test_layers.py reads the packages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "paxos_agents" / "core"
ROOMS = ("election", "pipeline", "intake", "decided", "heartbeats", "retries", "reconfig",
         "gaps")
ABOVE = ("proposer", "learner", "node", "plants")


def core_imports(module: str) -> set[str]:
    """The core modules `module` imports (relative imports, `from .x import ...`)."""
    tree = ast.parse((CORE / f"{module}.py").read_text())
    return {node.module.split(".")[0] for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module}


@pytest.mark.parametrize("room", ROOMS)
def test_a_room_imports_no_role_and_no_other_room(room):
    wrong = core_imports(room) & {*ABOVE, *ROOMS}
    assert not wrong, f"core/{room}.py imports {sorted(wrong)}"


def test_the_proposer_is_built_of_its_rooms():
    assert {"election", "pipeline", "intake", "decided", "heartbeats", "retries",
            "reconfig"} <= (
        core_imports("proposer"))
    assert "gaps" in core_imports("learner")
