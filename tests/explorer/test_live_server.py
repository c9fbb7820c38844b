"""`live_server_url`: uvicorn in a subprocess on the test database (what the e2e tests use)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from websockets.sync.client import connect

pytestmark = pytest.mark.integration


def test_the_live_server_sees_committed_rows(live_server_url, transactional_db, django_user_model):
    django_user_model.objects.create_user("dana", password="a fine password 123")
    request = urllib.request.Request(
        live_server_url + "/accounts/login/",
        method="POST",
        data=b"username=dana&password=a+fine+password+123",
    )
    # No CSRF token: a 403 proves the server answered; the user check is below via the API.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403

    from explorer.accounts.services import api_key_create

    _, raw = api_key_create(user=django_user_model.objects.get(username="dana"), name="e2e")
    me = urllib.request.Request(
        live_server_url + "/api/v1/me", headers={"Authorization": f"Bearer {raw}"}
    )
    with urllib.request.urlopen(me, timeout=10) as response:
        assert json.loads(response.read())["username"] == "dana"


def test_a_websocket_round_trips_through_uvicorn_and_redis(live_server_url):
    ws_url = live_server_url.replace("http://", "ws://") + "/ws/ping/"
    with connect(ws_url, origin=live_server_url, open_timeout=10) as socket:
        socket.send(json.dumps({"type": "ping", "payload": 7}))
        assert json.loads(socket.recv(timeout=10)) == {"type": "pong", "payload": 7}


def test_hashed_static_files_are_cached_for_a_year(live_server_url, collected_static):
    manifest = json.loads((collected_static / "staticfiles.json").read_text())["paths"]
    hashed = manifest["admin/css/base.css"]
    with urllib.request.urlopen(f"{live_server_url}/static/{hashed}", timeout=10) as response:
        cache_control = response.headers["Cache-Control"]
    assert "immutable" in cache_control
    assert "max-age=315360000" in cache_control


def test_a_megabyte_of_text_in_the_url_gets_the_apps_own_page(live_server_url, transactional_db):
    """uvicorn reads a 1 MB request line (its default parser refuses any URL over 64 KiB with a
    bare "Invalid HTTP request received."); the feature page then says the text is too long."""
    from tests.builders import build_indexed_sae

    build_indexed_sae()
    url = live_server_url + "/tiny/res-1/3/?text=" + "word+" * 200_000
    with urllib.request.urlopen(url, timeout=60) as response:
        body = response.read().decode()
    assert "This text is 1,000,000 characters long; the limit is 2,000." in body
    assert len(body) < 200_000  # the text is not echoed into the page's links
