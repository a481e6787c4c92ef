"""A process whose VECTORBEA_MASTER_KEY cannot unwrap the stored data keys refuses to start
with a clear message and no traceback; a fresh database still migrates."""

import base64
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.keys.support import canary
from vectorbea.keys import vault
from vectorbea.keys.checks import check_master_key, master_key_problem
from vectorbea.keys.crypto import master_key_id

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def database_url(name: str) -> str:
    db = settings.DATABASES["default"]
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    return f"postgres://{db['USER']}{password}@{host}:{port}/{name}"


def run(argv: list[str], master_key: str, database: str, timeout: float = 60):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "vectorbea.settings_test",
        "DATABASE_URL": database_url(database),
        "DB_CONN_MAX_AGE": "0",
        "VECTORBEA_MASTER_KEY": master_key,
        "REDIS_URL": settings.REDIS_URL,
        "REDIS_PREFIX": settings.REDIS_PREFIX,
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def encoded(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


CONFIGURED = encoded(settings.VECTORBEA_MASTER_KEYS[0])
WRONG = encoded(b"a-different-but-valid-master-key")


@pytest.fixture
def stored_key(transactional_db, acme, alice):
    return vault.add_key(acme, "openai", canary(), "", alice)


def test_manage_py_with_a_wrong_master_key_refuses_to_start(stored_key):
    db = settings.DATABASES["default"]["NAME"]
    result = run([sys.executable, "manage.py", "check"], WRONG, db)
    assert result.returncode != 0
    assert "Vectorbea cannot start: VECTORBEA_MASTER_KEY does not hold the master key" in (
        result.stderr
    )
    assert master_key_id(settings.VECTORBEA_MASTER_KEYS[0]) in result.stderr
    assert "rotate_master_key" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout

    ok = run([sys.executable, "manage.py", "check"], CONFIGURED, db)
    assert ok.returncode == 0, ok.stderr
    # Rotation: the new key first and the old one after it is fine.
    both = run([sys.executable, "manage.py", "check"], f"{WRONG},{CONFIGURED}", db)
    assert both.returncode == 0, both.stderr


def test_a_worker_with_a_wrong_master_key_refuses_to_start(stored_key):
    db = settings.DATABASES["default"]["NAME"]
    argv = [str(BIN / "dramatiq"), "workers.actors", "-p", "1", "-t", "1"]
    result = run(argv, WRONG, db)
    assert result.returncode != 0
    assert "Vectorbea cannot start: VECTORBEA_MASTER_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_check_names_a_master_key_that_does_not_unwrap(settings, stored_key):
    assert master_key_problem() is None
    assert check_master_key() == []
    impostor = b"impostor-master-key-32-bytes-!!!"
    # A key whose id matches but which is not the key: simulate by relabelling the row.
    from vectorbea.keys.models import Keyring

    Keyring.objects.update(wrapped_by=master_key_id(impostor))
    settings.VECTORBEA_MASTER_KEYS = [impostor]
    assert "does not unwrap the data key" in master_key_problem()
    [error] = check_master_key()
    assert error.id == "keys.E001"


def test_a_fresh_database_migrates_and_starts(transactional_db):
    name = f"vb_fresh_{uuid.uuid4().hex[:12]}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        migrate = run([sys.executable, "manage.py", "migrate", "--no-input"], WRONG, name, 180)
        assert migrate.returncode == 0, migrate.stderr
        assert "Applying keys.0001_initial... OK" in migrate.stdout
        check = run([sys.executable, "manage.py", "check"], WRONG, name)
        assert check.returncode == 0, check.stderr  # no data key yet: any master key starts
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
