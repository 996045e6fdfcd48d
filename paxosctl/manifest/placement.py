"""Where each agent listens: `[transport]`'s placement keys and the one
resolved view of them, `TransportSettings.placement(agent)`.

Precedence, for agent A (first that applies):

1. `[transport.addresses] A = "host:port"`: that address;
2. a `[transport.hosts.<host>]` whose `agents` lists A: the host's
   `address`, at port `port + i` where i is A's position in that list;
3. `name_template`: the name it gives A, at `port`;
4. none of them: 127.0.0.1 at a free port (published in `run/<A>.addr`).

The probe/metrics port of a standalone agent (`paxosctl agent --http`)
follows the same rule from `http_port`: `http_port + i` on a host, the same
offset among the `[transport.addresses]` agents that share a host name,
`http_port` under a template (one agent per name), any free port otherwise.

An agent listens on its address's host when it is an IP literal, else on
0.0.0.0 (addresses.listen_host says why). The loader (transport.py) checks
that every manifest agent's placement is valid; agents that `scale` adds
later (names not in the manifest) follow the template when there is one.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .addresses import is_dns_name, join_address, listen_host, split_listen

#: The placeholders `name_template` may use, in the order the errors list them.
TEMPLATE_FIELDS = ("name", "group", "index", "namespace")
TEMPLATE_ALLOWED = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
#: The default data port and probe/metrics port of an agent placed by host or template.
DEFAULT_PORT = 7100
DEFAULT_HTTP_PORT = 9466
DEFAULT_NAMESPACE = "default"
#: Where an agent the manifest does not place listens: any free port on loopback.
UNPLACED = "127.0.0.1:0"


@dataclass(frozen=True, slots=True)
class Host:
    """`[transport.hosts.<name>]`: a machine, its `address` (an IP or a DNS
    name, no port) and the agents it runs, in the order they get ports."""

    name: str
    address: str
    agents: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one agent is, resolved (see the module docstring for the rule).

    - `address`: "host:port" its peers and clients dial;
    - `listen`: "host:port" it binds (port 0: any free port);
    - `http`: "host:port" of a standalone agent's /healthz, /readyz, /metrics;
    - `host`: the `[transport.hosts]` name that placed it, None otherwise;
    - `by`: what placed it: "address", "host", "template" or "default".
    """

    address: str
    listen: str
    http: str
    host: str | None = None
    by: str = "default"

    @property
    def placed(self) -> bool:
        """Did the manifest say where it is (False: a free loopback port)?"""
        return self.by != "default"


def template_fields(template: str) -> list[str]:
    """The placeholders `template` uses, in order; ValueError (one line) for
    a malformed one: unbalanced braces, a format spec or a conversion."""
    found = []
    for _, field_name, spec, conversion in string.Formatter().parse(template):
        if field_name is None:
            continue
        if spec or conversion:
            raise ValueError(f"{{{field_name}{'!' + conversion if conversion else ''}"
                             f"{':' + spec if spec else ''}}} has a conversion or format spec")
        found.append(field_name)
    return found


def split_agent_name(agent: str) -> tuple[str, int]:
    """(group, index) of "<group>-<index>": every agent's name has that shape
    (the loader builds them so, and `scale` names new ones the same way)."""
    group, _, index = agent.rpartition("-")
    if not group or not index.isdigit():
        raise ValueError(f"agent name {agent!r} is not <group>-<index>")
    return group, int(index)


def template_name(template: str, agent: str, namespace: str) -> str:
    """What `template` gives `agent`, valid DNS name or not."""
    group, index = split_agent_name(agent)
    return template.format(name=agent, group=group, index=index, namespace=namespace)


def render_template(template: str, agent: str, namespace: str) -> str:
    """The DNS name `template` gives `agent`; ValueError if it is not a valid one."""
    name = template_name(template, agent, namespace)
    if not is_dns_name(name):
        raise ValueError(f"gives {name!r} for agent {agent}, not a valid DNS name")
    return name


@dataclass(frozen=True, slots=True)
class TransportSettings:
    """[transport]: Unix sockets under state_dir (the default), or TCP with
    mutual TLS 1.3 (`kind = "tls"`) with the certificates in `certs` (a
    folder, relative to the manifest's). With TLS, agents are placed by
    `addresses`, `hosts` or `name_template` (the module docstring gives the
    precedence), else on 127.0.0.1 at a free port.

    - `port` = 7100: the first data port of a host, every templated agent's port;
    - `http_port` = 9466: the same for a standalone agent's probe/metrics
      port (`paxosctl agent --http` reads it as `http_port` here);
    - `namespace` = "default": the `{namespace}` of the template.
    """

    kind: str = "unix"
    certs: str = "certs"
    #: (agent name, "host:port") for the agents `[transport.addresses]` places.
    addresses: tuple[tuple[str, str], ...] = ()
    port: int = DEFAULT_PORT
    http_port: int = DEFAULT_HTTP_PORT
    #: The `[transport.hosts.*]` tables, in the file's order (`hosts()` for who runs where).
    host_tables: tuple[Host, ...] = ()
    name_template: str | None = None
    namespace: str = DEFAULT_NAMESPACE

    @property
    def tls(self) -> bool:
        return self.kind == "tls"

    def certs_dir(self, manifest_path: Path) -> Path:
        """The certificates folder, absolute."""
        return (manifest_path.parent / self.certs).resolve()

    def placement(self, agent: str) -> Placement:
        """Where `agent` is; any agent name, in the manifest or added by `scale`.
        ValueError only for a name the template makes invalid (the loader
        has checked every name in the manifest)."""
        given = dict(self.addresses)
        if agent in given:
            host, port = split_listen(given[agent])
            sharing = [a for a, address in self.addresses if split_listen(address)[0] == host]
            return _placed(host, port, self.http_port + sharing.index(agent), by="address")
        for h in self.host_tables:
            if agent in h.agents:
                i = h.agents.index(agent)
                return _placed(h.address, self.port + i, self.http_port + i, by="host", host=h.name)
        if self.name_template is not None:
            name = render_template(self.name_template, agent, self.namespace)
            return _placed(name, self.port, self.http_port, by="template")
        return Placement(address=UNPLACED, listen=UNPLACED, http=UNPLACED)

    def hosts(self) -> Mapping[str, tuple[str, ...]]:
        """Host name -> the agents it runs (those `[transport.addresses]` does
        not place elsewhere), in the file's order of hosts and of their lists."""
        given = dict(self.addresses)
        return {h.name: tuple(a for a in h.agents if a not in given) for h in self.host_tables}


def _placed(address: str, port: int, http_port: int, *, by: str, host: str | None = None) -> Placement:
    """A Placement dialled at `address`, bound where `listen_host` says."""
    bind = listen_host(address)
    return Placement(address=join_address(address, port), listen=join_address(bind, port),
                     http=join_address(bind, http_port), host=host, by=by)
