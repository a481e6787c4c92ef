import pytest

from tests.conftest import terminate_stray_connections


@pytest.fixture(scope="session", autouse=True)
def _close_consumer_connections(django_db_setup, django_db_blocker):
    """Websocket consumers and request threads can leave idle connections on the test
    database; close them so it can be dropped (as tests/ws does)."""
    yield
    with django_db_blocker.unblock():
        terminate_stray_connections()
