"""What a newcomer sees when something is missing: a plain message, never a traceback.

These run the real entry points in subprocesses (`python -m vectorbea.preflight`,
`scripts/setup`, `manage.py check`), the way the run and test commands do.
"""

import base64
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What settings_test.py and pytest put into this process's environment, which must not leak
# into a child that is meant to see production-like settings.
LEAKY = (
    "DEBUG",
    "SECRET_KEY",
    "VECTORBEA_MASTER_KEY",
    "ALLOWED_HOSTS",
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
    "SECURE_SSL_REDIRECT",
    "REDIS_PREFIX",
)


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    child_env = {k: v for k, v in os.environ.items() if k not in LEAKY}
    child_env.update(DJANGO_SETTINGS_MODULE="vectorbea.settings", **env)
    return subprocess.run(
        args, cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=120, check=False
    )


def master_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def production(**overrides: str) -> dict[str, str]:
    return {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50)[:50],
        "VECTORBEA_MASTER_KEY": master_key(),
        "ALLOWED_HOSTS": "example.com",
        **overrides,
    }


# Services --------------------------------------------------------------------------------------


def test_preflight_names_both_missing_services_and_how_to_start_them():
    result = run(
        [sys.executable, "-m", "vectorbea.preflight", "--start"],
        DEBUG="true",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed_port()}/vectorbea",
        REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0",
    )

    assert result.returncode == 1
    assert "PostgreSQL is not reachable at 127.0.0.1:" in result.stderr
    assert "pg_ctlcluster --skip-systemctl-redirect" in result.stderr
    assert "Redis is not reachable at 127.0.0.1:" in result.stderr
    assert "redis-server --daemonize yes" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_preflight_names_only_the_service_that_is_missing():
    result = run(
        [sys.executable, "-m", "vectorbea.preflight"],
        DEBUG="true",
        REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0",
    )

    assert result.returncode == 1
    assert "cannot reach Redis." in result.stderr
    assert "PostgreSQL is not reachable" not in result.stderr
    assert "point REDIS_URL at a running server" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_preflight_passes_when_both_services_answer():
    result = run([sys.executable, "-m", "vectorbea.preflight"], DEBUG="true")

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_the_setup_script_stops_with_the_same_message_when_postgres_is_missing():
    result = run(
        [str(ROOT / "scripts" / "setup")],
        VENV=sys.prefix,
        DEBUG="true",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed_port()}/vectorbea",
    )

    assert result.returncode == 1
    assert "PostgreSQL is not reachable" in result.stderr
    assert "Start it with: pg_ctlcluster" in result.stderr
    assert "Redis is not reachable" not in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


# Settings with DEBUG off -----------------------------------------------------------------------


def test_check_deploy_is_clean_with_real_secrets():
    result = run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        **production(),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"SECRET_KEY": "dev-only-insecure-secret-key-change-me"},
            "SECRET_KEY must be set to a random value of at least 32 characters",
        ),
        ({"SECRET_KEY": "short"}, "SECRET_KEY must be set to a random value"),
        ({"VECTORBEA_MASTER_KEY": ""}, "VECTORBEA_MASTER_KEY is empty"),
        (
            {
                "VECTORBEA_MASTER_KEY": base64.urlsafe_b64encode(
                    b"vectorbea-development-master-key"
                ).decode()
            },
            "VECTORBEA_MASTER_KEY must be set to your own key when DEBUG is off",
        ),
        ({"VECTORBEA_MASTER_KEY": "not-a-key"}, "is not a url-safe base64 encoding of 32 bytes"),
    ],
    ids=["dev-secret-key", "short-secret-key", "empty-master-key", "dev-master-key", "bad-key"],
)
def test_it_refuses_to_start_with_debug_off_and_unsafe_secrets(overrides, message):
    result = run([sys.executable, "manage.py", "check"], **production(**overrides))

    assert result.returncode != 0
    assert "Vectorbea is not configured correctly" in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_preflight_reports_a_bad_configuration_without_a_traceback():
    result = run(
        [sys.executable, "-m", "vectorbea.preflight"],
        **production(SECRET_KEY="dev-only-insecure-secret-key-change-me"),
    )

    assert result.returncode == 2
    assert "SECRET_KEY must be set" in result.stderr
    assert "Traceback" not in result.stderr
