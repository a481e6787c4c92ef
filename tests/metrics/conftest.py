import pytest

from tests.conftest import terminate_stray_connections


@pytest.fixture(scope="session", autouse=True)
def _close_consumer_connections(django_db_setup, django_db_blocker):
    """Websocket consumers run in threads that may leave connections to the test database."""
    yield
    with django_db_blocker.unblock():
        terminate_stray_connections()
