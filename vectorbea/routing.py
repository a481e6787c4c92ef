"""Websocket routes. Every consumer checks workspace membership through accounts.access,
at connect and again for every frame it sends (runs.consumers.WorkspaceSocket)."""

from django.urls import path

from vectorbea.runs.consumers import RunTimelineConsumer, WorkspaceConsumer

websocket_urlpatterns = [
    path("ws/w/<slug:ws>/", WorkspaceConsumer.as_asgi()),
    path("ws/w/<slug:ws>/runs/<uuid:run_id>/", RunTimelineConsumer.as_asgi()),
]
