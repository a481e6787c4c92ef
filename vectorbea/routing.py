"""Websocket routes. Every consumer checks workspace membership through accounts.access."""

websocket_urlpatterns: list = []
