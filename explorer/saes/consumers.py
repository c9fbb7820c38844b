"""`/ws/index/<sae id>/`: live progress of an SAE's index runs (the SAE page shows it)."""

from __future__ import annotations

from channels.db import database_sync_to_async

from explorer.core.consumers import CheckedJsonConsumer
from explorer.saes.indexing import progress_dict, progress_group
from explorer.saes.models import IndexRun


class IndexProgressConsumer(CheckedJsonConsumer):
    """Sends the latest run's progress on connect, then every `index.progress` event:
    {"type": "progress", "run", "sae", "status", "tokens_done", "tokens_total", "phase",
    "error"}. Receives nothing."""

    async def connect(self) -> None:
        self.sae_id = int(self.scope["url_route"]["kwargs"]["sae_id"])
        self.group = progress_group(self.sae_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        latest = await database_sync_to_async(self._latest)()
        if latest is not None:
            await self.send_json({"type": "progress", **latest})

    def _latest(self) -> dict | None:
        run = IndexRun.objects.filter(sae_id=self.sae_id).order_by("-created").first()
        return None if run is None else progress_dict(run)

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        await self.send_json({"type": "error", "message": "this socket only sends progress"})

    async def index_progress(self, event: dict) -> None:
        await self.send_json(
            {"type": "progress", **{k: v for k, v in event.items() if k != "type"}}
        )
