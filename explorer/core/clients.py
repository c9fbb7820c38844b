"""Who a client is: the address a request really came from, and the key its limits count under.

- Address: the TCP peer, unless that peer is one of TRUSTED_PROXIES (addresses or networks;
  empty by default); then the right-most address of `X-Forwarded-For` that is not a trusted
  proxy (each proxy appends the address it saw, so only the hops added by trusted proxies can
  be believed). `ForwardedClientMiddleware` applies this to the ASGI scope of HTTP requests and
  websockets alike, so Django's REMOTE_ADDR and a consumer's `scope["client"]` hold it; the ASGI
  server must not rewrite the peer itself (uvicorn runs with --no-proxy-headers).
- Key: `u<pk>` for a signed-in user (session or API key), else `a<address>` (an IPv6 address
  by its /64, which one host can hold whole). Session cookies are not identities: a client
  drops one to get a fresh one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(items: Iterable[str], *, name: str = "TRUSTED_PROXIES") -> list[Network]:
    """Addresses or CIDR networks, as networks. Raises ValueError naming `name` and the item."""
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{name} item {item!r} is not an IP address or network") from None
    return networks


@lru_cache(maxsize=8)
def _trusted(items: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(parse_networks(items))


def trusted_proxies() -> tuple[Network, ...]:
    """settings.TRUSTED_PROXIES as networks (read at call time: tests override it)."""
    return _trusted(tuple(getattr(settings, "TRUSTED_PROXIES", ())))


def _address(text: str) -> Address | None:
    """An address from a header item: `1.2.3.4`, `1.2.3.4:80`, `[::1]:80` or `::1`."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped or ip


def _is_trusted(ip: Address, trusted: tuple[Network, ...]) -> bool:
    return any(ip.version == net.version and ip in net for net in trusted)


def forwarded_client(peer: str, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """The client's address for a connection from `peer` carrying `forwarded_for` (the
    X-Forwarded-For values joined by commas, or None).

    The peer itself unless it is trusted; else, walking the header from the right, the first
    address that is not a trusted proxy (all trusted: the left-most). An item that is no
    address ends the walk at the last address a trusted proxy vouched for.
    """
    peer_ip = _address(peer)
    if not forwarded_for or peer_ip is None or not _is_trusted(peer_ip, trusted):
        return peer
    client = str(peer_ip)
    for item in reversed(forwarded_for.split(",")):
        ip = _address(item)
        if ip is None:
            return client
        client = str(ip)
        if not _is_trusted(ip, trusted):
            return client
    return client


class ForwardedClientMiddleware:
    """ASGI middleware: `scope["client"]` becomes the forwarded client's address when the peer
    is a trusted proxy (see `forwarded_client`); otherwise the scope passes untouched."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        client = scope.get("client")
        trusted = trusted_proxies() if scope["type"] in ("http", "websocket") else ()
        if trusted and client:
            values = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"]
            address = forwarded_client(client[0], ",".join(values) or None, trusted)
            if address != client[0]:
                scope = {**scope, "client": (address, 0)}
        await self.app(scope, receive, send)


def client_key(*, user: Any, address: str | None) -> str:
    """The key limits count a client under: `u<pk>` for a signed-in user, else `a<address>`
    (an IPv6 address by its /64 network; `aunknown` when there is none)."""
    if user is not None and getattr(user, "is_authenticated", False):
        return f"u{user.pk}"
    ip = _address(address or "")
    if ip is None:
        return f"a{address or 'unknown'}"
    if ip.version == 6:
        return f"a{ipaddress.ip_network((ip, 64), strict=False)}"
    return f"a{ip}"


def request_client(request: Any) -> str:
    """`client_key` of a Django request: the API's authenticated user (`request.auth`, set
    by ninja from a session or an API key), else the session user, else the address."""
    user = getattr(request, "auth", None)
    if not getattr(user, "is_authenticated", False):
        user = getattr(request, "user", None)
    return client_key(user=user, address=request.META.get("REMOTE_ADDR"))
