"""Who a client is (explorer/core/clients.py): X-Forwarded-For is believed only from
TRUSTED_PROXIES, for HTTP and websockets alike; limits key a signed-in user by account and
anyone else by address."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from explorer.core.clients import (
    ForwardedClientMiddleware,
    client_key,
    forwarded_client,
    parse_networks,
)
from explorer.core.supervisor import web_server_argv

PROXY = "10.0.0.5"
TRUSTED = tuple(parse_networks(["10.0.0.0/24", "fd00::/64"]))


def test_a_forwarded_header_from_an_untrusted_peer_is_ignored():
    assert forwarded_client("198.51.100.7", "203.0.113.9", TRUSTED) == "198.51.100.7"
    assert forwarded_client("198.51.100.7", "203.0.113.9", ()) == "198.51.100.7"


def test_a_trusted_proxy_names_the_client():
    assert forwarded_client(PROXY, "203.0.113.9", TRUSTED) == "203.0.113.9"


def test_a_client_cannot_forge_its_address_through_a_trusted_proxy():
    # The client sent "X-Forwarded-For: 1.2.3.4"; the proxy appended the address it saw.
    assert forwarded_client(PROXY, "1.2.3.4, 203.0.113.9", TRUSTED) == "203.0.113.9"


def test_chained_trusted_proxies_are_skipped_from_the_right():
    assert forwarded_client(PROXY, "203.0.113.9, 10.0.0.7", TRUSTED) == "203.0.113.9"
    assert forwarded_client(PROXY, "10.0.0.8, 10.0.0.7", TRUSTED) == "10.0.0.8"


def test_garbage_in_the_header_stops_at_the_last_address_vouched_for():
    assert forwarded_client(PROXY, "evil, 10.0.0.7", TRUSTED) == "10.0.0.7"
    assert forwarded_client(PROXY, "<script>", TRUSTED) == PROXY


def test_ports_brackets_and_ipv6_are_read():
    assert forwarded_client(PROXY, "203.0.113.9:4711", TRUSTED) == "203.0.113.9"
    assert forwarded_client("fd00::1", "[2001:db8::5]:443", TRUSTED) == "2001:db8::5"
    assert forwarded_client("::ffff:10.0.0.5", "203.0.113.9", TRUSTED) == "203.0.113.9"


def test_a_bad_trusted_proxy_setting_names_the_item():
    with pytest.raises(ValueError, match="'10.0.0.300'"):
        parse_networks(["10.0.0.300"])


def _seen(scope: dict, trusted: list[str], settings) -> tuple[str, int]:
    settings.TRUSTED_PROXIES = trusted
    seen = {}

    async def app(scope, receive, send):
        seen["client"] = scope["client"]

    async_to_sync(ForwardedClientMiddleware(app))(scope, None, None)
    return seen["client"]


@pytest.mark.parametrize("kind", ["http", "websocket"])
def test_the_middleware_ignores_the_header_from_an_untrusted_peer(kind, settings):
    scope = {
        "type": kind,
        "client": ("198.51.100.7", 5000),
        "headers": [(b"x-forwarded-for", b"203.0.113.9")],
    }
    assert _seen(scope, [], settings) == ("198.51.100.7", 5000)
    assert _seen(scope, ["10.0.0.0/8"], settings) == ("198.51.100.7", 5000)


@pytest.mark.parametrize("kind", ["http", "websocket"])
def test_the_middleware_takes_the_client_from_a_trusted_proxy(kind, settings):
    scope = {
        "type": kind,
        "client": (PROXY, 5000),
        "headers": [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-for", b"203.0.113.9")],
    }
    assert _seen(scope, ["10.0.0.0/24"], settings) == ("203.0.113.9", 0)


def test_the_asgi_server_leaves_the_peer_address_to_the_application():
    # uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1 (its default).
    assert "--no-proxy-headers" in web_server_argv(host="127.0.0.1", port=8000)


class User:
    is_authenticated = True
    pk = 7


class Anonymous:
    is_authenticated = False


def test_a_signed_in_user_is_keyed_by_account_wherever_they_are():
    assert client_key(user=User(), address="203.0.113.9") == "u7"
    assert client_key(user=User(), address="198.51.100.1") == "u7"


def test_anyone_else_is_keyed_by_address_an_ipv6_host_by_its_64():
    assert client_key(user=Anonymous(), address="203.0.113.9") == "a203.0.113.9"
    assert client_key(user=None, address="2001:db8:1:2::5") == "a2001:db8:1:2::/64"
    assert client_key(user=None, address="2001:db8:1:2:ffff::9") == "a2001:db8:1:2::/64"
    assert client_key(user=None, address=None) == "aunknown"
