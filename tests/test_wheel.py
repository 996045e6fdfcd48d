"""The wheel carries the whole package: every file of `paxosctl/` and
`paxos_agents/` that git tracks, the page `paxosctl ui` serves
(`ui/static/`, read with importlib.resources) and `py.typed` included.

An editable install (the tests' own) reads the source tree, so a file
missing from `[tool.setuptools.package-data]` breaks only a real install:
this builds the wheel from a copy of the tree, as `pip install .` would.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("paxosctl", "paxos_agents")


def _tracked() -> list[str]:
    listed = subprocess.run(["git", "ls-files", *PACKAGES], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    return [line for line in listed.stdout.splitlines() if line]


def test_the_wheel_holds_every_tracked_file_of_the_packages(tmp_path):
    tracked = _tracked()
    assert "paxosctl/ui/static/index.html" in tracked and "paxosctl/py.typed" in tracked
    # A copy: an in-tree build would leave build/ and *.egg-info in the checkout.
    source = tmp_path / "source"
    for name in (*tracked, "pyproject.toml", "README.md"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
         str(source)], capture_output=True, text=True, timeout=240)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("paxosctl-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        held = set(archive.namelist())
    missing = [name for name in tracked if name not in held]
    assert not missing, f"{wheel.name} lacks {missing}"
