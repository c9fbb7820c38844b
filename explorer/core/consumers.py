"""Websocket consumers of the core app."""

from __future__ import annotations

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from explorer.core.untrusted import BadInput, check_json, json_loads


class CheckedJsonConsumer(AsyncJsonWebsocketConsumer):
    """`receive_json` gets only JSON that explorer/core/untrusted.py accepts; any other frame
    (binary, not JSON, nested too deep, a NUL in a string) is answered with
    {"type": "error", "message": ...} and the socket stays open."""

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        if text_data is None:
            await self.send_json({"type": "error", "message": "send JSON text frames"})
            return
        try:
            content = json_loads(text_data)
            check_json(content)
        except BadInput as exc:
            await self.send_json({"type": "error", "message": exc.message})
            return
        await self.receive_json(content, **kwargs)


class PingConsumer(CheckedJsonConsumer):
    """`/ws/ping/`: echoes {"type": "ping", "payload": x} as {"type": "pong", "payload": x}
    by way of the channel layer (group_send to this socket's own group), so a round trip
    proves the Redis layer carries messages between processes' consumers."""

    async def connect(self) -> None:
        self.group = f"ping.{self.channel_name.replace('!', '_')}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        if not isinstance(content, dict) or content.get("type") != "ping":
            await self.send_json(
                {"type": "error", "message": 'expected {"type": "ping", "payload": ...}'}
            )
            return
        await self.channel_layer.group_send(
            self.group, {"type": "pong.message", "payload": content.get("payload")}
        )

    async def pong_message(self, event: dict) -> None:
        await self.send_json({"type": "pong", "payload": event["payload"]})
