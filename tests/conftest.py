"""Shared fixtures. Tests use the real Postgres and Redis: if either is missing the session
stops at once with a message saying which one and how to start it (never a skip)."""

import os

import pytest
from django.conf import settings

from vectorbea.accounts.models import Membership, Role, Workspace
from vectorbea.preflight import problems


def pytest_sessionstart(session: pytest.Session) -> None:
    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    found = problems(url, settings.REDIS_URL)
    if found:
        raise pytest.UsageError("Tests need real services:\n" + "\n".join(found))


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix) -> None:
    """Give each test process a database of its own (test_vectorbea[_gw0]_p<pid>), so two
    test runs on one machine (two terminals, two worktrees, a helper's and the lead's) never
    flush or drop each other's tables."""
    for db_settings in settings.DATABASES.values():
        test_settings = db_settings.setdefault("TEST", {})
        name = test_settings.get("NAME") or f"test_{db_settings['NAME']}"
        test_settings["NAME"] = f"{name}_p{os.getpid()}"


def make_member(username: str, workspace: Workspace, role: str):
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(
        username=username, defaults={"email": f"{username}@example.com"}
    )
    user.set_password("correct horse battery staple")
    user.save()
    Membership.objects.update_or_create(workspace=workspace, user=user, defaults={"role": role})
    return user


@pytest.fixture
def acme(db) -> Workspace:
    return Workspace.objects.create(slug="acme", name="Acme")


@pytest.fixture
def globex(db) -> Workspace:
    return Workspace.objects.create(slug="globex", name="Globex")


@pytest.fixture
def alice(acme):
    """Owner of Acme."""
    return make_member("alice", acme, Role.OWNER)


@pytest.fixture
def bob(globex):
    """Owner of Globex: a stranger to everything in Acme."""
    return make_member("bob", globex, Role.OWNER)


def terminate_stray_connections() -> None:
    """Threads (Channels consumers, sync_to_async) can leave idle connections on the test
    database; close them so pytest-django can drop it and leaves nothing behind."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def live(transactional_db):
    """Real worker and scheduler processes (tests.support.live.Live) against this test
    process's database and Redis; tests using it see only committed data."""
    from tests.support.live import Live, flush_own_redis, prepare_side_effects

    prepare_side_effects()
    flush_own_redis()
    services = Live()
    yield services
    services.stop_all()
