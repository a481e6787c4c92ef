import pytest

from tests.support.live import Live, flush_own_redis, prepare_side_effects


@pytest.fixture
def live(transactional_db):
    """Real worker/scheduler processes; tests must use the transactional database."""
    prepare_side_effects()
    flush_own_redis()
    services = Live()
    yield services
    services.stop_all()
