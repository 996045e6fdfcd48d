"""The Containerfile, checked without building it (no container engine
here): what it copies exists in the checkout and is what the package
needs, the user it runs as is the one the rendered pods run as, and it
leaves the command to the pod."""

from __future__ import annotations

import re
import shlex
import tomllib

from rendering import ROOT

from paxosctl.manifest import load_manifest
from paxosctl.render import k8s

CONTAINERFILE = ROOT / "Containerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", CONTAINERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_it_builds_from_python_3_11_slim_and_copies_what_the_package_is_made_of():
    steps = instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    copied = []
    for word, rest in steps:
        if word == "COPY":
            *sources, _target = shlex.split(rest)
            copied += sources
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: not in the checkout"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    # Every package the build includes, and the files pyproject.toml names, are copied.
    assert {p.rstrip("*") for p in packages} <= set(copied)
    assert {"pyproject.toml", project["project"]["readme"]} <= set(copied)
    assert project["project"]["scripts"]["paxosctl"]  # pip puts paxosctl on PATH
    runs = [rest for word, rest in steps if word == "RUN"]
    assert any(r.startswith("pip install /src") for r in runs)


def test_its_user_is_the_pods_and_owns_the_state_folder(tmp_path):
    steps = instructions()
    [user] = [rest for word, rest in steps if word == "USER"]
    uid, _, gid = user.partition(":")
    (tmp_path / "c.toml").write_text('[cluster]\nname = "c"\n[agents.r]\nrole = "replica"\nreplicas = 3\n')
    objects = k8s.cluster_objects(load_manifest(tmp_path / "c.toml"), k8s.Options())
    pod = [o for o in objects if o["kind"] == "StatefulSet"][0]["spec"]["template"]["spec"]
    assert int(uid) == pod["securityContext"]["runAsUser"] == pod["containers"][0]["securityContext"]["runAsUser"]
    assert int(gid) == pod["securityContext"]["runAsGroup"] == pod["securityContext"]["fsGroup"]
    useradd = " ".join(rest for word, rest in steps if word == "RUN" and "useradd" in rest)
    assert f"--uid {uid}" in useradd
    assert f"install -d -o {uid} -g {gid} -m 0700 /var/lib/paxosctl" in useradd
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["data"] == "/var/lib/paxosctl"


def test_the_pod_gives_the_command():
    steps = instructions()
    assert not [rest for word, rest in steps if word == "ENTRYPOINT"]
