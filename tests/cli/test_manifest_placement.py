"""`[transport]` places agents (issue 22): by address, by host (ports in
list order), by name template, else on a free loopback port; each bad
value is one line naming the key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from paxosctl.errors import ManifestError
from paxosctl.manifest import Placement, load_manifest

ROOT = Path(__file__).resolve().parents[2]
HEAD = """[cluster]
name = "demo"
[agents.proposer]
role = "proposer"
[agents.acceptor]
role = "acceptor"
replicas = 3
[agents.learner]
role = "learner"
[transport]
kind = "tls"
"""
HOSTS = """[transport.hosts.a]
address = "192.0.2.1"
agents = ["acceptor-0", "proposer-0"]
[transport.hosts.b]
address = "db-2.example.net"
agents = ["acceptor-1", "learner-0"]
"""


def load(tmp_path: Path, text: str):
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    return load_manifest(path)


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(ManifestError) as caught:
        load(tmp_path, text)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_hosts_agents_get_ports_in_the_order_listed(tmp_path):
    t = load(tmp_path, HEAD + "port = 8000\nhttp_port = 9000\n" + HOSTS).transport
    assert t.placement("acceptor-0") == Placement(address="192.0.2.1:8000", listen="192.0.2.1:8000",
                                                  http="192.0.2.1:9000", host="a", by="host")
    assert t.placement("proposer-0") == Placement(address="192.0.2.1:8001", listen="192.0.2.1:8001",
                                                  http="192.0.2.1:9001", host="a", by="host")
    # a DNS name listens on every IPv4 address
    assert t.placement("learner-0") == Placement(address="db-2.example.net:8001", listen="0.0.0.0:8001",
                                                 http="0.0.0.0:9001", host="b", by="host")
    assert t.placement("acceptor-2") == Placement(address="127.0.0.1:0", listen="127.0.0.1:0",
                                                  http="127.0.0.1:0", by="default")
    assert (t.port, t.http_port) == (8000, 9000)


def test_hosts_lists_each_hosts_agents(tmp_path):
    t = load(tmp_path, HEAD + HOSTS).transport
    assert t.hosts() == {"a": ("acceptor-0", "proposer-0"), "b": ("acceptor-1", "learner-0")}
    assert (t.port, t.http_port) == (7100, 9466)  # the defaults


def test_precedence_address_then_host_then_template_then_default(tmp_path):
    text = (HEAD + 'name_template = "{name}.{group}.{namespace}.svc"\nnamespace = "prod"\n'
            + '[transport.addresses]\nacceptor-0 = "[2001:db8::5]:7300"\n' + HOSTS)
    m = load(tmp_path, text)
    t = m.transport
    assert t.placement("acceptor-0") == Placement(address="[2001:db8::5]:7300", listen="[2001:db8::5]:7300",
                                                  http="[2001:db8::5]:9466", by="address")
    # the address overrides the host, which keeps its order of ports
    assert t.placement("proposer-0").address == "192.0.2.1:7101"
    assert t.hosts()["a"] == ("proposer-0",)
    assert t.placement("acceptor-2") == Placement(
        address="acceptor-2.acceptor.prod.svc:7100", listen="0.0.0.0:7100", http="0.0.0.0:9466", by="template")
    # an agent `scale` adds later follows the template
    assert t.placement("learner-7").address == "learner-7.learner.prod.svc:7100"
    assert dict(m.placed_addresses())["acceptor-2"] == "acceptor-2.acceptor.prod.svc:7100"


def test_without_placement_every_agent_is_on_a_free_loopback_port(tmp_path):
    m = load(tmp_path, HEAD)
    assert {m.transport.placement(a.name).listen for a in m.agents} == {"127.0.0.1:0"}
    assert m.placed_addresses() == ()


def test_the_template_uses_index(tmp_path):
    t = load(tmp_path, HEAD + 'name_template = "{group}-{index}.peers"\n').transport
    assert t.placement("acceptor-2").address == "acceptor-2.peers:7100"


BAD = [
    ("port-zero", "port = 0\n", "transport.port", "expected an integer from 1 to 65535, got 0"),
    ("port-string", 'port = "7100"\n', "transport.port", 'expected an integer from 1 to 65535, got "7100"'),
    ("http-port-big", "http_port = 70000\n", "transport.http_port", "expected an integer from 1 to 65535"),
    ("ports-overlap", "port = 9466\n" + HOSTS, "transport.port", "overlap on a host; allowed: port and http_port"),
    ("ports-past-65535", "port = 65535\n" + HOSTS, "transport.port", "would pass port 65535"),
    ("host-without-address", '[transport.hosts.a]\nagents = ["acceptor-0"]\n', "transport.hosts.a.address",
     'missing required key; add address = "192.0.2.1"'),
    ("host-address-with-port", '[transport.hosts.a]\naddress = "192.0.2.1:7100"\nagents = []\n',
     "transport.hosts.a.address", "is not an IP address or a DNS name; allowed: an IP address or a DNS name"),
    ("host-address-bad-label", '[transport.hosts.a]\naddress = "-db.example"\nagents = []\n',
     "transport.hosts.a.address", "is not an IP address or a DNS name"),
    ("host-agents-not-a-list", '[transport.hosts.a]\naddress = "192.0.2.1"\nagents = "acceptor-0"\n',
     "transport.hosts.a.agents", "expected a list of agent names"),
    ("host-unknown-agent", '[transport.hosts.a]\naddress = "192.0.2.1"\nagents = ["acceptr-0"]\n',
     "transport.hosts.a.agents", 'no agent "acceptr-0"; allowed: proposer-0, acceptor-0'),
    ("host-unknown-key", '[transport.hosts.a]\naddress = "192.0.2.1"\nagents = []\nport = 1\n',
     "transport.hosts.a.port", "unknown key; allowed: address, agents"),
    ("host-bad-name", '[transport.hosts."a b"]\naddress = "192.0.2.1"\nagents = []\n', 'transport.hosts."a b"',
     "invalid host name; allowed:"),
    ("placed-twice-two-hosts", HOSTS + '[transport.hosts.c]\naddress = "192.0.2.3"\nagents = ["acceptor-1"]\n',
     "transport.hosts.c.agents", "agent acceptor-1 is placed twice (also on host b)"),
    ("placed-twice-one-host", '[transport.hosts.a]\naddress = "192.0.2.1"\nagents = ["acceptor-0", "acceptor-0"]\n',
     "transport.hosts.a.agents", "placed twice (also on this host)"),
    ("two-hosts-one-address", HOSTS + '[transport.hosts.c]\naddress = "DB-2.example.net"\nagents = []\n',
     "transport.hosts.c.address", "is host b's address too; allowed: one host per address"),
    ("address-on-a-hosts-port", HOSTS + '[transport.addresses]\nacceptor-2 = "192.0.2.1:7101"\n',
     "transport.addresses.acceptor-2", "agent acceptor-2 would be at 192.0.2.1:7101, as proposer-0 is; allowed:"),
    ("template-unknown-placeholder", 'name_template = "{name}.{ns}.svc"\n', "transport.name_template",
     'unknown placeholder "{ns}"; allowed: {name}, {group}, {index}, {namespace}'),
    ("template-format-spec", 'name_template = "{index:03d}.{group}"\n', "transport.name_template",
     "has a conversion or format spec"),
    ("template-unbalanced", 'name_template = "{name.svc"\n', "transport.name_template", "is not a template"),
    ("template-invalid-label", 'name_template = "{name}_{namespace}.svc"\n', "transport.name_template",
     'gives "proposer-0_default.svc" for agent proposer-0, not a valid DNS name'),
    ("template-label-too-long", 'name_template = "{name}' + "x" * 60 + '"\n', "transport.name_template",
     "for agent proposer-0, not a valid DNS name"),
    ("template-same-name", 'name_template = "{group}.svc"\n', "transport.name_template",
     'gives "acceptor.svc" for both acceptor-0 and acceptor-1'),
    ("template-not-a-string", "name_template = 3\n", "transport.name_template", "expected a string"),
    ("namespace-bad", 'name_template = "{name}.{namespace}"\nnamespace = "Prod_1"\n', "transport.namespace",
     'invalid namespace "Prod_1"; allowed: one DNS label'),
    ("namespace-without-template", 'namespace = "prod"\n', "transport.namespace",
     "used only by name_template, and there is none"),
]


@pytest.mark.parametrize(("extra", "key", "fragment"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_placement_is_one_line_naming_the_key(tmp_path, extra, key, fragment):
    message = refused(tmp_path, HEAD + extra)
    assert message.startswith(f"{tmp_path / 'cluster.toml'}: {key}: "), message
    assert fragment in message, message


@pytest.mark.parametrize("key, text", [
    ("hosts", '[transport.hosts.a]\naddress = "192.0.2.1"\nagents = []\n'),
    ("name_template", 'name_template = "{name}"\n'),
])
def test_placement_needs_tls(tmp_path, key, text):
    message = refused(tmp_path, HEAD.replace('kind = "tls"\n', "") + text)
    assert f"transport.{key}: agents are placed only with kind = \"tls\"; allowed: remove" in message


def test_the_hosts_example_validates_with_the_cli():
    """`paxosctl validate` (no certificates yet: the file checks alone) and the placement it describes."""
    m = load_manifest(ROOT / "examples" / "hosts.toml")
    assert m.transport.hosts() == {"host-1": ("acceptor-0", "proposer-0", "learner-0"),
                                   "host-2": ("acceptor-1", "proposer-1", "learner-1"),
                                   "host-3": ("acceptor-2",)}
    assert {m.transport.placement(a).address for a in ("acceptor-0", "acceptor-1", "acceptor-2")} == {
        "192.0.2.1:7100", "192.0.2.2:7100", "192.0.2.3:7100"}


def test_a_host_may_list_a_name_scale_will_add(tmp_path):
    """Issue 23: before `paxosctl scale acceptor=4` with no supervisor, the
    operator places acceptor-3 on a host; the manifest still runs 3."""
    m = load(tmp_path, HEAD + HOSTS.replace('"acceptor-1", "learner-0"', '"acceptor-1", "learner-0", "acceptor-3"'))
    assert [a.name for a in m.agents if a.role == "acceptor"] == ["acceptor-0", "acceptor-1", "acceptor-2"]
    assert m.transport.placement("acceptor-3") == Placement(
        "db-2.example.net:7102", "0.0.0.0:7102", "0.0.0.0:9468", host="b", by="host")
