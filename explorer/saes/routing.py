from django.urls import path

from explorer.saes.consumers import IndexProgressConsumer

websocket_urlpatterns = [
    path("ws/index/<int:sae_id>/", IndexProgressConsumer.as_asgi()),
]
