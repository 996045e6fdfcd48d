"""The agents' protocol records, read over the data path (INFO op "protocol").

Every agent keeps a ring of protocol records (paxos_agents.runtime.
protocolrecords; paxos_agents.trace.records lists a record's fields). This
module asks the agents for them the way `paxosctl events` and `logs` ask for theirs (client.probe.survey:
Unix sockets, or TCP + mutual TLS with the cluster's client certificate,
so a cluster spread over hosts is read the same way); no supervisor and
no file of the state dir is needed beyond the endpoints.

    endpoints_of(file=None) -> Endpoints
        The data path of the cluster of manifest `file` (found as every
        command finds it when None): its endpoints.json when it runs here,
        else the manifest's placed TLS addresses. NotRunning when neither.

    agent_names(endpoints, given=()) -> list[str]
        `given` plus every member the answering agents name (acceptors too).

    collect(source, agents=None, since=None, timeout=ASK_SECONDS)
            -> dict[str, AgentRecords]
        Every record each agent still keeps after `since` (None or 0: all
        it keeps; an int: the same for every agent; a dict: per agent, a
        missing agent 0), paging until each has given all. `source` is an
        `Endpoints` or a manifest file path (str or Path); `agents`: names
        (None: every agent, `agent_names`). An agent that does not answer
        is in the result with `error` set and no records.

    follow(source, agents=None, interval=0.5, since=None, stop=None)
            -> Iterator[dict]
        The records every agent adds from now on (`since`: as `collect`,
        None: after the newest each has when `follow` is called, so only
        new ones; that first question is asked before it returns), polling
        every `interval` seconds with since = the last seq each gave. An
        agent that restarted (a new incarnation) is read from 0. Stops
        when `stop()` returns true (None: never; the caller breaks out).

`AgentRecords` has `agent`, `incarnation` (None if it never answered),
`records` (the format's dicts, oldest first), `last` (newest seq given or
kept), `first` (oldest seq it keeps), `missed` (records after `since`
had already left its ring: a slot whose records are gone says so), and
`error` ("" when it answered).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from paxos_agents.runtime.protocolrecords import MAX_SIZE as MAX_RING
from paxos_agents.runtime.records import PAGE

from ..client.probe import ASK_SECONDS, survey
from ..endpoints import Endpoints, from_manifest, read_endpoints
from ..errors import NotRunning

__all__ = ["AgentRecords", "agent_names", "collect", "endpoints_of", "follow"]

#: Pages asked of one agent per `collect` at most: the largest ring the
#: manifest allows (`paxos.protocol_records` <= 1,000,000), and some more for
#: what it records meanwhile. Pages come oldest first, so a bound below the
#: ring would leave out the newest records, the ones a trace wants.
MAX_PAGES = MAX_RING // PAGE + 4


@dataclass
class AgentRecords:
    """What one agent gave (see the module docstring)."""

    agent: str
    incarnation: int | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    last: int = 0
    first: int = 0
    missed: bool = False
    error: str = ""


def endpoints_of(file: str | Path | None = None) -> Endpoints:
    """The data path of the cluster of manifest `file` (see the module docstring)."""
    from ..discovery import find_manifest
    from ..layout import paths
    from ..manifest.load import load_manifest

    path = find_manifest(None if file is None else str(file))
    manifest = load_manifest(path)
    try:
        return read_endpoints(paths(manifest.state_dir)["run"], str(path))
    except NotRunning:
        placed = from_manifest(manifest, str(path))
        if placed is None:
            raise
        return placed


def _endpoints(source: Endpoints | str | Path) -> Endpoints:
    return source if isinstance(source, Endpoints) else endpoints_of(source)


def agent_names(endpoints: Endpoints, given: Iterable[str] = (),
                timeout: float = ASK_SECONDS) -> list[str]:
    """`given` (or the endpoints' proposers and learners) and every member
    an answering agent names, in that order."""
    names = tuple(dict.fromkeys(given)) or tuple(dict.fromkeys(
        (*endpoints.proposers, *endpoints.learners)))
    return [a.name for a in survey(endpoints, names, None, timeout)]


def _since_of(since: int | dict[str, int] | None, name: str) -> int:
    if isinstance(since, dict):
        return since.get(name, 0)
    return since or 0


def collect(source: Endpoints | str | Path, agents: Iterable[str] | None = None,
            since: int | dict[str, int] | None = None,
            timeout: float = ASK_SECONDS) -> dict[str, AgentRecords]:
    """Each agent's records after `since` (see the module docstring)."""
    endpoints = _endpoints(source)
    names = list(dict.fromkeys(agents)) if agents is not None else agent_names(endpoints)
    out = {name: AgentRecords(name) for name in names}
    todo = {name: _since_of(since, name) for name in names}
    for _ in range(MAX_PAGES):
        if not todo:
            break
        answers = []
        for after in sorted(set(todo.values())):
            answers += survey(endpoints, tuple(n for n, s in todo.items() if s == after),
                              {"op": "protocol", "since": after}, timeout, learn=False)
        asked, todo = todo, {}
        for answer in answers:
            got = out[answer.name]
            if not answer.answered:
                got.error = answer.error
                continue
            reply = answer.reply
            if got.incarnation is not None and reply["incarnation"] != got.incarnation:
                # It restarted between two pages: what it gives now is its new life.
                got.records.clear()
                got.incarnation, got.missed = reply["incarnation"], False
                todo[answer.name] = 0
                continue
            if got.incarnation is None:
                got.missed = reply["missed"]
            got.incarnation = reply["incarnation"]
            got.records += reply["items"]
            got.last, got.first = reply["last"], reply["first"]
            if len(reply["items"]) >= PAGE and reply["last"] > asked[answer.name]:
                todo[answer.name] = reply["last"]  # a full page: there is more
    return out


def follow(source: Endpoints | str | Path, agents: Iterable[str] | None = None,
           interval: float = 0.5, since: int | dict[str, int] | None = None,
           stop: Callable[[], bool] | None = None) -> Iterator[dict[str, Any]]:
    """The records every agent adds, as they come (see the module docstring)."""
    endpoints = _endpoints(source)
    names = list(dict.fromkeys(agents)) if agents is not None else agent_names(endpoints)
    incarnation: dict[str, int | None] = {}
    if since is None:
        first = collect(endpoints, names, {n: 1 << 62 for n in names})  # the newest seq only
        position = {n: r.last for n, r in first.items()}
        incarnation = {n: r.incarnation for n, r in first.items() if not r.error}
    else:
        position = {n: _since_of(since, n) for n in names}
    return _follow(endpoints, names, interval, position, incarnation, stop)


def _follow(endpoints: Endpoints, names: list[str], interval: float, position: dict[str, int],
            incarnation: dict[str, int | None],
            stop: Callable[[], bool] | None) -> Iterator[dict[str, Any]]:
    while stop is None or not stop():
        got = collect(endpoints, names, position)
        for name, part in got.items():
            if part.error:
                continue
            known = incarnation.get(name)
            if known is not None and part.incarnation != known and position[name]:
                # A new incarnation numbers from 1 again: read it from 0.
                incarnation[name] = part.incarnation
                position[name] = 0
                part = collect(endpoints, [name], 0)[name]
                if part.error:
                    continue
            incarnation[name] = part.incarnation
            position[name] = part.last
            yield from part.records
        if stop is not None and stop():
            return
        time.sleep(interval)
