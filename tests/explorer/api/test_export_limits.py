"""Who may export and how much: exports need an account unless EXPORTS_OPEN, and each client
gets EXPORT_CONCURRENCY at once and EXPORT_RATE_LIMIT per window (EXPORT_MAX_RUNNING over
everyone); past a limit, 429 with Retry-After in the one error shape.

alice signs in, bob sends his API key, charlie is anonymous. The export reads on a connection
of its own, so these tests commit their rows (transactional_db)."""

from __future__ import annotations

import httpx
import pytest
from asgiref.sync import async_to_sync

from explorer.core.limits import redis_client
from explorer.search import exports
from tests.builders import build_indexed_sae

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators"),
]

BASE = "/api/v1/models/tiny/saes/res-1/export"
URLS = [BASE + "/features", BASE + "/examples?format=json"]


@pytest.fixture
def indexed():
    return build_indexed_sae(d_sae=8, examples_per_feature=1)


def drain(response) -> bytes:
    return b"".join(response)


def assert_429(response, code: str) -> int:
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == code
    retry_after = int(response["Retry-After"])
    assert retry_after >= 1 and error["retry_after"] == retry_after
    return retry_after


@pytest.mark.parametrize("url", URLS)
def test_charlie_cannot_export_without_an_account(client, indexed, url):
    response = client.get(url)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "authentication_required"
    assert "account" in error["message"] and "API key" in error["message"]


def test_bob_exports_with_his_api_key(client, indexed, bob_key):
    response = client.get(URLS[0], HTTP_AUTHORIZATION=f"Bearer {bob_key}")
    assert response.status_code == 200
    assert drain(response).startswith(b"index,")


def test_exports_open_lets_charlie_export(client, indexed, settings):
    settings.EXPORTS_OPEN = True
    response = client.get(URLS[0])
    assert response.status_code == 200
    drain(response)


def test_past_the_rate_limit_an_export_is_429_with_retry_after(client, indexed, alice, settings):
    settings.EXPORT_RATE_LIMIT = 2
    settings.EXPORT_RATE_WINDOW_S = 3600
    client.force_login(alice)
    for url in URLS:
        drain(client.get(url))
    refused = client.get(URLS[0])
    assert assert_429(refused, "rate_limited") <= 3600
    assert refused.json()["error"]["message"].startswith("rate limit: at most 2 exports per 3600 s")


def test_the_rate_is_per_account(client, indexed, alice, bob_key, settings):
    settings.EXPORT_RATE_LIMIT = 1
    client.force_login(alice)
    drain(client.get(URLS[0]))
    assert client.get(URLS[0]).status_code == 429
    client.logout()
    bob = client.get(URLS[0], HTTP_AUTHORIZATION=f"Bearer {bob_key}")
    assert bob.status_code == 200
    drain(bob)


def test_a_second_export_waits_for_the_first_to_end(async_client, indexed, bob_key):
    auth = {"Authorization": f"Bearer {bob_key}"}

    async def scenario():
        first = await async_client.get(URLS[1], headers=auth)  # streaming: holds its slot
        second = await async_client.get(URLS[0], headers=auth)
        body = b"".join([chunk async for chunk in first.streaming_content])
        third = await async_client.get(URLS[0], headers=auth)
        return first, second, body, third

    first, second, body, third = async_to_sync(scenario)()
    assert first.status_code == 200 and body.endswith(b"]}\n")
    assert_429(second, "too_many_at_once")
    assert "at most 1 of your exports" in second.json()["error"]["message"]
    assert third.status_code == 200


def test_the_server_runs_at_most_export_max_running(async_client, indexed, bob_key, settings):
    settings.EXPORTS_OPEN = True
    settings.EXPORT_MAX_RUNNING = 1

    async def scenario():
        running = await async_client.get(URLS[1], headers={"Authorization": f"Bearer {bob_key}"})
        refused = await async_client.get(URLS[0])  # charlie, another client
        [_ async for _ in running.streaming_content]
        return refused

    refused = async_to_sync(scenario)()
    assert_429(refused, "too_many_at_once")
    assert "the server is running 1 exports already" in refused.json()["error"]["message"]


def test_a_refused_export_counts_nothing(client, indexed, alice, settings):
    settings.EXPORT_RATE_LIMIT = 1
    assert client.get(URLS[0]).status_code == 401  # anonymous: refused before any count
    client.force_login(alice)
    response = client.get(URLS[0])
    assert response.status_code == 200
    drain(response)


def test_a_client_that_goes_away_frees_its_slots(indexed, settings):
    """Django closes the stream when the client disconnects: the slots go at once."""
    settings.EXPORTS_OPEN = True
    slots = exports.export_admit(user=None, client="a203.0.113.9")
    held = [s.key for s in slots]
    stream = exports.export_limited(exports.feature_export(sae=indexed.sae, fmt="json"), slots)

    async def read_one_then_leave():
        await anext(stream)
        during = [redis_client().zcard(key) for key in held]
        await stream.aclose()
        return during

    assert async_to_sync(read_one_then_leave)() == [1, 1]
    assert [redis_client().zcard(key) for key in held] == [0, 0]


def test_a_forged_forwarded_header_from_an_untrusted_peer_is_not_a_new_client(indexed, settings):
    """The whole ASGI application: charlie at 198.51.100.7 cannot escape his address's rate
    limit by sending X-Forwarded-For; through a trusted proxy each address counts alone."""
    from explorer.asgi import application

    settings.EXPORTS_OPEN = True
    settings.EXPORT_RATE_LIMIT = 1

    async def statuses(peer: str, forwarded: list[str]) -> list[int]:
        transport = httpx.ASGITransport(app=application, client=(peer, 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            return [
                (await c.get(URLS[0], headers={"X-Forwarded-For": f})).status_code
                for f in forwarded
            ]

    settings.TRUSTED_PROXIES = []
    assert async_to_sync(statuses)("198.51.100.7", ["203.0.113.1", "203.0.113.2"]) == [200, 429]
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    assert async_to_sync(statuses)("10.0.0.5", ["203.0.113.3", "203.0.113.4"]) == [200, 200]
    assert async_to_sync(statuses)("10.0.0.5", ["1.2.3.4, 203.0.113.3"]) == [429]


def test_the_api_docs_say_exports_need_an_account_and_may_answer_429(client):
    schema = client.get("/api/v1/openapi.json").json()
    for kind in ("features", "examples"):
        operation = schema["paths"][f"/api/v1/models/{{model}}/saes/{{sae}}/export/{kind}"]["get"]
        assert {"401", "429"} <= set(operation["responses"])
        assert "Retry-After" in operation["responses"]["429"]["headers"]
        assert "EXPORTS_OPEN" in operation["description"]


def test_a_client_that_disconnects_from_the_server_frees_its_slot(live_server_url, bob, bob_key):
    """Through uvicorn: the slot is held while the stream runs and freed when the client
    hangs up mid-stream (Django closes the stream), not at the next export's expiry."""
    import http.client
    from urllib.parse import urlsplit

    from tests.helpers import wait_until

    build_indexed_sae(d_sae=400, examples_per_feature=12, context=128)  # ~12 MB of JSON
    held = f"slots:v1:export:u{bob.pk}"
    url = urlsplit(live_server_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.request("GET", URLS[1], headers={"Authorization": f"Bearer {bob_key}"})
    response = conn.getresponse()
    assert response.status == 200
    response.read(1 << 14)
    assert redis_client().zcard(held) == 1  # mid-stream: the client has read 16 KB
    response.close()
    conn.close()
    wait_until(lambda: redis_client().zcard(held) == 0, timeout=15, message="slot kept")
