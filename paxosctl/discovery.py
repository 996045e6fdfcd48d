"""Which manifest a command acts on, when the operator names none.

The order docker compose uses: the file given with `-f/--file` (or as
`up`'s argument); else the path in the environment variable
`PAXOSCTL_FILE`; else `cluster.toml` in the current folder, then in each
parent folder up to the root. So `paxosctl status` works from anywhere
inside a project, and a shell can pin one cluster for a session.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import NotRunning, UsageError

#: The manifest's file name searched for in the current and parent folders.
DEFAULT_NAME = "cluster.toml"
#: The environment variable naming the manifest when -f is not given.
ENV_VAR = "PAXOSCTL_FILE"


def find_manifest(given: str | None, *, cwd: Path | None = None,
                  environ: dict[str, str] | os._Environ[str] | None = None) -> str:
    """The manifest path to use, as the operator would write it: `given`
    as is; else $PAXOSCTL_FILE; else the nearest `cluster.toml` from `cwd`
    upwards (relative to `cwd` when it is inside it).

    Raises UsageError (exit 2) when PAXOSCTL_FILE names a missing file, and
    NotRunning (exit 1) when no manifest is found anywhere.
    """
    if given is not None:
        return given
    environ = os.environ if environ is None else environ
    named = environ.get(ENV_VAR)
    if named:
        if not Path(named).is_file():
            raise UsageError(f"{ENV_VAR}={named}: no such file",
                             hint=f"unset {ENV_VAR}, or point it at a cluster manifest")
        return named
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / DEFAULT_NAME
        if candidate.is_file():
            return DEFAULT_NAME if folder == here else str(candidate)
    raise NotRunning(f"no {DEFAULT_NAME} in {here} or any folder above it",
                     hint=f"pass the manifest with -f/--file PATH, or set {ENV_VAR}")
