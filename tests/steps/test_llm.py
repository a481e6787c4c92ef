"""The llm step against the scripted fake provider, calling the handler directly."""

import socket
from decimal import Decimal
from uuid import uuid4

import pytest

from tests.support.fake_llm import FakeLLM, malformed, ok, ok_json, stall, status
from vectorbea.budgets.guard import estimated_tokens, worst_case_usd
from vectorbea.budgets.models import SpendLedger
from vectorbea.engine import ErrorClass, StepError
from vectorbea.llm.pricing import FALLBACK
from vectorbea.steps import llm
from vectorbea.steps.registry import StepContext, StepResult, run_now


def run_llm(config, ctx):
    """The step as a worker makes it: its call awaited, then finished."""
    return run_now(llm.run_llm(config, ctx))


KEY = "sk-test-0123456789abcdefSECRET"
PROVIDERS = ["openai", "anthropic"]
# provider_key() looks for the workspace's own key (BYOK) before the installation's.
pytestmark = pytest.mark.django_db


def make_ctx() -> StepContext:
    from vectorbea.accounts.models import Workspace

    run_id = uuid4()
    workspace = Workspace.objects.create(slug=f"ws-{run_id.hex[:12]}", name="Calls")
    return StepContext(
        run_id=run_id,
        workspace_id=workspace.id,
        step_id="ask",
        attempt=1,
        idempotency_key=f"vb-{run_id}-ask",
        run_input={},
        outputs={},
    )


@pytest.fixture
def fake(settings):
    with FakeLLM() as server:
        settings.VECTORBEA_OPENAI_BASE_URL = server.openai_url
        settings.VECTORBEA_ANTHROPIC_BASE_URL = server.anthropic_url
        settings.VECTORBEA_OPENAI_API_KEY = KEY
        settings.VECTORBEA_ANTHROPIC_API_KEY = KEY
        settings.VECTORBEA_HTTP_ALLOWLIST = []
        yield server


def config(provider: str, **extra) -> dict:
    return {"provider": provider, "model": "gpt-4o-mini", "prompt": "Say hi", **extra}


def failure(provider: str, **extra) -> StepError:
    with pytest.raises(StepError) as caught:
        run_llm(config(provider, **extra), make_ctx())
    return caught.value


@pytest.mark.parametrize("provider", PROVIDERS)
def test_it_returns_the_answer_and_what_it_cost(fake, provider):
    fake.script(ok("Hello!", usage=(1200, 300), model="gpt-4o-mini-2024-07-18"))
    result = run_llm(config(provider, system="Be brief", temperature=0.2), make_ctx())
    assert isinstance(result, StepResult)
    assert result.output == {
        "text": "Hello!",
        "json": None,
        "model": "gpt-4o-mini-2024-07-18",
        "finish_reason": "stop" if provider == "openai" else "end_turn",
    }
    assert result.usage == {
        "provider": provider,
        "model": "gpt-4o-mini-2024-07-18",
        "input_tokens": 1200,
        "output_tokens": 300,
        "cost_usd": pytest.approx((1200 * 0.15 + 300 * 0.60) / 1e6),
        "cost_estimated": False,
    }
    [request] = fake.requests
    assert request.api == provider
    assert request.body["temperature"] == 0.2
    assert request.body["max_tokens"] == 1024
    assert KEY in request.headers.get("authorization", "") + request.headers.get("x-api-key", "")
    if provider == "openai":
        assert request.body["messages"] == [
            {"role": "system", "content": "Be brief"},
            {"role": "user", "content": "Say hi"},
        ]
    else:
        assert request.body["system"] == "Be brief"
        assert request.body["messages"] == [{"role": "user", "content": "Say hi"}]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_unknown_model_is_charged_as_an_estimate(fake, provider):
    fake.script(ok("hi", usage=(1000, 1000), model="llama3.2:3b"))
    result = run_llm(config(provider, model="llama3.2:3b"), make_ctx())
    assert result.usage["cost_estimated"] is True
    assert result.usage["cost_usd"] == pytest.approx(
        (1000 * FALLBACK.input_per_million + 1000 * FALLBACK.output_per_million) / 1e6
    )


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("reply", "error_class", "retry_after"),
    [
        (status(429, headers={"Retry-After": "2"}), ErrorClass.RATE_LIMITED, 2.0),
        (status(429), ErrorClass.RATE_LIMITED, None),
        (status(500), ErrorClass.TRANSIENT, None),
        (status(502, body="<html>Bad gateway</html>"), ErrorClass.TRANSIENT, None),
        (status(503), ErrorClass.TRANSIENT, None),
        (status(504), ErrorClass.TRANSIENT, None),
        (status(529), ErrorClass.TRANSIENT, None),
        (stall(1.5), ErrorClass.TRANSIENT, None),
        (malformed(), ErrorClass.TRANSIENT, None),
        (status(400), ErrorClass.PERMANENT, None),
        (status(401), ErrorClass.PERMANENT, None),
        (status(403), ErrorClass.PERMANENT, None),
        (status(404), ErrorClass.PERMANENT, None),
        (status(422), ErrorClass.PERMANENT, None),
    ],
    ids=lambda value: getattr(value, "kind", None) and f"{value.kind}-{value.status}",
)
def test_each_provider_failure_maps_to_its_error_class(
    fake, provider, reply, error_class, retry_after
):
    fake.script(reply)
    error = failure(provider, timeout_seconds=0.5)
    assert error.error_class == error_class, error.message
    assert error.retry_after_seconds == retry_after
    assert len(fake.requests) == 1, "the SDK must not retry: the engine does"


