""""host:port" as the manifest writes it: parsed (`split_listen`), joined back
(`join_address`), and the host part judged: an IP literal or a DNS name
(`host_problem`), loopback or not, and what an agent placed there listens on
(`listen_host`)."""

from __future__ import annotations

import ipaddress
import re

from .messages import show

#: One DNS label (RFC 1123): 1 to 63 letters, digits or "-", not starting or ending with "-".
DNS_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
#: The longest DNS name, dots included (RFC 1035, without the root's final dot).
MAX_DNS_NAME = 253
DNS_NAME_ALLOWED = (f'labels of 1 to 63 letters, digits or "-" (not starting or ending with "-") '
                    f"joined by dots, at most {MAX_DNS_NAME} characters")
HOST_ALLOWED = f"an IP address or a DNS name ({DNS_NAME_ALLOWED})"


def split_listen(listen: str) -> tuple[str, int]:
    """("host", port) from "host:port" or "[v6]:port"; ValueError saying what is allowed."""
    allowed = f'expected "host:port" with a port from 0 to 65535, got {show(listen)}'
    if listen.startswith("["):
        host, sep, port_text = listen[1:].partition("]:")
        if not sep:
            raise ValueError(allowed)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{show(host)} is not an IPv6 address; {allowed}") from None
    else:
        host, sep, port_text = listen.rpartition(":")
        if not sep or not host or ":" in host:
            hint = ' (write IPv6 addresses in brackets: "[::1]:9464")' if ":" in host else ""
            raise ValueError(allowed + hint)
        if not re.fullmatch(r"[A-Za-z0-9.-]+", host):
            raise ValueError(f"invalid host {show(host)}; {allowed}")
    if not re.fullmatch(r"[0-9]{1,5}", port_text) or int(port_text) > 65535:
        raise ValueError(allowed)
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may well resolve to a public address


def is_dns_name(text: str) -> bool:
    """Is `text` a DNS name (RFC 1123 labels joined by dots, no trailing dot)?"""
    return (0 < len(text) <= MAX_DNS_NAME
            and all(DNS_LABEL.fullmatch(label) for label in text.split(".")))


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """`host` as an IP address, or None if it is a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def host_problem(host: str) -> str | None:
    """Why `host` is neither an IP address nor a DNS name, on one line; None if it is one."""
    if ip_literal(host) is not None or is_dns_name(host):
        return None
    return f"{show(host)} is not an IP address or a DNS name; allowed: {HOST_ALLOWED}"


def join_address(host: str, port: int) -> str:
    """"host:port", with an IPv6 literal in brackets ("[2001:db8::1]:7100")."""
    literal = ip_literal(host)
    return f"[{host}]:{port}" if literal is not None and literal.version == 6 else f"{host}:{port}"


def listen_host(host: str) -> str:
    """Where an agent placed at `host` binds: an IP literal is one of this
    machine's own addresses, so it binds that one alone; a DNS name may
    resolve to an address the machine does not hold (a load balancer, a
    NAT, a Kubernetes Service), so it binds every IPv4 address, 0.0.0.0."""
    return host if ip_literal(host) is not None else "0.0.0.0"
