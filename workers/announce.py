"""Worker processes announce themselves in Redis while they live, for the operations page
and /metrics: every WORKER_BEAT_SECONDS each process writes an entry (its queues, threads
and start time) that lapses WORKER_TTL_SECONDS after its process is gone."""

import json
import os
import socket
import threading
import time
from typing import Any

import redis
from django.conf import settings

WORKER_BEAT_SECONDS = 10
WORKER_TTL_SECONDS = 30


def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def _key(worker: str = "*") -> str:
    return f"{settings.REDIS_PREFIX}:workers:{worker}"


def announce(queues: list[str], threads: int) -> threading.Thread:
    """Keep this process listed as a worker while it lives (a daemon thread)."""
    name = f"{socket.gethostname()}:{os.getpid()}"
    started = time.time()

    def beat() -> None:
        client = _client()
        while True:
            try:
                info = {"queues": queues, "threads": threads, "started": started}
                client.set(_key(name), json.dumps(info), ex=WORKER_TTL_SECONDS)
            except redis.RedisError:
                pass  # Redis down: the entry lapses, and the page says so
            time.sleep(WORKER_BEAT_SECONDS)

    thread = threading.Thread(target=beat, name="worker-announce", daemon=True)
    thread.start()
    return thread


def listed() -> list[dict[str, Any]]:
    """The worker processes up now (every host's), by name (host:pid)."""
    client = _client()
    found = []
    for key in client.scan_iter(match=_key(), count=500):
        raw = client.get(key)
        if raw is None:
            continue
        info = json.loads(raw)
        name = key.decode().rsplit(":workers:", 1)[1]
        found.append({"name": name, **info, "up_seconds": time.time() - info["started"]})
    return sorted(found, key=lambda worker: worker["name"])