def spent_and_held(ctx) -> tuple[Decimal, Decimal]:
    row = SpendLedger.objects.get(workspace_id=ctx.workspace_id, scope="run", key=str(ctx.run_id))
    return row.spent_usd, row.reserved_usd


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("reply", "charged"),
    [
        (status(500), False),  # the provider answered with an error: it bills nothing
        (status(429), False),
        (status(400), False),
        (stall(1.5), True),  # sent, no answer in time: it may have been billed
        (malformed(), True),  # sent, answered, but what it cost cannot be read
    ],
    ids=lambda value: getattr(value, "kind", None) and f"{value.kind}-{value.status}",
)
def test_a_failed_call_costs_its_worst_case_unless_the_provider_said_it_failed(
    fake, provider, reply, charged
):
    fake.script(reply)
    ctx = make_ctx()
    with pytest.raises(StepError):
        run_llm(config(provider, timeout_seconds=0.5), ctx)

    worst = worst_case_usd("gpt-4o-mini", estimated_tokens("", "Say hi"), 1024)
    assert spent_and_held(ctx) == (worst if charged else 0, 0)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_call_that_could_not_connect_costs_nothing(settings, provider):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.VECTORBEA_OPENAI_BASE_URL = f"http://127.0.0.1:{port}/v1"
    settings.VECTORBEA_ANTHROPIC_BASE_URL = f"http://127.0.0.1:{port}"
    settings.VECTORBEA_OPENAI_API_KEY = settings.VECTORBEA_ANTHROPIC_API_KEY = KEY
    ctx = make_ctx()
    with pytest.raises(StepError):
        run_llm(config(provider), ctx)
    assert spent_and_held(ctx) == (0, 0)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_answered_call_costs_what_its_usage_says(fake, provider):
    fake.script(ok("Hello!", usage=(1200, 300)))
    ctx = make_ctx()
    result = run_llm(config(provider), ctx)
    assert spent_and_held(ctx) == (Decimal(str(result.usage["cost_usd"])), 0)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_retry_after_http_date_becomes_seconds(fake, provider):
    fake.script(status(429, headers={"Retry-After": "Fri, 01 Jan 2100 00:00:00 GMT"}))
    error = failure(provider)
    assert error.error_class == ErrorClass.RATE_LIMITED
    assert error.retry_after_seconds > 3600


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_unreachable_provider_is_transient(settings, provider):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.VECTORBEA_OPENAI_BASE_URL = f"http://127.0.0.1:{port}/v1"
    settings.VECTORBEA_ANTHROPIC_BASE_URL = f"http://127.0.0.1:{port}"
    settings.VECTORBEA_OPENAI_API_KEY = settings.VECTORBEA_ANTHROPIC_API_KEY = KEY
    error = failure(provider)
    assert error.error_class == ErrorClass.TRANSIENT
    assert "Could not reach" in error.message


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_key_echoed_by_the_provider_never_reaches_the_message(fake, provider):
    echo = f"Incorrect API key provided: {KEY}. Find yours at https://example.com"
    body = (
        {"type": "error", "error": {"type": "authentication_error", "message": echo}}
        if provider == "anthropic"
        else {"error": {"message": echo, "type": "invalid_request_error"}}
    )
    fake.script(status(401, body=body))
    error = failure(provider)
    assert error.error_class == ErrorClass.PERMANENT
    assert "Incorrect API key provided: [redacted]" in error.message
    assert KEY not in error.message and KEY[:12] not in error.message
    assert KEY not in repr(error.args)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_output_schema_asks_for_json_and_returns_it_parsed(fake, provider):
    schema = {
        "type": "object",
        "properties": {"sentiment": {"enum": ["positive", "negative"]}},
        "required": ["sentiment"],
    }
    fake.script(ok_json({"sentiment": "positive"}))
    result = run_llm(config(provider, output_schema=schema), make_ctx())
    assert result.output["json"] == {"sentiment": "positive"}
    [request] = fake.requests
    system = (
        request.body["messages"][0]["content"] if provider == "openai" else request.body["system"]
    )
    assert "JSON Schema" in system and '"sentiment"' in system
    if provider == "openai":
        assert request.body["response_format"]["type"] == "json_schema"
        assert request.body["response_format"]["json_schema"]["schema"] == schema


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_fenced_json_answer_is_accepted(fake, provider):
    fake.script(ok('```json\n{"n": 3}\n```'))
    result = run_llm(config(provider, output_schema={"type": "object"}), make_ctx())
    assert result.output["json"] == {"n": 3}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_answer_that_is_not_json_is_invalid_output_with_its_usage(fake, provider):
    fake.script(ok("Sure! Here is your JSON: {oops", usage=(50, 20)))
    error = failure(provider, output_schema={"type": "object"})
    assert error.error_class == ErrorClass.INVALID_OUTPUT
    assert "not JSON" in error.message
    assert error.usage["input_tokens"] == 50 and error.usage["output_tokens"] == 20


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_answer_that_fails_the_schema_is_invalid_output_naming_the_errors(fake, provider):
    schema = {
        "type": "object",
        "properties": {"score": {"type": "integer"}, "label": {"type": "string"}},
        "required": ["score", "label"],
    }
    fake.script(ok_json({"score": "high"}))
    error = failure(provider, output_schema=schema)
    assert error.error_class == ErrorClass.INVALID_OUTPUT
    assert "'label' is a required property" in error.message
    assert "score: 'high' is not of type 'integer'" in error.message
    assert len(error.message) <= 1000


