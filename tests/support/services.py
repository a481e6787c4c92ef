"""Restarting the machine's real Postgres and Redis in tests, leaving them as found."""

import subprocess
import time

import psycopg
import redis

REDIS_CONFIG_KEYS = ("port", "dir", "logfile", "appendonly")


def postgres_cluster() -> tuple[str, str]:
    line = subprocess.run(
        ["pg_lsclusters", "-h"], capture_output=True, text=True, check=True
    ).stdout.split("\n")[0]
    version, name = line.split()[:2]
    return version, name


def restart_postgres_immediately() -> None:
    """A crash-like restart (`-m immediate`): committed data must survive it."""
    version, name = postgres_cluster()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "restart", "-m", "immediate"],
        check=True,
        capture_output=True,
    )
    wait_for_postgres()


def wait_for_postgres(timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def restart_redis(url: str = "redis://127.0.0.1:6379/0") -> None:
    """Shut Redis down (its data is gone: it keeps nothing on disk here) and start it again
    with the configuration it was running with."""
    client = redis.Redis.from_url(url)
    config = {key: client.config_get(key)[key] for key in REDIS_CONFIG_KEYS}
    bind = client.config_get("bind")["bind"]
    try:
        client.shutdown(nosave=True)
    except redis.ConnectionError:
        pass  # it closed the connection as it went down
    argv = [
        "redis-server",
        "--daemonize",
        "yes",
        "--bind",
        *bind.split(),
        "--port",
        config["port"],
        "--save",
        "",
        "--appendonly",
        config["appendonly"],
        "--dir",
        config["dir"],
    ]
    if config["logfile"]:
        argv += ["--logfile", config["logfile"]]
    subprocess.run(argv, check=True, capture_output=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            redis.Redis.from_url(url).ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
