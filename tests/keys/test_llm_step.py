"""The LLM step with workspace keys: it sends the workspace's key, reports its id in the
usage, and fails permanently (calling nothing) when a required key is missing."""

from uuid import uuid4

import pytest

from tests.keys.support import canary
from tests.support.fake_llm import FakeLLM, ok
from vectorbea.engine import ErrorClass, StepError
from vectorbea.keys import vault
from vectorbea.steps import llm
from vectorbea.steps.registry import StepContext, run_now


def run_llm(config, ctx):
    """The step as a worker makes it: its call awaited, then finished."""
    return run_now(llm.run_llm(config, ctx))


pytestmark = pytest.mark.django_db

CONFIG = {"provider": "anthropic", "model": "claude-haiku-4-5", "prompt": "Hi"}


@pytest.fixture
def fake(settings):
    with FakeLLM() as server:
        settings.VECTORBEA_ANTHROPIC_BASE_URL = server.anthropic_url
        settings.VECTORBEA_ANTHROPIC_API_KEY = "sk-ant-platform-0123456789abcdef"
        yield server


def sent_key(request) -> str:
    headers = request.headers
    return headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")


def ctx_for(workspace) -> StepContext:
    run_id = uuid4()
    return StepContext(run_id, workspace.id, "s0", 1, f"vb-{run_id}-s0", {}, {})


def test_it_calls_with_the_workspace_key_and_reports_its_id(fake, acme, alice):
    value = canary("sk-ant-")
    key = vault.add_key(acme, "anthropic", value, "", alice)
    fake.script(ok("hi"))
    result = run_llm(CONFIG, ctx_for(acme))
    assert sent_key(fake.requests[0]) == value
    assert result.usage["key_id"] == str(key.id)
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_the_installation_key_is_used_without_one_and_not_audited_as_a_workspace_key(fake, acme):
    result = run_llm(CONFIG, ctx_for(acme))
    assert sent_key(fake.requests[0]) == "sk-ant-platform-0123456789abcdef"
    assert "key_id" not in result.usage


def test_a_missing_required_key_is_permanent_and_calls_nothing(fake, acme):
    vault.set_policy(acme, require_own_keys=True)
    with pytest.raises(StepError) as caught:
        run_llm(CONFIG, ctx_for(acme))
    assert caught.value.error_class == ErrorClass.PERMANENT
    assert caught.value.message.startswith(
        "No Anthropic key is set for this workspace: add one in Settings → Providers"
    )
    assert fake.requests == []


def test_a_revoked_key_is_not_used(fake, acme, alice):
    key = vault.add_key(acme, "anthropic", canary("sk-ant-"), "", alice)
    vault.revoke_key(key)
    vault.set_policy(acme, require_own_keys=True)
    with pytest.raises(StepError):
        run_llm(CONFIG, ctx_for(acme))
    assert fake.requests == []
