"""The manifest: every way a hand-written file can be wrong gets one line
naming the key, and a good file gets the documented defaults."""

import socket
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paxosctl.errors import ManifestError
from paxosctl.manifest import (
    SECTIONS,
    AgentSpec,
    Health,
    MetricsSettings,
    PaxosSettings,
    RestartSettings,
    check_runtime,
    load_manifest,
    warnings,
)

CLUSTER = '[cluster]\nname = "demo"\n'
AGENTS = """
[agents.proposer]
role = "proposer"
[agents.acceptor]
role = "acceptor"
replicas = 3
[agents.learner]
role = "learner"
"""
GOOD = CLUSTER + AGENTS
EXTRA = GOOD + '[agents.extra]\nrole = "learner"\n'  # a fourth, well-formed group to add keys to
HEALTH, RESTART, PAXOS, METRICS = (GOOD + f"[{name}]\n" for name in ("health", "restart", "paxos", "metrics"))


def write(folder: Path, text: str, name: str = "cluster.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> str:
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    message = str(caught.value)
    assert message.splitlines() == [message], f"not one line: {message!r}"
    assert caught.value.exit_code == 2
    return message


# -- every bad manifest: (id, file text, key path, a fragment of the message) ------

BAD = [
    # TOML itself
    ("toml-syntax", '[cluster]\nname = "demo\n' + AGENTS, "", "(at line 2, column"),
    ("toml-group-declared-twice", GOOD + '[agents.learner]\nrole = "learner"\n', "", "(at line"),
    ("toml-integer-too-long", PAXOS + "window = " + "1" * 5000 + "\n", "", "integer too long (at line"),
    ("toml-nested-too-deep", PAXOS + "window = " + "[" * 3000 + "]" * 3000 + "\n", "", "nested too deeply"),
    # sections
    ("unknown-section", GOOD + "[metric]\n", "metric", "unknown section; allowed: cluster, agents, health"),
    ("top-level-key", 'name = "demo"\n' + GOOD, "name", "unknown section"),
    ("section-not-a-table", "health = 3\n" + GOOD, "health", "expected a table ([health]), got 3"),
    ("missing-cluster", AGENTS, "cluster", "missing section"),
    ("missing-agents", CLUSTER, "agents", "missing section"),
    ("empty-agents", CLUSTER + "[agents]\n", "agents", "no agent groups"),
    # [cluster]
    ("cluster-unknown-key", '[cluster]\nname = "demo"\nnmae = "x"\n' + AGENTS, "cluster.nmae", "unknown key; allowed: name, state_dir"),
    ("cluster-name-missing", "[cluster]\n" + AGENTS, "cluster.name", "missing required key"),
    ("cluster-name-uppercase", '[cluster]\nname = "Demo"\n' + AGENTS, "cluster.name", 'invalid cluster name "Demo"'),
    ("cluster-name-leading-dash", '[cluster]\nname = "-demo"\n' + AGENTS, "cluster.name", "invalid cluster name"),
    ("cluster-name-too-long", f'[cluster]\nname = "{"a" * 64}"\n' + AGENTS, "cluster.name", "1 to 63 characters"),
    ("cluster-name-not-a-string", "[cluster]\nname = 3\n" + AGENTS, "cluster.name", "got 3"),
    ("cluster-name-newline", '[cluster]\nname = "a\\nb"\n' + AGENTS, "cluster.name", '"a\\nb"'),
    ("state-dir-not-a-string", CLUSTER + "state_dir = 3\n" + AGENTS, "cluster.state_dir", "expected a folder path"),
    ("state-dir-empty", CLUSTER + 'state_dir = ""\n' + AGENTS, "cluster.state_dir", "expected a folder path"),
    # [agents]
    ("group-name-uppercase", CLUSTER + '[agents.Prop]\nrole = "replica"\n', "agents.Prop", "invalid group name"),
    ("group-name-quoted", CLUSTER + '[agents."a b"]\nrole = "replica"\n', 'agents."a b"', "invalid group name"),
    ("group-name-too-long", CLUSTER + f'[agents.{"a" * 33}]\nrole = "replica"\n', "agents." + "a" * 33, "invalid group name"),
    ("group-not-a-table", CLUSTER + '[agents]\nproposer = "proposer"\n', "agents.proposer", "expected a table"),
    ("group-unknown-key", GOOD.replace('[agents.learner]\nrole = "learner"', '[agents.learner]\nrol = "learner"'),
     "agents.learner.rol", "unknown key; allowed: role, replicas"),
    ("role-missing", GOOD + "[agents.extra]\nreplicas = 2\n", "agents.extra.role", "missing required key; allowed: proposer, acceptor, learner, replica"),
    ("role-unknown", GOOD + '[agents.extra]\nrole = "leader"\n', "agents.extra.role", 'unknown role "leader"; allowed: proposer, acceptor, learner, replica'),
    ("role-not-a-string", GOOD + "[agents.extra]\nrole = 1\n", "agents.extra.role", "expected a string, got 1; allowed: proposer"),
    ("role-array", GOOD + '[agents.extra]\nrole = ["proposer"]\n', "agents.extra.role", "got an array"),
    ("replicas-string", EXTRA + 'replicas = "three"\n', "agents.extra.replicas", 'expected an integer from 1 to 64, got "three"'),
    ("replicas-zero", EXTRA + 'replicas = 0\n', "agents.extra.replicas", "from 1 to 64, got 0"),
    ("replicas-negative", EXTRA + 'replicas = -1\n', "agents.extra.replicas", "got -1"),
    ("replicas-65", EXTRA + 'replicas = 65\n', "agents.extra.replicas", "got 65"),
    ("replicas-bool", EXTRA + 'replicas = true\n', "agents.extra.replicas", "got true"),
    ("replicas-float", EXTRA + 'replicas = 2.0\n', "agents.extra.replicas", "got 2.0"),
    ("replicas-huge", EXTRA + 'replicas = ' + "9" * 400 + "\n", "agents.extra.replicas", "from 1 to 64, got an integer of about"),
    ("no-proposer-no-learner", CLUSTER + '[agents.acceptor]\nrole = "acceptor"\nreplicas = 3\n', "agents", "no proposer or learner in the cluster"),
    ("no-acceptor", CLUSTER + '[agents.p]\nrole = "proposer"\n[agents.l]\nrole = "learner"\n', "agents", "no acceptor in the cluster"),
    # [health]
    ("health-unknown-key", HEALTH + 'heartbeat = "1s"\n', "health.heartbeat", "unknown key; allowed: heartbeat_interval, heartbeat_timeout, start_timeout"),
    ("duration-integer", HEALTH + "heartbeat_interval = 200\n", "health.heartbeat_interval", 'durations are strings like "200ms"'),
    ("duration-float", HEALTH + "start_timeout = 1.5\n", "health.start_timeout", 'durations are strings like "200ms"'),
    ("duration-nan", HEALTH + "start_timeout = nan\n", "health.start_timeout", "got nan"),
    ("duration-words", HEALTH + 'start_timeout = "2 secs"\n', "health.start_timeout", 'expected a duration like "200ms" or "2s" (units: us, ms, s, m, h), got "2 secs"'),
    ("duration-negative", HEALTH + 'start_timeout = "-1s"\n', "health.start_timeout", 'got "-1s"'),
    ("duration-bare-number", HEALTH + 'start_timeout = "10"\n', "health.start_timeout", 'got "10"'),
    ("duration-unknown-unit", HEALTH + 'start_timeout = "1d"\n', "health.start_timeout", 'got "1d"'),
    ("duration-zero", HEALTH + 'start_timeout = "0s"\n', "health.start_timeout", "above zero"),
    ("duration-too-long", HEALTH + 'start_timeout = "25h"\n', "health.start_timeout", "at most 24h"),
    ("heartbeat-timeout-not-above-interval", HEALTH + 'heartbeat_interval = "1s"\nheartbeat_timeout = "1s"\n',
     "health.heartbeat_timeout", "must be greater than health.heartbeat_interval"),
    ("heartbeat-interval-above-default-timeout", HEALTH + 'heartbeat_interval = "5s"\n',
     "health.heartbeat_interval", 'heartbeat_timeout = "3s" (default)'),
    # [restart]
    ("restart-unknown-key", RESTART + "retries = 3\n", "restart.retries", "unknown key; allowed: policy, backoff_initial"),
    ("policy-unknown", RESTART + 'policy = "sometimes"\n', "restart.policy", 'unknown policy "sometimes"; allowed: always, on-failure, never'),
    ("policy-bool", RESTART + "policy = true\n", "restart.policy", "expected a string, got true; allowed: always, on-failure, never"),
    ("backoff-max-below-initial", RESTART + 'backoff_initial = "2s"\nbackoff_max = "1s"\n', "restart.backoff_max", "must be at least restart.backoff_initial"),
    ("max-restarts-negative", RESTART + "max_restarts = -1\n", "restart.max_restarts", "expected an integer from 0 to"),
    ("max-restarts-bool", RESTART + "max_restarts = false\n", "restart.max_restarts", "got false"),
    ("max-restarts-string", RESTART + 'max_restarts = "10"\n', "restart.max_restarts", 'got "10"'),
    ("max-restarts-huge", RESTART + "max_restarts = 99999999999999999999999\n", "restart.max_restarts", "got 99999999999999999999999"),
    ("stable-after-bad", RESTART + 'stable_after = "soon"\n', "restart.stable_after", 'got "soon"'),
    # [paxos]
    ("paxos-unknown-key", PAXOS + "windows = 3\n", "paxos.windows", "unknown key; allowed: tick, heartbeat, election_timeout"),
    ("window-zero", PAXOS + "window = 0\n", "paxos.window", "expected an integer from 1 to 4096, got 0"),
    ("window-too-big", PAXOS + "window = 4097\n", "paxos.window", "got 4097"),
    ("batch-too-big", PAXOS + "batch = 1025\n", "paxos.batch", "expected an integer from 1 to 1024"),
    ("max-value-bytes-zero", PAXOS + "max_value_bytes = 0\n", "paxos.max_value_bytes", "from 1 to 1048576"),
    # Issue 20 (7): 15 MiB values were accepted, and five at once stalled agents past
    # their health timeout; the error says what is allowed and why.
    ("max-value-bytes-over-1m", PAXOS + "max_value_bytes = 1048577\n", "paxos.max_value_bytes",
     "expected an integer from 1 to 1048576, got 1048577 (at most 1024 KiB: a value travels in one "
     "message, and larger ones stall agents past their health timeout)"),
    ("max-value-bytes-16m", PAXOS + "max_value_bytes = 16777216\n", "paxos.max_value_bytes", "got 16777216"),
    ("accept-timeout-below-tick", PAXOS + 'accept_timeout = "5ms"\n', "paxos.accept_timeout", "must be at least paxos.tick"),
    ("tick-above-other-durations", PAXOS + 'tick = "1s"\n', "paxos.tick", 'tick = "1s"'),
    ("election-not-above-heartbeat", PAXOS + 'election_timeout = "50ms"\n', "paxos.election_timeout", "must be greater than paxos.heartbeat"),
    ("paxos-duration-integer", PAXOS + "tick = 10\n", "paxos.tick", "durations are strings"),
    ("alpha-below-window", PAXOS + "window = 32\nalpha = 16\n", "paxos.alpha",
     "alpha = 16 is less than window = 32; paxos.alpha must be at least paxos.window"),
    ("window-above-default-alpha", PAXOS + "window = 100\n", "paxos.window",
     "alpha = 64 (default) is less than window = 100"),
    ("alpha-zero", PAXOS + "alpha = 0\n", "paxos.alpha", "expected an integer from 1 to 65536, got 0"),
    # [metrics]
    ("metrics-unknown-key", METRICS + 'port = 9464\n', "metrics.port", "unknown key; allowed: listen, enabled"),
    ("listen-no-port", METRICS + 'listen = "localhost"\n', "metrics.listen", 'expected "host:port"'),
    ("listen-no-host", METRICS + 'listen = ":9464"\n', "metrics.listen", 'expected "host:port"'),
    ("listen-port-too-big", METRICS + 'listen = "127.0.0.1:65536"\n', "metrics.listen", "port from 0 to 65535"),
    ("listen-port-not-a-number", METRICS + 'listen = "127.0.0.1:http"\n', "metrics.listen", "port from 0 to 65535"),
    ("listen-ipv6-without-brackets", METRICS + 'listen = "::1:9464"\n', "metrics.listen", "brackets"),
    ("listen-bad-ipv6", METRICS + 'listen = "[zz]:9464"\n', "metrics.listen", "not an IPv6 address"),
    ("listen-bad-host", METRICS + 'listen = "a b:9464"\n', "metrics.listen", "invalid host"),
    ("listen-integer", METRICS + "listen = 9464\n", "metrics.listen", 'expected "host:port", got 9464'),
    ("enabled-string", METRICS + 'enabled = "yes"\n', "metrics.enabled", 'expected true or false, got "yes"'),
]


@pytest.mark.parametrize(("text", "key_path", "fragment"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_manifest_is_one_line_naming_the_key(tmp_path, text, key_path, fragment):
    path = write(tmp_path, text)
    message = load_error(path)
    prefix = f"{path}: {key_path}: " if key_path else f"{path}: "
    assert message.startswith(prefix), message
    assert fragment in message, message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (EXTRA + 'replicas = "three"\n',
         'agents.extra.replicas: expected an integer from 1 to 64, got "three"'),
        (RESTART + 'policy = "sometimes"\n',
         'restart.policy: unknown policy "sometimes"; allowed: always, on-failure, never'),
        (GOOD.replace('[agents.learner]\nrole = "learner"', '[agents.learner]\nrol = "learner"'),
         "agents.learner.rol: unknown key; allowed: role, replicas"),
    ],
    ids=["replicas-three", "policy-sometimes", "learner-rol"],
)
def test_documented_messages_exactly(tmp_path, text, expected):
    path = write(tmp_path, text)
    assert load_error(path) == f"{path}: {expected}"


def test_unknown_key_hints_at_the_close_match(tmp_path):
    path = write(tmp_path, GOOD.replace('[agents.learner]\nrole = "learner"', '[agents.learner]\nrol = "learner"'))
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert caught.value.hint == "did you mean 'role'?"


@pytest.mark.parametrize(
    "make",
    [
        lambda tmp: tmp / "missing.toml",
        lambda tmp: tmp,
        lambda tmp: (tmp / "latin1.toml").write_bytes(b'[cluster]\nname = "d\xe9mo"\n') and tmp / "latin1.toml",
    ],
    ids=["missing-file", "a-folder", "not-utf8"],
)
def test_unreadable_file_is_one_line(tmp_path, make):
    path = make(tmp_path)
    message = load_error(path)
    assert message.startswith(f"{path}: ")


def test_utf8_byte_order_mark_is_tolerated(tmp_path):
    path = tmp_path / "cluster.toml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert load_manifest(path).name == "demo"


def test_error_names_the_file_relative_to_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, RESTART + 'policy = "sometimes"\n')
    assert load_error(Path("cluster.toml")).startswith("cluster.toml: restart.policy: ")


