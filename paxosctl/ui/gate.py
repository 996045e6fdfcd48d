"""Who may ask `paxosctl ui` for anything: the checks every request passes.

127.0.0.1 is open to every local user and, through the browser, to every
web page the user visits. So, in this order:

1. the Host header must name the address the server is bound to
   (`127.0.0.1:PORT` or `localhost:PORT` for the loopback, else
   `HOST:PORT` as bound): a page of another site whose name was made to
   resolve to 127.0.0.1 (DNS rebinding) sends its own name, and gets 421;
2. the URL must carry `?token=` equal to the random token printed on the
   command's first line (compared in constant time): anyone else gets 403;
3. an action (a POST) must carry an Origin equal to the page's own origin
   (`http://` + an allowed Host): a form or fetch from another page gets
   403 even with the token leaked to it;
4. an action is refused (403) unless the command was started with
   --allow-actions.

`Gate.check` is pure (no I/O): the server calls it before anything else.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

#: What `secrets.token_urlsafe` is given: 24 bytes, 32 URL-safe characters.
TOKEN_BYTES = 24


def new_token() -> str:
    """A fresh random token for one run of `paxosctl ui`."""
    return secrets.token_urlsafe(TOKEN_BYTES)


@dataclass(frozen=True, slots=True)
class Refusal:
    """An HTTP refusal: `status` and a one-line reason (the response body)."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class Gate:
    """The checks of one server: bound to `host`:`port`, with `token`;
    `allow_actions` from --allow-actions."""

    token: str
    host: str
    port: int
    allow_actions: bool = False

    @property
    def hosts(self) -> frozenset[str]:
        """The Host headers accepted: the bound address, and `localhost` for the loopback."""
        bound = f"[{self.host}]" if ":" in self.host else self.host
        names = {f"{bound}:{self.port}"}
        if self.host in ("127.0.0.1", "::1", "localhost"):
            names |= {f"127.0.0.1:{self.port}", f"localhost:{self.port}", f"[::1]:{self.port}"}
        return frozenset(names)

    @property
    def origins(self) -> frozenset[str]:
        """The page's own origins: an action must come from one of them."""
        return frozenset(f"http://{h}" for h in self.hosts)

    def url(self) -> str:
        """The URL to open (printed as the command's first line)."""
        bound = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{bound}:{self.port}/?token={self.token}"

    def check(self, method: str, target: str, headers: dict[str, str]) -> Refusal | None:
        """None if the request may be served, else why not. `target` is the
        request line's path and query; `headers` maps lower-case names."""
        host = headers.get("host", "")
        if host.lower() not in self.hosts:
            return Refusal(421, f"Host {host[:80]!r} is not this server "
                                f"(expected one of {', '.join(sorted(self.hosts))})")
        given = parse_qs(urlsplit(target).query).get("token", [""])[0]
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return Refusal(403, "missing or wrong token: open the URL paxosctl ui printed")
        if method == "POST":
            origin = headers.get("origin", "")
            if origin.lower() not in self.origins:
                return Refusal(403, f"Origin {origin[:80]!r} is not this page's own")
            if not self.allow_actions:
                return Refusal(403, "actions are off: start paxosctl ui with --allow-actions")
        elif method not in ("GET", "HEAD"):
            return Refusal(405, f"method {method} not allowed (GET, HEAD, POST)")
        return None
