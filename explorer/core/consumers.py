"""Websocket consumers of the core app."""

from __future__ import annotations

from channels.generic.websocket import AsyncJsonWebsocketConsumer


class PingConsumer(AsyncJsonWebsocketConsumer):
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
