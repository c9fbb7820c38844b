"""/ws/ping/: a websocket round trip through the real Redis channel layer."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from tests.explorer.websocket import WebsocketCommunicator

# Channels closes stale DB connections around each handler (and the session middleware may
# query), so these tests may touch the database from the consumer thread.
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

LOCAL = [(b"origin", b"http://localhost"), (b"host", b"localhost")]


def _application():
    from explorer.asgi import application

    return application


def test_ping_round_trips_through_the_redis_channel_layer(redis_url):
    from channels.layers import get_channel_layer
    from channels_redis.core import RedisChannelLayer

    assert isinstance(get_channel_layer(), RedisChannelLayer)

    async def scenario():
        communicator = WebsocketCommunicator(_application(), "/ws/ping/", headers=LOCAL)
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        await communicator.send_json_to({"type": "ping", "payload": "<b>hi</b>"})
        reply = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return reply

    assert async_to_sync(scenario)() == {"type": "pong", "payload": "<b>hi</b>"}


def test_ping_rejects_a_websocket_from_a_foreign_origin(redis_url):
    async def scenario():
        communicator = WebsocketCommunicator(
            _application(),
            "/ws/ping/",
            headers=[(b"origin", b"https://evil.example"), (b"host", b"localhost")],
        )
        connected, _ = await communicator.connect(timeout=5)
        await communicator.disconnect()
        return connected

    assert async_to_sync(scenario)() is False


def test_ping_answers_an_unknown_message_with_an_error(redis_url):
    async def scenario():
        communicator = WebsocketCommunicator(_application(), "/ws/ping/", headers=LOCAL)
        await communicator.connect(timeout=5)
        await communicator.send_json_to({"type": "steer"})
        reply = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return reply

    assert async_to_sync(scenario)()["type"] == "error"


def test_an_idle_socket_outlives_the_layers_blocking_pop(redis_url):
    """channels_redis blocks 5 s per receive; the Redis socket timeout must be longer
    (channels_redis#422), or an idle consumer dies with TimeoutError."""
    import asyncio

    async def scenario():
        communicator = WebsocketCommunicator(_application(), "/ws/ping/", headers=LOCAL)
        assert (await communicator.connect(timeout=5))[0]
        await asyncio.sleep(6.5)
        await communicator.send_json_to({"type": "ping", "payload": "still here"})
        reply = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return reply

    assert async_to_sync(scenario)() == {"type": "pong", "payload": "still here"}


def test_a_frame_the_json_checks_refuse_gets_an_error_frame_and_the_socket_stays_open(redis_url):
    async def scenario():
        communicator = WebsocketCommunicator(_application(), "/ws/ping/", headers=LOCAL)
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        replies = []
        for frame in ({"text": "[" * 100_000}, {"text": '{"payload": "\\u0000"}'}, {"bytes": b"x"}):
            await communicator.send_input({"type": "websocket.receive", **frame})
            replies.append(await communicator.receive_json_from(timeout=5))
        await communicator.send_json_to({"type": "ping", "payload": 1})
        replies.append(await communicator.receive_json_from(timeout=5))
        await communicator.disconnect()
        return replies

    deep, nul, binary, pong = async_to_sync(scenario)()
    assert deep == {"type": "error", "message": "a message nests deeper than 32 levels."}
    assert nul == {
        "type": "error",
        "message": "payload contains a NUL character, which is not allowed.",
    }
    assert binary == {"type": "error", "message": "send JSON text frames"}
    assert pong == {"type": "pong", "payload": 1}
