"""A process's own view of the file system on a namespace host: bind mounts
in a private mount namespace, as a container runtime mounts a pod's
volumes or systemd a unit's paths (not a test module).

`wrap(argv, ...)` is the command line to give `Host.popen`/`keep_running`:

    unshare --mount --uts --propagation private sh -c '<mounts>; cd DIR; exec env -i ... "$@"' sh ARGV...

so each bind mount (read-only ones remounted `ro`) exists only for that
process and what it starts; the machine's own mounts never change. The
program then runs with exactly the environment given (`env -i`: nothing
of the test run's), in the working directory given, under the host name
given (its own UTS namespace).

A bind mount needs its mount point to exist on the machine (a mount
namespace is a view of the same file systems). `MOUNT_POINTS.hold(...)`
creates the missing ones, counting holders in this process, and
`release` removes those it made once no holder is left; a folder or file
that was there before is never touched. Two test runs at once on one
machine could see each other's mount points come and go: they are only
ever made where nothing was, and removed only if still empty.
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Bind:
    """`source` (a machine path) seen at `target` inside the process."""

    source: Path
    target: Path
    read_only: bool = False


def wrap(argv: Sequence[str], binds: Sequence[Bind], *, env: Mapping[str, str], cwd: str = "/",
         hostname: str | None = None, before: Sequence[str] = ()) -> list[str]:
    """The command line running `argv` with `binds` mounted, `env` as its whole
    environment (argv[0] is looked up on env's PATH), in `cwd`.

    `before`: shell commands run first, on the machine's paths (truncating
    a file the engine reads after the process ends, say)."""
    steps = list(before)
    if hostname is not None:
        steps.append(f"hostname {shlex.quote(hostname)}")
    for bind in binds:
        target = shlex.quote(str(bind.target))
        steps.append(f"mount --bind {shlex.quote(str(bind.source))} {target}")
        if bind.read_only:  # a bind mount takes `ro` only on a remount
            steps.append(f"mount -o remount,bind,ro {target}")
    steps.append(f"cd {shlex.quote(cwd)}")
    assignments = " ".join(shlex.quote(f"{key}={value}") for key, value in env.items())
    steps.append(f'exec env -i {assignments} "$@"')
    script = "set -e\n" + "\n".join(steps)
    flags = ["--mount", "--propagation", "private"] + (["--uts"] if hostname is not None else [])
    return ["unshare", *flags, "sh", "-c", script, "sh", *map(str, argv)]


class MountPoints:
    """Mount points made where the machine has none, removed when their last holder lets go."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: dict[Path, int] = {}  # path made here -> holders

    def hold(self, targets: Iterable[tuple[Path, bool]]) -> list[Path]:
        """Make sure each (path, is_file) exists, making what is missing (a
        file for an is_file path, folders above it); the paths of ours this
        holder now depends on, for `release`."""
        held: list[Path] = []
        with self._lock:
            for target, is_file in targets:
                for path in [*reversed(target.parents), target]:  # from the root down
                    if path in self._made:
                        self._made[path] += 1
                    elif path.exists() or path.is_symlink():
                        continue  # the machine's own
                    else:
                        if path == target and is_file:
                            path.touch()
                        else:
                            path.mkdir()
                        self._made[path] = 1
                    held.append(path)
        return held

    def release(self, held: Sequence[Path]) -> None:
        """Let go of what `hold` returned: each path of ours with no holder left
        is removed (a folder only if empty), deepest first."""
        with self._lock:
            for path in reversed(held):
                self._made[path] -= 1
                if self._made[path]:
                    continue
                del self._made[path]
                try:
                    path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
                except OSError:
                    pass  # something else put files there since: theirs to keep


#: Every mount point this test process made on the machine.
MOUNT_POINTS = MountPoints()
