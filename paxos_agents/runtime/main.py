"""`agent_main`: the target of each agent's `multiprocessing.Process`;
`serve`: one agent's start and run, for any control channel (control.py),
which `paxosctl agent` runs without a supervisor.

The start order matters: open the store, count this start in it (its
incarnation, committed with fsync), and only then build the endpoint that
listens and dials with that number. An agent whose store is new is not
admitted yet (admission.py): its peers decide, and a refusal ends it with
`frames.EXIT_NEEDS_OPERATOR` and one line.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import time
from multiprocessing.connection import Connection

from . import frames
from .admission import AdmissionRefused
from .agent import Agent
from .control import Control, PipeControl
from .faults import storage_fault
from .records import Records, event
from .spec import AgentSpec
from .storage import SqliteStorage, StorageError


def _setup_logging(spec: AgentSpec) -> None:
    handler = logging.handlers.RotatingFileHandler(
        spec.log_path, maxBytes=spec.log_max_bytes, backupCount=spec.log_backups)
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s {spec.name}[%(process)d] %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def agent_main(spec: AgentSpec, inbox: Connection, outbox: Connection) -> None:
    """Run one agent until SIGTERM or until its supervisor goes away (`serve`)."""
    os.umask(0o077)  # its state and log are private: files 0600, folders 0700
    os.makedirs(os.path.dirname(spec.log_path), exist_ok=True)
    _setup_logging(spec)
    serve(spec, PipeControl(inbox, outbox))


def serve(spec: AgentSpec, control: Control) -> None:
    """Open the agent's store and run it until stopped (logging set up by the caller).

    Exits with `frames.EXIT_NEEDS_OPERATOR` if its state file cannot be
    read or written, its certificate would be refused, or its peers refuse
    to admit a new store (it lost its state): an acceptor that started
    empty would break agreement, and a restart fails the same way.
    """
    os.umask(0o077)  # its state and log are private: files 0600, folders 0700
    records = Records(spec.name).install()  # its recent lines and events, for INFO frames
    log = logging.getLogger("paxos_agents.agent")
    log.info("starting (roles: %s)", ", ".join(sorted(spec.membership.roles(spec.name))))
    stop_loading = control.loading(spec.heartbeat_seconds)
    if spec.tls is not None:
        problem = _check_certificate(spec)
        if problem is not None:
            stop_loading()
            _fatal(control, log, problem)
            sys.exit(frames.EXIT_NEEDS_OPERATOR)
    try:
        _refuse_to_forget(spec, log)
        storage = SqliteStorage(spec.state_path, fault=storage_fault(spec.name, spec.state_path),
                                identity=(spec.cluster_id, spec.member_id) if spec.member_id else None)
        incarnation = storage.start_incarnation()  # fsynced before it listens or dials
        log.info("incarnation %d%s", incarnation,
                 "" if storage.admitted else " of a new store (admission.py decides)",
                 extra=event("started"))
    except StorageError as e:
        stop_loading()
        _fatal(control, log, f"cannot open state: {e}")
        sys.exit(frames.EXIT_NEEDS_OPERATOR)
    try:
        try:
            agent = Agent(spec, control, storage, records=records)
        finally:
            stop_loading()  # before anything else writes to the outbox
        agent.run()
    except StorageError as e:
        _fatal(control, log, f"cannot persist state, stopping before answering: {e}")
        sys.exit(frames.EXIT_NEEDS_OPERATOR)
    except AdmissionRefused as e:
        _fatal(control, log, str(e))
        sys.exit(frames.EXIT_NEEDS_OPERATOR)
    except Exception:
        log.exception("crashed")
        raise
    finally:
        storage.close()


def _check_certificate(spec: AgentSpec) -> str | None:
    """The one line (file and fix) if this agent's TLS files would be
    refused (`identity.check_files`); None if they are good."""
    from .identity import CertificateProblem, Identity, check_files

    tls = spec.tls
    assert tls is not None
    try:
        check_files(tls.cert, tls.key, tls.ca, Identity(spec.cluster_id, "agent", spec.name), time.time())
    except (CertificateProblem, ValueError) as e:
        return f"cannot listen over TLS: {e}"
    return None


def _refuse_to_forget(spec: AgentSpec, log: logging.Logger) -> None:
    """Raise StorageError if this member ran before and its state file is gone.

    An acceptor that starts empty may vote against what it promised, and a
    proposer may reuse a ballot round: either can undo a chosen value. A
    learner may start empty: it copies the decided log from a peer.
    This is the second guard, from the supervisor's registry on this host;
    the first is the agent's peers (admission.py), which also hold when
    the registry went with the disk.
    """
    if not spec.has_run or os.path.lexists(spec.state_path):
        return
    roles = spec.membership.roles(spec.name)
    if roles == frozenset({"learner"}):
        log.warning("state file %s is missing: starting empty, copying the decided log "
                    "from peer learners", spec.state_path)
        return
    raise StorageError(
        f"{spec.state_path} is missing, but {spec.name} (member {spec.member_id}) has run here "
        "before: starting empty could undo its promises and votes; put the file back "
        f"(or replace the member: paxosctl replace {spec.name})")


def _fatal(control: Control, log: logging.Logger, message: str) -> None:
    log.error("%s", message, extra=event("refused"))
    control.fatal(message)
