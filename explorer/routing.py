"""All websocket routes (under /ws/); each app contributes its own list."""

from explorer.core.routing import websocket_urlpatterns as core_routes
from explorer.saes.routing import websocket_urlpatterns as saes_routes
from explorer.steering.routing import websocket_urlpatterns as steering_routes

websocket_urlpatterns = [*core_routes, *saes_routes, *steering_routes]
