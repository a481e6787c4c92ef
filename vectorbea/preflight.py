"""Is Postgres reachable? Is Redis? One answer in plain language for the run command,
the test command and the readiness endpoint, instead of a wall of traceback.

As a command (`python -m vectorbea.preflight [--start] [--create-database]`) it checks the
servers named by DATABASE_URL and REDIS_URL (environment, then .env, then the defaults in
settings), optionally starts local ones that are installed but stopped, optionally creates
the database, and exits 0 when all is well or 1 with a message saying what to do.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg
import redis
from psycopg import sql

START_POSTGRES = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
INSTALL_POSTGRES = "apt-get install -y postgresql"
START_REDIS = (
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no '
    "--dir /var/lib/redis --logfile /var/log/redis/ci.log"
)
INSTALL_REDIS = "apt-get install -y redis-server"
LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or ''}".rstrip(":")


def _how_to_fix(name: str, installed: bool, start: str, install: str, variable: str) -> str:
    if installed:
        return f"  Start it with: {start}\n  or point {variable} at a running server."
    return (
        f"  {name} is not installed on this machine. Install and start it with:\n"
        f"    {install} && {start}\n"
        f"  or point {variable} at a running server."
    )


def _maintenance_url(database_url: str) -> str:
    """The same server, but the `postgres` database, which always exists."""
    parts = urlsplit(database_url)
    return parts._replace(path="/postgres").geturl()


def _database_name(database_url: str) -> str:
    return urlsplit(database_url).path.lstrip("/") or "postgres"


def postgres_problem(database_url: str) -> str | None:
    """None when we can connect to the server (any database), else what to do."""
    try:
        with psycopg.connect(_maintenance_url(database_url), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"PostgreSQL is not reachable at {_where(database_url)} ({first_line}).\n" + (
            _how_to_fix(
                "PostgreSQL",
                shutil.which("pg_ctlcluster") is not None,
                START_POSTGRES,
                INSTALL_POSTGRES,
                "DATABASE_URL",
            )
        )
    return None


def redis_problem(redis_url: str) -> str | None:
    try:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=3)
        client.ping()
    except (redis.RedisError, OSError) as exc:
        installed = shutil.which("redis-server") is not None
        return f"Redis is not reachable at {_where(redis_url)} ({exc}).\n" + _how_to_fix(
            "Redis", installed, START_REDIS, INSTALL_REDIS, "REDIS_URL"
        )
    return None


def problems(database_url: str, redis_url: str) -> list[str]:
    return [p for p in (postgres_problem(database_url), redis_problem(redis_url)) if p]


def create_database_if_missing(database_url: str) -> bool:
    """Create the database DATABASE_URL names if it does not exist. True if it was created."""
    name = _database_name(database_url)
    with psycopg.connect(_maintenance_url(database_url), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return True


def _is_local(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    return (parts.hostname or "") in LOCAL_HOSTS and (parts.port or default_port) == default_port


def _run_quietly(command: list[str]) -> None:
    """Start a service; its own complaints are not ours to show (the re-check will be)."""
    try:
        subprocess.run(command, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        pass


def start_local_services(database_url: str, redis_url: str) -> list[str]:
    """Start the Debian-packaged Postgres and Redis on this machine if they are installed,
    the URLs point at them (local host, default port) and they do not answer. Returns the
    names of the services it tried to start."""
    started = []
    if (
        _is_local(database_url, 5432)
        and shutil.which("pg_ctlcluster")
        and postgres_problem(database_url)
    ):
        for version in sorted(p.name for p in Path("/etc/postgresql").glob("*")):
            _run_quietly(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"])
        started.append("PostgreSQL")
    if _is_local(redis_url, 6379) and shutil.which("redis-server") and redis_problem(redis_url):
        for folder in ("/var/lib/redis", "/var/log/redis"):
            Path(folder).mkdir(parents=True, exist_ok=True)
        _run_quietly(
            [
                "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1",
                "--port", "6379", "--save", "", "--appendonly", "no",
                "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log",
            ]
        )  # fmt: skip
        started.append("Redis")
    return started


def configured_urls() -> tuple[str, str]:
    """DATABASE_URL and REDIS_URL as the settings see them (environment, .env, defaults)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vectorbea.settings")
    from django.conf import settings

    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        db = settings.DATABASES["default"]
        auth = quote(db["USER"] or "", safe="")
        if db.get("PASSWORD"):
            auth += ":" + quote(db["PASSWORD"], safe="")
        host = db["HOST"] or "localhost"
        port = f":{db['PORT']}" if db.get("PORT") else ""
        database_url = f"postgres://{auth}@{host}{port}/{quote(db['NAME'])}"
    return database_url, settings.REDIS_URL


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vectorbea.preflight", description="Check Vectorbea's services."
    )
    parser.add_argument(
        "--start", action="store_true", help="start local Postgres/Redis if installed but stopped"
    )
    parser.add_argument(
        "--create-database", action="store_true", help="create the database if it is missing"
    )
    parser.add_argument("--wait", type=float, default=15.0, help="seconds to wait after --start")
    args = parser.parse_args(argv)

    from django.core.exceptions import ImproperlyConfigured

    try:
        database_url, redis_url = configured_urls()
    except ImproperlyConfigured as exc:
        print(f"\nVectorbea's configuration is not usable: {exc}\n", file=sys.stderr)
        return 2

    found = problems(database_url, redis_url)
    if found and args.start:
        started = start_local_services(database_url, redis_url)
        if started:
            print(f"Starting {' and '.join(started)}...", flush=True)
            deadline = time.monotonic() + args.wait
            while found and time.monotonic() < deadline:
                time.sleep(0.5)
                found = problems(database_url, redis_url)

    if found:
        print(
            "\nVectorbea needs PostgreSQL and Redis, and cannot reach "
            + " or ".join(p.split(" is not", 1)[0] for p in found)
            + ".\n\n"
            + "\n\n".join(found)
            + "\n",
            file=sys.stderr,
        )
        return 1

    if args.create_database:
        try:
            if create_database_if_missing(database_url):
                print(f"Created database {_database_name(database_url)!r}.")
        except psycopg.Error as exc:
            print(
                f"\nCould not create the database {_database_name(database_url)!r} at "
                f"{_where(database_url)}: {str(exc).strip()}\n"
                "  Create it yourself (createdb) or give the DATABASE_URL user CREATEDB.\n",
                file=sys.stderr,
            )
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
