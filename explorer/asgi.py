"""ASGI entry point: HTTP through Django, websockets under /ws/ through Channels.

Websockets get the same origin check as forms (the Origin header must be one of
ALLOWED_HOSTS) and the session user (AuthMiddlewareStack). Both see the client's address as
explorer/core/clients.py resolves it (X-Forwarded-For only from TRUSTED_PROXIES). This module
must not import torch: the web process stays light (tests/explorer/test_no_torch_in_web.py).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "explorer.settings")
# Django must be set up before importing consumers (they import models).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator

from explorer.core.busy import CountRequests
from explorer.core.clients import ForwardedClientMiddleware
from explorer.core.outages import websocket_guard
from explorer.routing import websocket_urlpatterns

application = ForwardedClientMiddleware(
    ProtocolTypeRouter(
        {
            # Counted, so that exports step aside for pages (explorer/core/busy.py).
            "http": CountRequests(django_asgi_app),
            # websocket_guard: a socket that fails because Redis or PostgreSQL is unreachable
            # (the session's user, a channel layer) gets an error frame, not a dropped connection.
            "websocket": AllowedHostsOriginValidator(
                websocket_guard(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
            ),
        }
    )
)
