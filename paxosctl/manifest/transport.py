"""Loading `[transport]`: the kind, the certificates folder, and where the
agents are placed (`addresses`, `hosts`, `name_template`; placement.py gives
the precedence and resolves them). Every manifest agent's placement is
checked here, so `TransportSettings.placement` cannot fail for one of them."""

from __future__ import annotations

import re
from typing import Any

from .addresses import DNS_LABEL, DNS_NAME_ALLOWED, host_problem, ip_literal, is_dns_name, split_listen
from .messages import did_you_mean, show
from .model import TRANSPORTS
from .placement import (DEFAULT_HTTP_PORT, DEFAULT_NAMESPACE, DEFAULT_PORT, TEMPLATE_ALLOWED, TEMPLATE_FIELDS,
                        Host, TransportSettings, template_fields, template_name)
from .reader import Reader

KEYS = ("kind", "certs", "addresses", "port", "http_port", "hosts", "name_template", "namespace")
#: A `[transport.hosts.<name>]` name: what `render systemd --host NAME` will be given.
HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
HOST_NAME_ALLOWED = 'a letter or digit, then up to 62 letters, digits, ".", "_" or "-"'
PLACING = ("addresses", "hosts", "name_template")


def load_transport(reader: Reader, table: dict[str, Any], agents: tuple[str, ...]) -> TransportSettings:
    reader.no_unknown_keys(("transport",), table, KEYS)
    kind = table.get("kind", "unix")
    if kind not in TRANSPORTS:
        raise reader.fail(("transport", "kind"), f"unknown transport {show(kind)}; allowed: "
                                                 + ", ".join(f'"{t}"' for t in TRANSPORTS))
    certs = table.get("certs", "certs")
    if not isinstance(certs, str) or not certs or "\0" in certs:
        raise reader.fail(("transport", "certs"), f"expected a folder path, got {show(certs)}; "
                                                  'for example "certs" (beside this file)')
    given = reader.table(("transport", "addresses"), table.get("addresses"))
    addresses = []
    for agent, address in given.items():
        keys = ("transport", "addresses", agent)
        if agent not in agents:
            raise reader.fail(keys, "not an agent of this manifest; allowed: " + ", ".join(agents),
                              hint=did_you_mean(agent, agents))
        if not isinstance(address, str):
            raise reader.fail(keys, f'expected "host:port", got {show(address)}')
        try:
            split_listen(address)
        except ValueError as exc:
            raise reader.fail(keys, str(exc)) from None
        addresses.append((agent, address))
    for key in PLACING:
        if key in table and kind != "tls":
            header = f"[transport.{key}]" if key != "name_template" else "name_template"
            raise reader.fail(("transport", key), 'agents are placed only with kind = "tls"; '
                                                  f'allowed: remove {header}, or set kind = "tls"')
    port = reader.integer(("transport", "port"), table.get("port", DEFAULT_PORT), 1, 65535)
    http_port = reader.integer(("transport", "http_port"), table.get("http_port", DEFAULT_HTTP_PORT),
                               1, 65535)
    hosts = load_hosts(reader, reader.table(("transport", "hosts"), table.get("hosts")), agents)
    template, namespace = load_template(reader, table, agents)
    settings = TransportSettings(kind=kind, certs=certs, addresses=tuple(addresses), port=port,
                                 http_port=http_port, host_tables=hosts, name_template=template,
                                 namespace=namespace)
    check_ports(reader, settings, table)
    check_distinct(reader, settings, agents)
    return settings


