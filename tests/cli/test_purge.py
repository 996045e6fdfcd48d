"""`down --purge` deletes what the cluster made and nothing of the operator's
(issue 20, probe 4), on real clusters and on a state dir of the previous
release (tests/data/v3_state_dir.tar.gz).

- the footprint (created.json): with `state_dir = "."` the project's own
  logs/app.log, state/mydata.json and run/app.pid survive purge, and the
  folders the project made keep their mode through up, down and purge;
- the derived footprint: a state dir with no record (the previous
  release's) loses the cluster's files by name and keeps the operator's,
  whether purged at once or after one `up` of this release;
- purge's per-file error: a file it cannot delete is reported, not raised.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from clusters import ClusterFactory, describe, manifest_text

from paxosctl.supervisor.footprint import Footprint
from paxosctl.supervisor.purge import NOT_EMPTY, NOT_MADE, purge

DATA = Path(__file__).resolve().parents[1] / "data"

#: The operator's files, where issue 20's probe put them, and their contents.
OPERATORS = {"logs/app.log": "app log\n", "state/mydata.json": '{"mine": true}\n',
             "run/app.pid": "4242\n"}


def plant(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def tree(folder: Path) -> set[str]:
    """Every file under `folder` (relative paths), folders left out."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir()}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_purge_with_the_project_folder_as_state_dir_keeps_the_projects_files(
        make_cluster: ClusterFactory) -> None:
    cluster = make_cluster("replicas", start=False)
    project = cluster.dir
    cluster.manifest.write_text(manifest_text("replicas", state_dir="."))
    cluster.state_dir = project
    plant(project, OPERATORS)
    for folder in (project, project / "logs", project / "state", project / "run"):
        folder.chmod(0o755)
    before = tree(project)  # cluster.toml and the operator's files

    cluster.up()
    cluster.run_ok("propose", "kept in the cluster's store")
    assert {"state/replica-0.db", "logs/replica-0.log", "cluster.json",
            "created.json"} <= tree(project)
    cluster.down()
    # Neither up nor down changed the mode of a folder the cluster did not make.
    assert {name: oct(mode(project / name)) for name in (".", "logs", "state", "run")} == \
        {name: oct(0o755) for name in (".", "logs", "state", "run")}

    result = cluster.run("down", "--purge")
    assert result.returncode == 0, describe(result)
    assert tree(project) == before, describe(result)
    for name, text in OPERATORS.items():
        assert (project / name).read_text() == text
    assert all(mode(project / name) == 0o755 for name in (".", "logs", "state", "run"))
    # It says what it kept and why, one line per reason.
    assert "entries the cluster did not write" in result.stderr, describe(result)
    assert "logs/app.log" in result.stderr or "cluster.toml" in result.stderr


@pytest.mark.parametrize("first", ["purge", "up-down-purge"],
                         ids=["purged-as-left", "after-one-up-of-this-release"])
def test_a_state_dir_of_the_previous_release_is_purged_by_name(
        make_cluster: ClusterFactory, first: str) -> None:
    """No created.json: what the cluster made is derived from the names it uses."""
    cluster = make_cluster("roles", name="v3", start=False)
    sd = cluster.dir / "sd"
    cluster.manifest.write_text(manifest_text("roles", "v3", state_dir="sd",
                                              health={"heartbeat_timeout": "120s"}))
    cluster.state_dir = sd
    with tarfile.open(DATA / "v3_state_dir.tar.gz") as tar:
        tar.extractall(sd, filter="data")  # state/*.db, cluster.json, members.json
    # What else the previous release left there (the archive keeps only the
    # above), by the names it used:
    plant(sd, {"supervisor.lock": "", "logs/supervisor.log": "x\n", "logs/supervisor.log.1": "x\n",
               "logs/acceptor-0.log": "x\n", "logs/learner-1.log.3": "x\n",
               "state/acceptor-1.db-wal": "", "run/endpoints.json": "{}\n"})
    plant(sd, {**OPERATORS, "notes.txt": "mine\n", "state/backup.db": "not a store\n"})
    if first == "up-down-purge":
        cluster.up()
        cluster.down()
    result = cluster.run("down", "--purge")
    assert result.returncode == 0, describe(result)
    assert tree(sd) == {*OPERATORS, "notes.txt", "state/backup.db"}, describe(result)
    assert "folders the cluster made, which hold files it did not write" in result.stderr


@contextlib.contextmanager
def undeletable(folder: Path) -> Iterator[None]:
    """Nothing in `folder` can be deleted: 0555, and for root (whom
    permission bits do not stop) immutable (chattr +i)."""
    folder.chmod(0o555)
    chattr = shutil.which("chattr") if os.geteuid() == 0 else None
    if os.geteuid() == 0 and (chattr is None or subprocess.run(
            [chattr, "+i", str(folder)], capture_output=True).returncode):
        folder.chmod(0o700)
        pytest.skip("running as root, and chattr +i is not available here")
    try:
        yield
    finally:
        if chattr is not None:
            subprocess.run([chattr, "-i", str(folder)], check=True)
        folder.chmod(0o700)


def test_a_file_purge_cannot_delete_is_reported_not_raised(tmp_path: Path) -> None:
    """Guards purge's per-file error: one undeletable file is kept with its
    reason; the rest of the cluster's files still go."""
    footprint = Footprint(tmp_path, folders={"logs", "state"}, agents={"a-0"})
    footprint.save()
    plant(tmp_path, {"state/a-0.db": "x", "logs/a-0.log": "x", "cluster.json": "{}"})
    with undeletable(tmp_path / "logs"):
        removed, kept = purge(tmp_path)
    assert {p.relative_to(tmp_path).as_posix() for p in removed} == \
        {"state/a-0.db", "cluster.json", "created.json", "state"}
    assert [(k.path.relative_to(tmp_path).as_posix(), k.why.split(":")[0]) for k in kept] == \
        [("logs/a-0.log", "cannot delete it"), ("logs", NOT_EMPTY), (".", NOT_MADE)]