def test_a_truncated_json_answer_says_it_was_cut_off(fake):
    fake.script(ok('{"items": [1, 2,', finish_reason="length"))
    error = failure("openai", output_schema={"type": "object"})
    assert error.error_class == ErrorClass.INVALID_OUTPUT
    assert "cut off at max_tokens" in error.message


def test_an_invalid_output_schema_is_a_permanent_error_before_any_call(fake):
    error = failure("openai", output_schema={"type": "no-such-type"})
    assert error.error_class == ErrorClass.PERMANENT
    assert "output_schema" in error.message
    assert fake.requests == []


def test_a_missing_key_for_a_hosted_provider_is_permanent_and_calls_nothing(settings):
    settings.VECTORBEA_ANTHROPIC_BASE_URL = "https://api.anthropic.com"
    settings.VECTORBEA_ANTHROPIC_API_KEY = ""
    error = failure("anthropic")
    assert error.error_class == ErrorClass.PERMANENT
    assert "VECTORBEA_ANTHROPIC_API_KEY" in error.message


def test_a_local_openai_compatible_server_needs_no_key(fake, settings):
    settings.VECTORBEA_OPENAI_API_KEY = ""
    result = run_llm(config("openai"), make_ctx())
    assert result.output["text"]
    assert len(fake.requests) == 1


def test_a_cancelled_step_does_not_call_the_provider(fake):
    ctx = make_ctx()
    ctx.cancelled.set()
    with pytest.raises(StepError) as caught:
        run_llm(config("openai"), ctx)
    assert caught.value.error_class == ErrorClass.CANCELLED
    assert fake.requests == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_step_base_url_goes_through_the_ssrf_guard(fake, settings, provider):
    own_url = fake.openai_url if provider == "openai" else fake.anthropic_url
    settings.VECTORBEA_OPENAI_BASE_URL = "https://api.openai.com/v1"
    settings.VECTORBEA_ANTHROPIC_BASE_URL = "https://api.anthropic.com"
    error = failure(provider, base_url=own_url)
    assert error.error_class == ErrorClass.PERMANENT
    assert error.message.startswith("Refused to call 127.0.0.1: loopback addresses are blocked")
    assert fake.requests == []
    # Allow-listed, the same base_url is called (through the pinned transport).
    settings.VECTORBEA_HTTP_ALLOWLIST = [f"127.0.0.1:{fake.port}"]
    result = run_llm(config(provider, base_url=own_url), make_ctx())
    assert result.output["text"]
    [request] = fake.requests
    assert request.headers["host"] == f"127.0.0.1:{fake.port}"
    # The installation's key goes only to the installation's provider, never to a host
    # that a step chose.
    assert KEY not in str(request.headers)