# -- good manifests -----------------------------------------------------------


def test_good_manifest_gets_the_documented_defaults(tmp_path):
    manifest = load_manifest(write(tmp_path, GOOD))
    assert manifest.path == tmp_path / "cluster.toml"
    assert manifest.name == "demo"
    assert manifest.state_dir == (tmp_path / ".paxosctl" / "demo").resolve()
    assert manifest.health == Health(heartbeat_interval=0.2, heartbeat_timeout=3.0, start_timeout=10.0)
    assert manifest.restart == RestartSettings(policy="always", backoff_initial=0.1, backoff_max=5.0,
                                               stable_after=10.0, max_restarts=10)
    assert manifest.paxos == PaxosSettings(tick=0.01, heartbeat=0.05, election_timeout=0.3, accept_timeout=0.1,
                                           retry_cooldown=0.5, gap_timeout=0.1, window=32, batch=64,
                                           max_value_bytes=65536, alpha=64)
    assert manifest.metrics == MetricsSettings(listen="127.0.0.1:9464", enabled=True)
    assert (manifest.metrics.host, manifest.metrics.port) == ("127.0.0.1", 9464)
    assert manifest.agents == (
        AgentSpec("proposer-0", "proposer", "proposer", 0),
        AgentSpec("acceptor-0", "acceptor", "acceptor", 0),
        AgentSpec("acceptor-1", "acceptor", "acceptor", 1),
        AgentSpec("acceptor-2", "acceptor", "acceptor", 2),
        AgentSpec("learner-0", "learner", "learner", 0),
    )
    assert manifest.proposers == ("proposer-0",)
    assert manifest.acceptors == ("acceptor-0", "acceptor-1", "acceptor-2")
    assert manifest.learners == ("learner-0",)
    assert manifest.paxos.ticks("election_timeout") == 30


