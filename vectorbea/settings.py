"""Vectorbea settings. Every knob comes from the environment (see docs/configuration.md).

Local defaults are safe for a laptop: DEBUG on, a development secret and master key.
With DEBUG off the process refuses to start unless SECRET_KEY and VECTORBEA_MASTER_KEY
are real values.
"""

import base64
import binascii
import ipaddress
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent
load_dotenv(BASE_DIR / ".env", override=False)

DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me"  # noqa: S105
# 32 zero-ish bytes, base64: only ever accepted with DEBUG on.
DEV_MASTER_KEY = base64.urlsafe_b64encode(b"vectorbea-development-master-key").decode()


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: str) -> bool:
    value = env(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def envint(name: str, default: str) -> int:
    value = env(name, default)
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


def envfloat(name: str, default: str) -> float:
    value = env(name, default)
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


def envnetworks(name: str, default: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma-separated networks in CIDR notation (a bare address is one host)."""
    try:
        return [ipaddress.ip_network(item) for item in envlist(name, default)]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc} (use CIDRs like 10.0.0.0/8)") from None


def master_keys(raw: list[str]) -> list[bytes]:
    """Decode VECTORBEA_MASTER_KEY: comma-separated url-safe base64 keys of 32 bytes,
    newest first."""
    keys = []
    for position, item in enumerate(raw, 1):
        try:
            key = base64.urlsafe_b64decode(item.encode())
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 32:
            raise ImproperlyConfigured(
                f"VECTORBEA_MASTER_KEY entry {position} is not a url-safe base64 encoding of "
                '32 bytes. Make one with: python -c "import base64,os; '
                'print(base64.urlsafe_b64encode(os.urandom(32)).decode())"'
            )
        keys.append(key)
    if not keys:
        raise ImproperlyConfigured(
            "VECTORBEA_MASTER_KEY is empty. Set it to a url-safe base64 encoding of 32 random "
            "bytes (unset it to use the development key, which only works with DEBUG on)."
        )
    return keys


DEBUG = envbool("DEBUG", "true")
SECRET_KEY = env("SECRET_KEY", DEV_SECRET_KEY)
VECTORBEA_MASTER_KEYS = master_keys(envlist("VECTORBEA_MASTER_KEY", DEV_MASTER_KEY))

if not DEBUG:
    if SECRET_KEY == DEV_SECRET_KEY or len(SECRET_KEY) < 32:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set to a random value of at least 32 characters when DEBUG is off."
        )
    if base64.urlsafe_b64decode(DEV_MASTER_KEY) in VECTORBEA_MASTER_KEYS:
        raise ImproperlyConfigured(
            "VECTORBEA_MASTER_KEY must be set to your own key when DEBUG is off "
            "(the development key is public)."
        )

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")
SITE_URL = env("SITE_URL", "http://localhost:8000")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "channels",
    "vectorbea.accounts",
    "vectorbea.workflows",
    "vectorbea.eventlog",
    "vectorbea.runs",
    "vectorbea.approvals",
    "vectorbea.keys",
    "vectorbea.budgets",
    "vectorbea.triggers",
    "vectorbea.api",
    "vectorbea.front",
    "vectorbea.metrics",
    "workers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "vectorbea.front.errors.NotFoundPageMiddleware",  # DEBUG only: the styled 404, not Django's
]

ROOT_URLCONF = "vectorbea.urls"
ASGI_APPLICATION = "vectorbea.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "vectorbea.accounts.context.workspace_nav",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/vectorbea"),
        conn_max_age=envint("DB_CONN_MAX_AGE", "60"),
        conn_health_checks=True,
    )
}
# Django's own queries bind on the client and are never prepared; the engine's hot
# statements (eventlog.store.prepared_cursor) ask to be, which needs a threshold set.
DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
# Key prefix for everything Vectorbea puts in Redis (broker namespace, channel layer).
REDIS_PREFIX = env("REDIS_PREFIX", "vectorbea")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # channels_redis waits up to 5 s in BZPOPMIN for a consumer's next message;
            # redis-py's default 5 s socket timeout would cut that wait and kill the
            # consumer (close 1011) every few seconds on a quiet socket.
            "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
            "prefix": f"{REDIS_PREFIX}:asgi",
        },
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG

EMAIL_BACKEND_PATH = env(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
MAILERS = {
    "default": {
        "BACKEND": EMAIL_BACKEND_PATH,
        "OPTIONS": (
            {
                "host": env("EMAIL_HOST", "localhost"),
                "port": envint("EMAIL_PORT", "587"),
                "username": env("EMAIL_HOST_USER", ""),
                "password": env("EMAIL_HOST_PASSWORD", ""),
                "use_tls": envbool("EMAIL_USE_TLS", "true"),
            }
            if EMAIL_BACKEND_PATH.endswith("smtp.EmailBackend")
            else {}
        ),
    }
}
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "vectorbea@localhost")

# Content-Security-Policy: no inline script anywhere, no eval.
SECURE_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the <body> hx-headers, not the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "true")
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Health checks from a load balancer speak plain HTTP to the process.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", "31536000")
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", "true")

# The engine.
VECTORBEA_LEASE_SECONDS = envfloat("VECTORBEA_LEASE_SECONDS", "30")
VECTORBEA_SCHEDULER_INTERVAL_SECONDS = envfloat("VECTORBEA_SCHEDULER_INTERVAL_SECONDS", "0.25")
VECTORBEA_TOOL_MODULES = envlist("VECTORBEA_TOOL_MODULES", "")
# A checkpoint of folded run state is written every this many events.
VECTORBEA_CHECKPOINT_EVERY = envint("VECTORBEA_CHECKPOINT_EVERY", "25")
# How long a stopping worker lets its in-flight steps finish before handing them back.
VECTORBEA_SHUTDOWN_GRACE_SECONDS = envfloat("VECTORBEA_SHUTDOWN_GRACE_SECONDS", "10")
# Slow calls (a model's answer, an HTTP response) in flight at once per worker process, on
# its event loop; and the threads that record their outcomes (each holds a database
# connection). See docs/architecture.md, "Slow steps".
VECTORBEA_CALLS_IN_FLIGHT = envint("VECTORBEA_CALLS_IN_FLIGHT", "1000")
VECTORBEA_RECORDER_THREADS = envint("VECTORBEA_RECORDER_THREADS", "4")
if VECTORBEA_CALLS_IN_FLIGHT < 1 or VECTORBEA_RECORDER_THREADS < 1:
    raise ImproperlyConfigured(
        "VECTORBEA_CALLS_IN_FLIGHT and VECTORBEA_RECORDER_THREADS must be at least 1."
    )
# The window of the per-minute rate limits (seconds); tests shorten it.
VECTORBEA_RATE_LIMIT_WINDOW_SECONDS = envfloat("VECTORBEA_RATE_LIMIT_WINDOW_SECONDS", "60")
# The shortest time a schedule may leave between two runs: a cron expression that fires
# more often is refused by the form, and a stored one is turned off when it would fire.
VECTORBEA_SCHEDULE_MIN_INTERVAL_SECONDS = envint("VECTORBEA_SCHEDULE_MIN_INTERVAL_SECONDS", "60")
if VECTORBEA_SCHEDULE_MIN_INTERVAL_SECONDS < 1:
    raise ImproperlyConfigured("VECTORBEA_SCHEDULE_MIN_INTERVAL_SECONDS must be at least 1.")

# Prometheus metrics at /metrics (vectorbea.metrics). Every process of a host (web, workers,
# scheduler, commands) writes its figures to its own files in this directory and /metrics
# adds them up. prometheus_client reads PROMETHEUS_MULTIPROC_DIR once, when it is first
# imported, so it is set here: settings load before anything imports it.
VECTORBEA_METRICS_DIR = str(BASE_DIR / env("VECTORBEA_METRICS_DIR", "var/metrics"))
os.environ["PROMETHEUS_MULTIPROC_DIR"] = VECTORBEA_METRICS_DIR
# Who may read /metrics: a request with "Authorization: Bearer <token>", or one from an
# allowed network that did not come through a proxy.
VECTORBEA_METRICS_TOKEN = env("VECTORBEA_METRICS_TOKEN", "")
if VECTORBEA_METRICS_TOKEN and len(VECTORBEA_METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("VECTORBEA_METRICS_TOKEN must be at least 16 characters (or empty).")
VECTORBEA_METRICS_ALLOW = envnetworks("VECTORBEA_METRICS_ALLOW", "127.0.0.0/8,::1/128")

# LOG_FORMAT=json: one JSON object per line (for log shippers), with run_id, step_id and
# attempt on every line emitted during a step (vectorbea.logcontext).
LOG_FORMAT = env("LOG_FORMAT", "plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "vectorbea.logcontext.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(run_id)s %(step_id)s "
            "%(attempt)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "filters": {
        # Provider keys this process has decrypted never reach a log line (vectorbea.keys).
        "redact_keys": {"()": "vectorbea.keys.redaction.RedactKeys"},
        "step_context": {"()": "vectorbea.logcontext.StepContextFilter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["redact_keys", "step_context"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- LLM and HTTP steps ---
# Provider endpoints and installation-wide keys. Keys are read only by
# vectorbea.llm.keys.provider_key, which prefers the workspace's own key (vectorbea.keys).
VECTORBEA_OPENAI_BASE_URL = env("VECTORBEA_OPENAI_BASE_URL", "https://api.openai.com/v1")
VECTORBEA_ANTHROPIC_BASE_URL = env("VECTORBEA_ANTHROPIC_BASE_URL", "https://api.anthropic.com")
VECTORBEA_OPENAI_API_KEY = env("VECTORBEA_OPENAI_API_KEY", "")
VECTORBEA_ANTHROPIC_API_KEY = env("VECTORBEA_ANTHROPIC_API_KEY", "")
# Private addresses HTTP steps (and LLM steps with their own base_url) may call anyway:
# comma-separated CIDRs or host:port pairs. Checked here so a typo fails at startup.
VECTORBEA_HTTP_ALLOWLIST = envlist("VECTORBEA_HTTP_ALLOWLIST", "")


def _check_allowlist(entries: list[str]) -> None:
    from vectorbea.steps.ssrf import parse_allowlist

    try:
        parse_allowlist(entries)
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from None


_check_allowlist(VECTORBEA_HTTP_ALLOWLIST)