def test_a_registered_validator_refuses_an_answer_and_its_problems_are_kept(fake):
    from vectorbea.steps.tools import validator

    @validator("cites_sources")
    def cites_sources(value):
        return [] if value.get("sources") else ["List at least one source in 'sources'."]

    fake.script(ok_json({"summary": "Otters", "sources": []}))
    schema = {"type": "object", "required": ["summary"]}
    with pytest.raises(StepError) as caught:
        run_llm(config("openai", output_schema=schema, validator="cites_sources"), make_ctx())

    error = caught.value
    assert error.error_class == ErrorClass.INVALID_OUTPUT
    assert "The validator refused the answer: List at least one source" in error.message
    assert error.detail == {
        "answer": '{"summary": "Otters", "sources": []}',
        "errors": ["List at least one source in 'sources'."],
    }
    assert error.usage["cost_usd"] > 0  # a refused answer is still paid for


def test_an_unknown_validator_is_a_permanent_error(fake):
    with pytest.raises(StepError, match="No validator named 'nope'") as caught:
        run_llm(config("openai", validator="nope"), make_ctx())
    assert caught.value.error_class == ErrorClass.PERMANENT
    assert fake.requests == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_correction_shows_the_model_its_answer_and_exactly_what_was_wrong(fake, provider):
    fake.script(ok_json({"label": "seven"}))
    ctx = make_ctx()
    ctx.correction = {"answer": "{label: 7", "errors": ["(root): not JSON"], "problem": "x"}

    run_llm(config(provider, output_schema={"type": "object"}), ctx)

    messages = fake.requests[0].body["messages"]
    assert [m["role"] for m in messages][-3:] == ["user", "assistant", "user"]
    assert messages[-2]["content"] == "{label: 7"
    assert "- (root): not JSON" in messages[-1]["content"]
    assert "fixing every problem listed" in messages[-1]["content"]


@pytest.mark.parametrize(
    "default",
    [
        "https://127.0.0.1:{port}/v1",  # the step downgrades the provider's https to http
        "http://127.0.0.1:{other}/v1",  # the same host, another port: another server
        "http://localhost:{port}/v1",  # the same server under another name
    ],
)
def test_a_key_goes_only_to_the_providers_own_scheme_host_and_port(fake, settings, default):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        other = probe.getsockname()[1]
    settings.VECTORBEA_OPENAI_BASE_URL = default.format(port=fake.port, other=other)
    settings.VECTORBEA_HTTP_ALLOWLIST = [f"127.0.0.1:{fake.port}"]
    result = run_llm(config("openai", base_url=fake.openai_url), make_ctx())
    assert result.output["text"]
    [request] = fake.requests
    assert KEY not in str(request.headers)


@pytest.mark.parametrize(
    "base_url",
    [
        "http://api.openai.com/v1",
        "https://api.openai.com:8443/v1",
        "http://api.anthropic.com",
    ],
)
def test_a_providers_api_over_plain_http_or_another_port_is_refused(fake, settings, base_url):
    settings.VECTORBEA_OPENAI_BASE_URL = "https://api.openai.com/v1"
    settings.VECTORBEA_ANTHROPIC_BASE_URL = "https://api.anthropic.com"
    provider = "anthropic" if "anthropic" in base_url else "openai"
    error = failure(provider, base_url=base_url)
    assert error.error_class == ErrorClass.PERMANENT
    assert error.message.startswith("Refused to call ")
    assert "only over https at the installation's provider URL" in error.message
    assert KEY not in error.message


def test_a_call_never_shows_its_key():
    import logging

    from vectorbea.llm.providers import Call

    call = Call(key=KEY, base_url="https://api.openai.com/v1", timeout_seconds=5)
    record = logging.LogRecord("t", logging.INFO, "f", 1, "calling %r / %s", (call, call), None)
    for shown in (repr(call), str(call), f"{call}", f"{call!r}", record.getMessage()):
        assert KEY not in shown and KEY[-8:] not in shown
        assert "https://api.openai.com/v1" in shown