def test_every_key_can_be_set(tmp_path):
    text = GOOD + """
[health]
heartbeat_interval = "100ms"
heartbeat_timeout = "1s"
start_timeout = "5s"
[restart]
policy = "on-failure"
backoff_initial = "50ms"
backoff_max = "50ms"
stable_after = "1m"
max_restarts = 0
[paxos]
tick = "5ms"
heartbeat = "20ms"
election_timeout = "200ms"
accept_timeout = "5ms"
retry_cooldown = "1s"
gap_timeout = "50ms"
window = 4096
batch = 1
max_value_bytes = 1048576
alpha = 5000
[metrics]
listen = "[::1]:0"
enabled = false
"""
    manifest = load_manifest(write(tmp_path, text))
    assert manifest.health == Health(0.1, 1.0, 5.0)
    assert manifest.restart == RestartSettings("on-failure", 0.05, 0.05, 60.0, 0)
    assert manifest.paxos == PaxosSettings(0.005, 0.02, 0.2, 0.005, 1.0, 0.05, 4096, 1, 1048576, 5000)
    assert (manifest.metrics.host, manifest.metrics.port, manifest.metrics.enabled) == ("::1", 0, False)


def test_replicas_only_manifest(tmp_path):
    manifest = load_manifest(write(tmp_path, CLUSTER + '[agents.node]\nrole = "replica"\nreplicas = 3\n'))
    names = ("node-0", "node-1", "node-2")
    assert manifest.proposers == manifest.acceptors == manifest.learners == names
    assert manifest.by_role("replica") == manifest.agents
    assert manifest.agents[0].roles == frozenset({"proposer", "acceptor", "learner"})


