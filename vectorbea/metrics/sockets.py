"""Open websocket connections, per consumer, summed over the live processes of the host."""

import threading
from typing import Any

from prometheus_client import Gauge

WEBSOCKETS = Gauge(
    "vectorbea_websocket_connections",
    "Websocket connections open now (accepted, not yet ended), by consumer.",
    ["consumer"],
    multiprocess_mode="livesum",
)


class CountedConnection:
    """Mixin for a websocket consumer: an accepted connection counts until the consumer
    ends, however it ends (either side closes it, a handler raises, the server cancels it).
    A refused handshake never counts.

    A sync consumer accepts in a worker thread while its end runs on the event loop; the
    lock keeps an accept that finishes after a cancelled consumer ended from counting."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._count_lock = threading.Lock()
        self._counted = False
        self._ended = False

    def accept(self, *args: Any, **kwargs: Any) -> None:
        super().accept(*args, **kwargs)  # type: ignore[misc]
        with self._count_lock:
            if not (self._counted or self._ended):
                self._counted = True
                WEBSOCKETS.labels(type(self).__name__).inc()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)  # type: ignore[misc]
        finally:
            with self._count_lock:
                self._ended = True
                if self._counted:
                    WEBSOCKETS.labels(type(self).__name__).dec()
