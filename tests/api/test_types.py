"""The typed API is typed: mypy --strict passes on the client modules, and
a user's code gets real classes from `from paxosctl import ...`, not Any.

The proof that the types are not Any is the rejected snippet: with Any,
mypy would accept `status.leaderr` too. mypy runs from the repo root (its
[tool.mypy] config in pyproject.toml) with its cache in a temp folder.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The modules whose annotations are the API, checked with --strict.
TYPED = ("paxosctl/client/sync.py", "paxosctl/client/aio.py", "paxosctl/client/results.py",
         "paxosctl/client/decidedlog.py", "paxosctl/errors.py", "paxosctl/__init__.py",
         "paxosctl/client/__init__.py")
#: Seconds all mypy runs of this module may take together (cold cache).
BUDGET = 45.0

GOOD = '''
import asyncio
from paxosctl import (AsyncClient, Client, ClusterStatus, DecidedCommand, Decision,
                      NotRunning, OutcomeUnknown, PaxosctlError, RequestFailed)
from paxosctl.client.results import Proposed


def leader(client: Client) -> str | None:
    status: ClusterStatus = client.status(wide=True)
    for agent in status.agents:
        rss: int | None = agent.rss_bytes
        print(agent.name, agent.state, agent.pid, rss, agent.extra.get("note"))
    return status.leader


def values(client: Client) -> list[bytes]:
    decision: Decision = client.propose(b"x")
    slot: int = decision.slot
    entries: list[DecidedCommand] = client.decided(slot, limit=10)
    return [e.value for e in entries if e.value is not None]


async def follow(path: str) -> int:
    async with AsyncClient.for_manifest(path) as client:
        results: list[Proposed] = await client.propose_many(["a", "b"])
        first: Decision = results[0].result()
        async for entry in client.follow(first.slot, limit=2):
            print(entry.position)
        return (await client.status()).decided_up_to or 0


def code(e: PaxosctlError) -> int:
    if isinstance(e, RequestFailed):
        return e.exit_code
    return 124 if isinstance(e, OutcomeUnknown) else 1 if isinstance(e, NotRunning) else 2
'''

BAD = '''
from paxosctl import AsyncClient, Client


def leader(client: Client) -> str:
    return client.status().leaderr


async def slot(client: AsyncClient) -> int:
    return (await client.propose("x")).slott


def value(client: Client) -> bytes:
    return client.decided()[0].value
'''


@pytest.fixture(scope="module")
def mypy(tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("mypy-cache")
    spent = []

    def run(*files: str | Path) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache),
             "--no-error-summary", *map(str, files)],
            cwd=ROOT, capture_output=True, text=True, timeout=BUDGET * 2)
        spent.append(time.monotonic() - started)
        return result

    yield run
    print(f"mypy: {len(spent)} runs, {sum(spent):.1f}s ({', '.join(f'{s:.1f}' for s in spent)})")
    assert sum(spent) < BUDGET, f"mypy took {sum(spent):.1f}s, over the {BUDGET:.0f}s budget"


def test_the_client_modules_pass_mypy_strict(mypy) -> None:
    result = mypy(*TYPED)
    assert result.returncode == 0, result.stdout + result.stderr


def test_typed_user_code_is_accepted(mypy, tmp_path: Path) -> None:
    snippet = tmp_path / "user_good.py"
    snippet.write_text(GOOD)
    result = mypy(snippet)
    assert result.returncode == 0, result.stdout + result.stderr


def test_wrong_attributes_are_rejected(mypy, tmp_path: Path) -> None:
    snippet = tmp_path / "user_bad.py"
    snippet.write_text(BAD)
    result = mypy(snippet)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    expected = ['"ClusterStatus" has no attribute "leaderr"', '"Decision" has no attribute "slott"',
                # A no-op has no value: the type says so.
                'Incompatible return value type (got "bytes | None", expected "bytes")']
    for message in expected:
        assert message in out, out
    # Nothing else (a wrong attribute also makes its expression Any: "Returning Any").
    errors = [line for line in out.splitlines() if "error:" in line]
    assert all(any(m in line for m in [*expected, "Returning Any from function"])
               for line in errors), out


def test_py_typed_ships_with_the_package() -> None:
    """PEP 561: without the marker, mypy ignores an installed package's types."""
    import tomllib

    assert (ROOT / "paxosctl" / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["paxosctl"]


def test_the_package_exports_resolve_lazily() -> None:
    """Every name in `paxosctl.__all__` resolves, and importing the package
    imports none of the client modules (the CLI starts fast)."""
    code = ("import sys, paxosctl; "
            "loaded = [m for m in ('paxosctl.client', 'paxosctl.client.aio', 'paxosctl.client.datapath', "
            "'asyncio') if m in sys.modules]; "
            "assert not loaded, loaded; "
            "assert set(paxosctl.__all__) == {'__version__', *paxosctl._LAZY}; "
            "[getattr(paxosctl, n) for n in paxosctl.__all__]; "
            "from paxosctl import Client, AsyncClient, RequestFailed; "
            "from paxosctl.client import Client as C; from paxosctl.errors import RequestFailed as R; "
            "assert Client is C and RequestFailed is R; print(len(paxosctl.__all__))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
