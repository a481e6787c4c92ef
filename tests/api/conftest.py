import pytest

from tests.api.support import ApiClient, token_for
from tests.approvals.support import publish_gated
from tests.support.workflows import chain, publish
from vectorbea.accounts.models import Role

TICKET_SCHEMA = {
    "type": "object",
    "properties": {
        "ticket": {"type": "string", "minLength": 1},
        "priority": {"type": "integer", "minimum": 1, "maximum": 5},
    },
    "required": ["ticket"],
}


def api_as(workspace, role: str, name: str | None = None) -> ApiClient:
    return ApiClient(token_for(workspace, role, name))


@pytest.fixture
def admin_api(acme):
    return api_as(acme, Role.ADMIN, "ci")


@pytest.fixture
def workflow(acme):
    return publish(acme, {**chain(1), "input_schema": TICKET_SCHEMA}, name="Triage")


@pytest.fixture
def gated_workflow(acme):
    return publish_gated(acme)
