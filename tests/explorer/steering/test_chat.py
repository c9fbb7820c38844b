"""Steering a chat over /ws/steer/: a tiny random-weight chat model (Qwen2 with a ChatML
template) registered like any model, the real worker, and permalinks of conversations."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from tests.explorer.steering.helpers import collect, connect, wait_stored

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def chat_message(gen, messages, steered_messages=None, **overrides):
    message = {
        "type": "steer",
        "gen": gen,
        "model": "tiny-chat",
        "messages": messages,
        "features": [{"sae": "chat", "index": 3, "strength": 40.0, "mode": "add"}],
        "positions": "assistant",
        "temperature": 0.0,
        "seed": 0,
        "max_new_tokens": 8,
        **overrides,
    }
    if steered_messages is not None:
        message["steered_messages"] = steered_messages
    return message


def _done(frames, gen):
    assert [f for f in frames if f["type"] == "error"] == []
    return {f["row"]: f for f in frames if f.get("gen") == gen and f["type"] == "done"}


def test_a_two_turn_steered_chat_continues_each_columns_own_history(
    chat_rows, celery_worker_proc, settings
):
    from explorer.steering.models import SteeringResult

    first = [{"role": "user", "content": "Hi there"}]

    async def turn(gen, message):
        comm = await connect()
        await comm.send_json_to(message)
        frames = await collect(comm, gen)
        await comm.disconnect(timeout=5)
        return frames

    one = _done(async_to_sync(turn)(1, chat_message(1, first)), 1)
    assert one["default"]["text"] != one["steered"]["text"]
    # the second turn: each column's history holds its own first reply
    ask = {"role": "user", "content": "And then?"}
    default_history = [*first, {"role": "assistant", "content": one["default"]["text"]}, ask]
    steered_history = [*first, {"role": "assistant", "content": one["steered"]["text"]}, ask]
    two = _done(
        async_to_sync(turn)(2, chat_message(2, default_history, steered_history)),
        2,
    )
    # an unsteered row given the steered history answers as the steered column's history
    # makes it: the columns diverged as conversations, not only in their last reply
    alone = _done(
        async_to_sync(turn)(3, chat_message(3, steered_history, features=[])),
        3,
    )
    assert alone["default"]["token_ids"] != two["default"]["token_ids"]

    wait_stored(two["steered"]["result"], settings.REDIS_URL)
    stored = SteeringResult.objects.get(pk=two["steered"]["result"])
    assert stored.request["messages"] == default_history
    assert stored.request["steered_messages"] == steered_history
    assert stored.request["prompt"] == "" and stored.steered_text == two["steered"]["text"]


def test_the_permalink_of_a_chat_shows_and_restores_the_conversation(
    chat_rows, celery_worker_proc, settings, client
):
    import json

    history = [
        {"role": "user", "content": "Hello <b>bot</b>"},
        {"role": "assistant", "content": "Hi."},
        {"role": "user", "content": "Tell me more"},
    ]

    async def scenario():
        comm = await connect()
        await comm.send_json_to(chat_message(1, history))
        frames = await collect(comm, 1)
        await comm.disconnect(timeout=5)
        return frames

    done = _done(async_to_sync(scenario)(), 1)
    result = done["steered"]["result"]
    wait_stored(result, settings.REDIS_URL)
    page = client.get(f"/steer/{result}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Hello &lt;b&gt;bot&lt;/b&gt;" in html and "<b>bot</b>" not in html
    start = html.index('id="steer-config"')
    config = json.loads(html[html.index(">", start) + 1 : html.index("</script>", start)])
    assert config["chat"] is True
    assert config["initial"]["prompt"] == "Tell me more"
    assert config["initial"]["chat"] == {"default": history[:2], "steered": history[:2]}
    assert config["initial"]["positions"] == "assistant"


def test_a_model_without_a_chat_template_gets_a_clear_error(demo_rows, celery_worker_proc):
    message = chat_message(1, [{"role": "user", "content": "Hi"}], model="demo", positions="all")
    message["features"] = [{"sae": "demo", "index": 3, "strength": 4.0, "mode": "add"}]

    async def scenario():
        comm = await connect()
        await comm.send_json_to(message)
        frame = await comm.receive_json_from(timeout=10)
        await comm.disconnect(timeout=5)
        return frame

    frame = async_to_sync(scenario)()
    assert frame["type"] == "error" and frame["gen"] == 1
    assert "has no chat template" in frame["message"] and "'demo'" in frame["message"]


def test_a_chat_over_http_answers_as_the_websocket_does(
    chat_rows, celery_worker_proc, live_server_url
):
    from tests.explorer.steering.test_steer_http import post, ws_frames

    history = [{"role": "user", "content": "Hi over HTTP"}]
    message = chat_message(7, history)
    ws = {f["row"]: f for f in ws_frames(live_server_url, [message])[0] if f["type"] == "done"}
    body = {k: v for k, v in message.items() if k not in ("type", "gen")}
    r = post(live_server_url, body)
    assert r.status_code == 200, r.text
    data = r.json()
    for row in ("default", "steered"):
        assert data[row]["token_ids"] == ws[row]["token_ids"]
    unknown = post(live_server_url, {**body, "model": "missing-model"})
    assert unknown.status_code == 400 and "unknown model" in unknown.text
