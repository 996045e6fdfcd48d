"""`paxosctl ui`'s gate and actions, rule by rule (pure: no server, no cluster).

The live refusals (a real server, real sockets) are in test_ui.py; these
name each rule of paxosctl/ui/gate.py and actions.py on its own."""

from __future__ import annotations

import pytest

from paxosctl.ui import actions
from paxosctl.ui.gate import Gate, new_token

TOKEN = "t" * 32
GATE = Gate(TOKEN, "127.0.0.1", 8765, allow_actions=True)
OWN = {"host": "127.0.0.1:8765", "origin": "http://127.0.0.1:8765"}

CASES = [
    # (id, gate, method, target, headers, expected status or None)
    ("page-with-token", GATE, "GET", f"/?token={TOKEN}", OWN, None),
    ("localhost-name", GATE, "GET", f"/?token={TOKEN}", {"host": "localhost:8765"}, None),
    ("no-token", GATE, "GET", "/", OWN, 403),
    ("wrong-token", GATE, "GET", f"/?token={TOKEN[:-1]}x", OWN, 403),
    ("token-prefix", GATE, "GET", f"/?token={TOKEN[:8]}", OWN, 403),
    ("token-twice-first-wrong", GATE, "GET", f"/?token=x&token={TOKEN}", OWN, 403),
    ("rebinding-host", GATE, "GET", f"/?token={TOKEN}", {"host": "evil.example:8765"}, 421),
    ("other-port", GATE, "GET", f"/?token={TOKEN}", {"host": "127.0.0.1:8766"}, 421),
    ("no-host", GATE, "GET", f"/?token={TOKEN}", {}, 421),
    ("post-own-origin", GATE, "POST", f"/action?token={TOKEN}", OWN, None),
    ("post-foreign-origin", GATE, "POST", f"/action?token={TOKEN}",
     {"host": "127.0.0.1:8765", "origin": "http://evil.example"}, 403),
    ("post-null-origin", GATE, "POST", f"/action?token={TOKEN}",
     {"host": "127.0.0.1:8765", "origin": "null"}, 403),
    ("post-no-origin", GATE, "POST", f"/action?token={TOKEN}", {"host": "127.0.0.1:8765"}, 403),
    ("post-https-origin", GATE, "POST", f"/action?token={TOKEN}",
     {"host": "127.0.0.1:8765", "origin": "https://127.0.0.1:8765"}, 403),
    ("post-actions-off", Gate(TOKEN, "127.0.0.1", 8765), "POST", f"/action?token={TOKEN}", OWN, 403),
    ("put", GATE, "PUT", f"/?token={TOKEN}", OWN, 405),
]


@pytest.mark.parametrize("gate,method,target,headers,expected",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_gate(gate, method, target, headers, expected):
    refusal = gate.check(method, target, headers)
    assert (refusal.status if refusal else None) == expected, refusal


def test_url_and_tokens():
    assert GATE.url() == f"http://127.0.0.1:8765/?token={TOKEN}"
    a, b = new_token(), new_token()
    assert a != b and len(a) == 32 and a.replace("-", "").replace("_", "").isalnum()


ACTION_CASES = [
    ({"action": "kill", "agent": "a1"}, ("kill", {"agent": "a1", "signal": "KILL"})),
    ({"action": "cut", "agent": "a1"}, ("chaos", {"partition": ["a1"]})),
    ({"action": "heal"}, ("chaos", {"heal": True})),
    ({"action": "slow", "seconds": 0.2}, ("chaos", {"delay": 0.2})),
    ({"action": "slow", "seconds": 0}, ("chaos", {"delay": 0.0})),
]


@pytest.mark.parametrize("body,request_", ACTION_CASES, ids=[c[0]["action"] + str(i)
                                                              for i, c in enumerate(ACTION_CASES)])
def test_action_is_the_control_request_the_cli_sends(body, request_):
    assert actions.parse(body, {"a1"}).request() == request_


BAD = [
    ([], "expected a JSON object"),
    ({"action": "explode"}, "actions: kill, cut, heal, slow"),
    ({"action": "kill", "agent": "zz"}, "agents: a1"),
    ({"action": "kill"}, "agents: a1"),
    ({"action": "heal", "agent": "a1"}, "unexpected agent"),
    ({"action": "slow", "seconds": 5}, "from 0 to 2"),
    ({"action": "slow", "seconds": True}, "from 0 to 2"),
    ({"action": "slow", "seconds": "1"}, "from 0 to 2"),
]


@pytest.mark.parametrize("body,says", BAD, ids=[str(b)[:30] for b, _ in BAD])
def test_bad_action_says_what_is_allowed(body, says):
    with pytest.raises(actions.BadAction, match=says):
        actions.parse(body, {"a1"})
