"""A websocket test client for ASGI apps (the shape of channels' WebsocketCommunicator).

`channels.testing` imports daphne at package import time, and daphne (with Twisted) is not a
dependency of ours; this is the same protocol driver on asgiref's ApplicationCommunicator.
"""

from __future__ import annotations

import json
from urllib.parse import unquote, urlparse

from asgiref.testing import ApplicationCommunicator


class WebsocketCommunicator(ApplicationCommunicator):
    def __init__(
        self,
        application,
        path: str,
        headers: list[tuple[bytes, bytes]] | None = None,
        client: tuple[str, int] | None = None,
    ):
        """`client`: the peer's (address, port), as a server puts it in the scope."""
        parsed = urlparse(path)
        scope = {
            "type": "websocket",
            "path": unquote(parsed.path),
            "query_string": parsed.query.encode(),
            "headers": headers or [],
            "subprotocols": [],
        }
        if client is not None:
            scope["client"] = client
        super().__init__(application, scope)

    async def connect(self, timeout: float = 1) -> tuple[bool, object]:
        """(True, subprotocol) when accepted, (False, close code) when rejected."""
        await self.send_input({"type": "websocket.connect"})
        response = await self.receive_output(timeout)
        if response["type"] == "websocket.close":
            return False, response.get("code", 1000)
        assert response["type"] == "websocket.accept", response
        return True, response.get("subprotocol")

    async def send_json_to(self, data) -> None:
        await self.send_input({"type": "websocket.receive", "text": json.dumps(data)})

    async def receive_json_from(self, timeout: float = 1):
        response = await self.receive_output(timeout)
        assert response["type"] == "websocket.send", response
        return json.loads(response["text"])

    async def disconnect(self, code: int = 1000, timeout: float = 1) -> None:
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)
