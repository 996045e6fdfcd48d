"""Every agent's own Prometheus scrape, with no supervisor: `scrape_all`.

A standalone agent (`paxosctl agent NAME`) serves /metrics over plain
HTTP (paxosctl.standalone.health) where the manifest places it
(`Placement.http`: `[transport] http_port` by host or name template), or,
when the manifest does not place it, where it says in `run/NAME.http`
(written by the agent when its probes listen: agents in one state dir).
The agents scraped are those `probe.survey` finds: the manifest's and any
member an answering agent names. All are fetched at once, each with the
same deadline; one that does not answer is reported with its reason.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..endpoints import Endpoints
from .probe import ASK_SECONDS, survey

if TYPE_CHECKING:
    from ..manifest import Manifest

#: Bytes of one agent's scrape read at most (a scrape is tens of KiB).
MAX_SCRAPE_BYTES = 8 << 20


@dataclass(frozen=True, slots=True)
class Scrape:
    """Agent `agent`'s /metrics text, fetched from `url`, or why not (`error`)."""

    agent: str
    url: str
    text: str = ""
    error: str = ""


def http_address(manifest: "Manifest", run_dir, agent: str) -> str | None:
    """Where agent `agent`'s probes listen ("host:port"), or None if unknown."""
    if manifest.transport.tls:
        try:
            placed = manifest.transport.placement(agent)
        except ValueError:
            placed = None
        if placed is not None and placed.placed:
            # `http` is where the probes bind (every address, under a
            # template): dial them at the agent's own address's host.
            return f"{placed.address.rpartition(':')[0]}:{placed.http.rpartition(':')[2]}"
    try:
        published = (run_dir / f"{agent}.http").read_text().strip()
    except OSError:
        return None
    host, _, port = published.rpartition(":")
    # An agent listening on every address is scraped on this host's loopback.
    return f"{'127.0.0.1' if host in ('0.0.0.0', '::', '[::]') else host}:{port}"


def scrape_all(manifest: "Manifest", endpoints: Endpoints,
               timeout: float = ASK_SECONDS) -> list[Scrape]:
    """One `Scrape` per agent the cluster has (`survey`), in its order."""
    names = [a.name for a in survey(endpoints, tuple(a.name for a in manifest.agents),
                                    timeout=timeout)]
    with ThreadPoolExecutor(max_workers=min(16, len(names) or 1)) as pool:
        return list(pool.map(lambda n: _scrape(n, http_address(manifest, endpoints.run_dir, n),
                                               timeout), names))


def _scrape(agent: str, address: str | None, timeout: float) -> Scrape:
    if address is None:
        return Scrape(agent, "", error="the manifest does not place its probes and it published "
                                        "no run/" + agent + ".http here")
    url = f"http://{address}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return Scrape(agent, url, response.read(MAX_SCRAPE_BYTES).decode("utf-8", "replace"))
    except urllib.error.HTTPError as e:
        return Scrape(agent, url, error=f"HTTP {e.code}")
    except (OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        return Scrape(agent, url, error=str(reason)[:200])