def test_by_role_counts_replicas_in_every_role(tmp_path):
    text = CLUSTER + '[agents.node]\nrole = "replica"\n[agents.acc]\nrole = "acceptor"\nreplicas = 2\n'
    manifest = load_manifest(write(tmp_path, text))
    assert [a.name for a in manifest.by_role("acceptor")] == ["node-0", "acc-0", "acc-1"]
    assert manifest.proposers == ("node-0",)
    assert manifest.agents[1].roles == frozenset({"acceptor"})
    with pytest.raises(ValueError):
        manifest.by_role("leader")


def test_relative_state_dir_resolves_against_the_manifest_folder(tmp_path, monkeypatch):
    folder = tmp_path / "conf"
    folder.mkdir()
    path = write(folder, CLUSTER + 'state_dir = "../data/demo"\n' + AGENTS)
    monkeypatch.chdir(folder.parent.parent)  # the current folder must not matter
    assert load_manifest(path).state_dir == (tmp_path / "data" / "demo").resolve()


def test_absolute_state_dir_is_kept(tmp_path):
    target = tmp_path / "elsewhere"
    manifest = load_manifest(write(tmp_path, CLUSTER + f'state_dir = "{target}"\n' + AGENTS))
    assert manifest.state_dir == target.resolve()


# -- checks against the machine -------------------------------------------------------


