from django.urls import path

from explorer.steering.consumers import SteerConsumer

websocket_urlpatterns = [
    path("ws/steer/", SteerConsumer.as_asgi()),
]
