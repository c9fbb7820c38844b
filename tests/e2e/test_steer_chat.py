"""Chat steering in headless Chromium, through the whole stack: a tiny random-weight chat model
(Qwen2 with a ChatML template, tests/fixtures/steering.py) registered like any model, the real
worker, uvicorn and the built frontend. Two turns: each column answers and goes on with its own
history; the permalink restores the conversation. Screenshots in test-artifacts/."""

from __future__ import annotations

import pytest

from tests.e2e.test_steer_page import page_errors, wait_until_done

pytestmark = pytest.mark.e2e


def turns(page, row: str) -> list[str]:
    return page.eval_on_selector_all(
        f"[data-row-text={row}] .steer-turn", "els => els.map(e => e.textContent)"
    )


def send(page, text: str) -> None:
    page.fill(".steer-prompt", text)
    page.press(".steer-prompt", "Enter")
    page.wait_for_timeout(300)  # the throttle's trailing edge
    wait_until_done(page)


@pytest.mark.parametrize(
    "browser_options",
    [
        {"viewport": {"width": 1440, "height": 900}, "color_scheme": "light"},
        {
            "viewport": {"width": 390, "height": 844},
            "is_mobile": True,
            "has_touch": True,
            "color_scheme": "dark",
        },
    ],
    ids=["desktop", "phone"],
)
def test_a_two_turn_steered_chat_and_its_permalink(
    browser_page, live_server_url, celery_worker_proc, chat_rows, request
):
    page = browser_page.page
    url = f"{live_server_url}/tiny-chat/steer/?chat=1&f=chat:3:40&pos=assistant&t=0&n=8"
    response = page.goto(url, wait_until="networkidle")
    assert response is not None and response.status == 200
    page.wait_for_selector("[data-steer][data-steer-ready=true]")
    assert page.is_checked('input[name="steer-mode"][value="chat"]')
    assert page.input_value(".steer-field--positions select") == "assistant"

    send(page, "Hi <b>there</b>")
    first_default, first_steered = turns(page, "default"), turns(page, "steered")
    assert first_default[0] == first_steered[0] == "Hi <b>there</b>"
    assert first_default[1] != first_steered[1]  # steering changed the reply

    send(page, "And then?")
    default, steered = turns(page, "default"), turns(page, "steered")
    # each column keeps its own first reply in its history
    assert default[:3] == [*first_default, "And then?"]
    assert steered[:3] == [*first_steered, "And then?"]
    assert len(default) == len(steered) == 4
    assert page.locator(".steer-text b, .steer-text script").count() == 0
    browser_page.screenshot(f"steer-chat-{request.node.callspec.id}")

    permalink = page.get_attribute(".steer-permalink", "href")
    assert permalink and permalink.startswith("/steer/")
    page.goto(live_server_url + permalink, wait_until="networkidle")
    page.wait_for_selector("[data-steer][data-steer-ready=true]")
    assert turns(page, "default") == default
    assert turns(page, "steered") == steered
    assert page_errors(browser_page) == []
    assert browser_page.failed_requests == []