def runtime_error(path: Path) -> str:
    manifest = load_manifest(path)
    with pytest.raises(ManifestError) as caught:
        check_runtime(manifest)
    message = str(caught.value)
    assert message.splitlines() == [message]
    return message


def test_free_port_and_writable_state_dir_pass(tmp_path):
    manifest = load_manifest(write(tmp_path, METRICS + 'listen = "127.0.0.1:0"\n'))
    assert check_runtime(manifest) == []
    assert not manifest.state_dir.exists()  # checking creates nothing


def test_metrics_port_in_use_is_rejected(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write(tmp_path, GOOD + f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
        message = runtime_error(path)
    assert message.startswith(f"{path}: metrics.listen: 127.0.0.1:{port} is already in use; ")


def test_metrics_port_in_use_is_ignored_when_metrics_are_disabled(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        manifest = load_manifest(write(tmp_path, GOOD + f'[metrics]\nlisten = "127.0.0.1:{port}"\nenabled = false\n'))
        assert check_runtime(manifest) == []


def test_state_dir_under_a_regular_file_is_rejected(tmp_path):
    # Root ignores permission bits, so make the folder impossible instead.
    (tmp_path / "a-file").write_text("not a folder")
    path = write(tmp_path, CLUSTER + 'state_dir = "a-file/state"\n' + AGENTS + '[metrics]\nlisten = "127.0.0.1:0"\n')
    message = runtime_error(path)
    assert message.startswith(f"{path}: cluster.state_dir: ")
    assert f"{tmp_path / 'a-file'} is not a folder" in message


def test_state_dir_that_is_a_regular_file_is_rejected(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    path = write(tmp_path, CLUSTER + 'state_dir = "a-file"\n' + AGENTS + '[metrics]\nlisten = "127.0.0.1:0"\n')
    assert runtime_error(path).startswith(f"{path}: cluster.state_dir: {tmp_path / 'a-file'} is not a folder")


@pytest.mark.parametrize("count", [1, 2])
def test_fewer_than_three_acceptors_warns(tmp_path, count):
    text = CLUSTER + f'[agents.p]\nrole = "proposer"\n[agents.a]\nrole = "acceptor"\nreplicas = {count}\n' \
                     '[agents.l]\nrole = "learner"\n[metrics]\nlisten = "127.0.0.1:0"\n'
    path = write(tmp_path, text)
    manifest = load_manifest(path)
    expected = f"{path}: only {count} acceptor(s): the cluster tolerates no failure (3 tolerate one)"
    assert check_runtime(manifest) == [expected]
    assert warnings(manifest) == [expected]


def test_three_acceptors_do_not_warn(tmp_path):
    assert warnings(load_manifest(write(tmp_path, GOOD))) == []


def test_non_loopback_metrics_host_warns(tmp_path):
    manifest = load_manifest(write(tmp_path, METRICS + 'listen = "0.0.0.0:0"\n'))
    [warning] = check_runtime(manifest)
    assert "metrics.listen" in warning and "anyone on the network can read" in warning


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "localhost:0", "[::1]:0"])
def test_loopback_metrics_hosts_do_not_warn(tmp_path, listen):
    assert warnings(load_manifest(write(tmp_path, GOOD + f'[metrics]\nlisten = "{listen}"\n'))) == []


# -- property: garbage in, ManifestError (or a manifest) out --------------------------

KEYS = st.sampled_from(
    list(SECTIONS) + ["name", "state_dir", "role", "replicas", "policy", "tick", "window", "listen",
                      "enabled", "heartbeat_timeout", "backoff_max", "proposer", "acceptor", "learner"]
) | st.text(max_size=8)
SCALARS = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.text(max_size=12)
    | st.sampled_from(["200ms", "2s", "0s", "replica", "acceptor", "always", "127.0.0.1:0", "demo"])
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
                      max_leaves=12)
DOCUMENTS = st.dictionaries(KEYS, st.dictionaries(KEYS, VALUES, max_size=4) | VALUES, max_size=6)


def toml_key(key: str) -> str:
    bare = key and all(c in string.ascii_letters + string.digits + "_-" for c in key)
    return key if bare else '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def toml_value(value) -> str:
    """TOML-ish: close enough that most documents parse, wrong often enough
    (control characters, odd floats) to exercise the syntax errors too."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def toml_document(document: dict) -> str:
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in document.items() if not isinstance(v, dict)]
    for section, body in document.items():
        if isinstance(body, dict):
            lines.append(f"[{toml_key(section)}]")
            lines.extend(f"{toml_key(k)} = {toml_value(v)}" for k, v in body.items())
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("garbage")


# derandomize: the same examples every run, so CI is deterministic.
@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(document=DOCUMENTS, prefix=st.sampled_from(["", GOOD]))
def test_garbage_raises_only_manifest_errors(scratch, document, prefix):
    path = write(scratch, prefix + toml_document(document))
    try:
        manifest = load_manifest(path)
    except ManifestError as exc:
        assert str(exc).splitlines() == [str(exc)]
    else:
        warnings(manifest)


def test_a_state_dir_too_long_for_an_agents_endpoint_is_refused(tmp_path):
    """Each agent listens on STATE_DIR/run/<agent>.sock: a folder short enough
    for the control socket can still be too long for a long agent name."""
    from paxosctl.supervisor.control import MAX_SOCKET_PATH

    group = "a" * 32  # the longest group name allowed
    room = MAX_SOCKET_PATH - len(f"/run/{group}-0.sock")
    state_dir = "/tmp/" + "d" * (room - len("/tmp/") + 1)  # one byte too many
    assert len(state_dir) + len("/control.sock") <= MAX_SOCKET_PATH
    text = (f'[cluster]\nname = "x"\nstate_dir = "{state_dir}"\n'
            f'[agents.{group}]\nrole = "replica"\nreplicas = 3\n')
    error = load_error(write(tmp_path, text))
    assert f"agent {group}-0's endpoint" in error and "cluster.state_dir" in error, error
    ok = text.replace(state_dir, state_dir[:-1])
    load_manifest(write(tmp_path, ok))


def test_a_slot_of_the_largest_value_fits_in_one_frame() -> None:
    """Issue 20 (7): whatever the manifest allows, a slot's value travels in
    one frame. The worst slot: one command of the largest value with the
    longest request id a client may send, or a full slot budget of small
    commands, in an Accept (a Chunk and a decided page carry a slot alike)."""
    from paxos_agents.core import Accept, Ballot, Command, Value
    from paxos_agents.core.settings import SLOT_BYTES
    from paxos_agents.runtime import codec
    from paxos_agents.runtime.clientwire import MAX_REQUEST_ID_BYTES
    from paxos_agents.runtime.frames import MAX_FRAME_BYTES
    from paxosctl.manifest import MAX_VALUE_BYTES

    assert PaxosSettings.__dataclass_fields__["max_value_bytes"].metadata["high"] == MAX_VALUE_BYTES
    alone = Value.of([Command("r" * MAX_REQUEST_ID_BYTES, b"x" * MAX_VALUE_BYTES, 2**63 - 1)])
    full = Value.of([Command(f"r{i}", b"y" * 1000) for i in range(SLOT_BYTES // 1016)])
    for value in (alone, full):
        frame = codec.encode(Accept(src="proposer-" + "9" * 30, dst="acceptor-" + "9" * 30,
                                    ballot=Ballot(2**62, "proposer-" + "9" * 30), slot=2**62,
                                    value=value))
        assert len(frame) <= MAX_FRAME_BYTES // 8, len(frame)  # a wide margin, not a squeeze
