"""Settings for the test suite: the real Postgres and Redis, on names of their own.

Each pytest-xdist worker gets its own Redis key prefix (and pytest-django its own database),
so parallel test processes never see each other's messages.
"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-secret-key-that-is-long-enough-for-checks-000")
os.environ.setdefault(
    "VECTORBEA_MASTER_KEY", "dGVzdC1tYXN0ZXIta2V5LTMyLWJ5dGVzLWxvbmctISE="
)  # base64 of b"test-master-key-32-bytes-long-!!"
# Redis db 9 for a plain run, 10, 11, ... for xdist workers gw0, gw1, ...: a test may
# FLUSHDB its own database without touching another test process's messages.
# (VECTORBEA_TEST_REDIS_DB moves the base, for two checkouts on one machine.)
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
_base = int(os.environ.get("VECTORBEA_TEST_REDIS_DB", "9"))
_redis_db = _base + 1 + int(_worker[2:]) if _worker.startswith("gw") else _base
os.environ["REDIS_URL"] = f"redis://127.0.0.1:6379/{_redis_db}"
os.environ["REDIS_PREFIX"] = f"vbtest-{_worker or 'main'}"
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("VECTORBEA_LEASE_SECONDS", "2")
# Metrics files: a directory per test process, shared with the worker processes it starts
# (they inherit both variables), removed by the process that made it. An xdist worker
# inherits its controller's variables and makes its own.
if os.environ.get("VECTORBEA_TEST_METRICS_OWNER") != (_worker or "main"):
    os.environ["VECTORBEA_TEST_METRICS_OWNER"] = _worker or "main"
    os.environ["VECTORBEA_METRICS_DIR"] = tempfile.mkdtemp(prefix="vectorbea-metrics-")
    atexit.register(shutil.rmtree, os.environ["VECTORBEA_METRICS_DIR"], ignore_errors=True)
# Playwright's sync API runs an event loop in the test thread (microsoft/playwright-pytest#29).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from vectorbea.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# Several checkouts on one machine can keep their test databases apart.
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("VECTORBEA_TEST_DB", "test_vectorbea")}  # noqa: F405
# Test processes close connections after each request and consumer call, so none is left
# open on the test database when pytest-django drops it. Worker subprocesses keep theirs.
DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("DB_CONN_MAX_AGE", "0"))  # noqa: F405
