"""`python -m paxosctl.daemon MANIFEST`: the detached supervisor behind `up -d`.

`paxosctl up -d` starts this in a new session with its output going to
state_dir/logs/supervisor.log, then waits on the control socket until the
cluster serves.
"""

from __future__ import annotations

import logging
import signal
import sys

from .errors import PaxosctlError
from .manifest import load_manifest
from .layout import paths
from .supervisor import Supervisor


def main(argv: list[str]) -> int:
    manifest = load_manifest(argv[0])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True,
                        format="%(asctime)s supervisor %(levelname)s %(message)s")
    try:
        supervisor = Supervisor(manifest)
    except PaxosctlError as e:  # e.g. an unreadable member registry: one line, no traceback
        logging.getLogger("paxosctl").error("%s", e)
        return 1
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    logging.getLogger("paxosctl").info("supervisor for %s (log %s)", manifest.path,
                                        paths(manifest.state_dir)["log"])
    supervisor.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