def load_hosts(reader: Reader, table: dict[str, Any], agents: tuple[str, ...]) -> tuple[Host, ...]:
    """`[transport.hosts.<name>]`: address and agents; an agent on one host
    at most, once; one host per address."""
    hosts: list[Host] = []
    placed: dict[str, str] = {}      # agent -> host
    by_address: dict[str, str] = {}  # canonical address -> host
    for name, body in table.items():
        keys = ("transport", "hosts", name)
        if not HOST_NAME.fullmatch(name):
            raise reader.fail(keys, f"invalid host name; allowed: {HOST_NAME_ALLOWED}")
        body = reader.table(keys, body)
        reader.no_unknown_keys(keys, body, ("address", "agents"))
        for required in ("address", "agents"):
            if required not in body:
                example = 'address = "192.0.2.1"' if required == "address" else 'agents = ["acceptor-0"]'
                raise reader.fail(keys + (required,), f"missing required key; add {example}")
        address = body["address"]
        if not isinstance(address, str):
            raise reader.fail(keys + ("address",), f"expected an IP address or a DNS name, got {show(address)}")
        problem = host_problem(address)
        if problem is not None:
            hint = " (the port comes from transport.port)" if ":" in address and ip_literal(address) is None else ""
            raise reader.fail(keys + ("address",), problem + hint)
        literal = ip_literal(address)
        canonical = str(literal) if literal is not None else address.lower()
        if canonical in by_address:
            raise reader.fail(keys + ("address",), f"{show(address)} is host {by_address[canonical]}'s "
                                                   "address too; allowed: one host per address")
        by_address[canonical] = name
        names = body["agents"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise reader.fail(keys + ("agents",), f"expected a list of agent names, got {show(names)}")
        groups = {a.rpartition("-")[0] for a in agents}
        for agent in names:
            group, _, index = agent.rpartition("-")
            if agent not in agents and not (group in groups and index.isdigit()):
                # (a `<group>-<index>` beyond the group's count: a name `scale` adds,
                # placed before the change: paxosctl scale refuses an unplaced one)
                raise reader.fail(keys + ("agents",), f"no agent {show(agent)}; allowed: " + ", ".join(agents),
                                  hint=did_you_mean(agent, agents))
            if agent in placed:
                where = "this host" if placed[agent] == name else f"host {placed[agent]}"
                raise reader.fail(keys + ("agents",), f"agent {agent} is placed twice (also on {where}); "
                                                      "allowed: each agent on one host, once")
            placed[agent] = name
        hosts.append(Host(name=name, address=address, agents=tuple(names)))
    return tuple(hosts)


def load_template(reader: Reader, table: dict[str, Any], agents: tuple[str, ...]) -> tuple[str | None, str]:
    """`name_template` and `namespace`: every placeholder known, and a valid
    DNS name of its own for every agent."""
    namespace = table.get("namespace", DEFAULT_NAMESPACE)
    if not isinstance(namespace, str) or len(namespace) > 63 or not DNS_LABEL.fullmatch(namespace):
        raise reader.fail(("transport", "namespace"), f"invalid namespace {show(namespace)}; allowed: one DNS "
                                                      'label, 1 to 63 letters, digits or "-", not starting '
                                                      'or ending with "-"')
    if "name_template" not in table:
        if "namespace" in table:
            raise reader.fail(("transport", "namespace"), "used only by name_template, and there is none; "
                                                          "allowed: add name_template, or remove namespace")
        return None, namespace
    keys = ("transport", "name_template")
    template = table["name_template"]
    if not isinstance(template, str) or not template:
        raise reader.fail(keys, f"expected a string such as \"{{name}}.{{group}}.{{namespace}}.svc\", "
                                f"got {show(template)}")
    try:
        fields = template_fields(template)
    except ValueError as exc:
        raise reader.fail(keys, f"{show(template)} is not a template: {exc}; allowed placeholders: "
                                f"{TEMPLATE_ALLOWED}") from None
    for name in fields:
        if name not in TEMPLATE_FIELDS:
            raise reader.fail(keys, f"unknown placeholder {show('{' + name + '}')}; allowed: {TEMPLATE_ALLOWED}",
                              hint=did_you_mean(name, TEMPLATE_FIELDS))
    seen: dict[str, str] = {}  # DNS name (lowercase) -> agent
    for agent in agents:
        name = template_name(template, agent, namespace)
        if not is_dns_name(name):
            raise reader.fail(keys, f"gives {show(name)} for agent {agent}, not a valid DNS name; "
                                    f"allowed: a template whose names are {DNS_NAME_ALLOWED}")
        if name.lower() in seen:
            raise reader.fail(keys, f"gives {show(name)} for both {seen[name.lower()]} and {agent}; "
                                    "allowed: a template with {name}, or {group} and {index}, so each "
                                    "agent has a name of its own")
        seen[name.lower()] = agent
    return template, namespace


def check_ports(reader: Reader, settings: TransportSettings, table: dict[str, Any]) -> None:
    """A host's data ports (port, port+1, ...) and its probe ports (http_port,
    ...) stay under 65536 and do not overlap."""
    for host in settings.host_tables:
        count = len(host.agents)
        for key, first in (("port", settings.port), ("http_port", settings.http_port)):
            if first + count - 1 > 65535:
                blamed = ("transport", key) if key in table else ("transport", "hosts", host.name, "agents")
                raise reader.fail(blamed, f"host {host.name}'s {count} agents from {key} {first} would pass "
                                          f"port 65535; allowed: a lower {key}, or fewer agents on the host")
    placed = [len(h.agents) for h in settings.host_tables] + ([1] if settings.name_template else [])
    widest = max(placed, default=0)
    if widest and settings.port < settings.http_port + widest and settings.http_port < settings.port + widest:
        blamed = "http_port" if "http_port" in table or "port" not in table else "port"
        raise reader.fail(("transport", blamed),
                          f"data ports {settings.port}..{settings.port + widest - 1} and probe ports "
                          f"{settings.http_port}..{settings.http_port + widest - 1} overlap on a host; allowed: "
                          f"port and http_port at least {widest} apart")


def check_distinct(reader: Reader, settings: TransportSettings, agents: tuple[str, ...]) -> None:
    """No two agents at one address ("host:port", port 0 aside): with the
    precedence, `[transport.addresses]` can land on a host's port."""
    taken: dict[str, str] = {}
    for agent in agents:
        p = settings.placement(agent)
        if not p.placed or p.address.endswith(":0"):
            continue
        if p.address.lower() in taken:
            keys = {"address": ("transport", "addresses", agent), "template": ("transport", "name_template"),
                    "host": ("transport", "hosts", p.host or "", "agents")}[p.by]
            raise reader.fail(keys, f"agent {agent} would be at {p.address}, as {taken[p.address.lower()]} is; "
                                    "allowed: one address and port per agent")
        taken[p.address.lower()] = agent
