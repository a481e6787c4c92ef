"""{{ secrets.NAME }} in step settings: the value is sent only by the step that calls out,
never rendered anywhere else; its use is checked when the workflow is saved and again when
the step runs."""

import json
from uuid import uuid4

import pytest

from tests.keys.support import assert_no_leak, canary
from tests.support.counting_server import CountingServer
from tests.support.workflows import chain
from vectorbea.engine import ErrorClass, StepError
from vectorbea.keys import vault
from vectorbea.keys.redaction import redact
from vectorbea.steps import http
from vectorbea.steps.builtin import run_tool
from vectorbea.steps.registry import StepContext, run_now
from vectorbea.steps.templating import render_config, template_context
from vectorbea.steps.tools import tool
from vectorbea.workflows.checks import draft_issues


def run_http(config, ctx):
    """The step as a worker makes it: its call awaited, then finished."""
    return run_now(http.run_http(config, ctx))


pytestmark = pytest.mark.django_db

BEARER = {"Authorization": "Bearer {{ secrets.TOKEN }}"}


def make_ctx(workspace, run_input=None) -> StepContext:
    run_id = uuid4()
    return StepContext(
        run_id=run_id,
        workspace_id=workspace.id,
        step_id="call",
        attempt=1,
        idempotency_key=f"vb-{run_id}-call",
        run_input=run_input or {},
        outputs={},
    )


@pytest.fixture
def server(settings):
    with CountingServer() as running:
        settings.VECTORBEA_HTTP_ALLOWLIST = [running.allow]
        yield running


@pytest.fixture
def token(acme, alice) -> str:
    value = canary("ghp_")
    vault.set_secret(acme, "TOKEN", value, alice)
    return value


def failure(config: dict, ctx: StepContext) -> StepError:
    with pytest.raises(StepError) as caught:
        run_http(config, ctx)
    return caught.value


def test_an_http_step_sends_the_secrets_value_in_its_header(server, acme, token):
    config = {"url": server.url("/status/200?echo=authorization"), "headers": BEARER}
    output = run_http(config, make_ctx(acme))
    [request] = server.requests
    assert request.headers["authorization"] == f"Bearer {token}"
    # The server echoed it: whatever records the output sees it replaced.
    assert output["body"]["echo"] == f"Bearer {token}"
    assert_no_leak(redact(json.dumps(output)), token, "the recorded output")


def test_a_secret_in_the_url_is_sent_and_kept_out_of_messages(server, acme, token):
    url = server.url("/status/401?key={{ secrets.TOKEN }}&echo=authorization")
    error = failure({"url": url}, make_ctx(acme))
    assert server.requests[0].path.endswith(f"key={token}&echo=authorization")
    assert error.error_class == ErrorClass.PERMANENT
    assert_no_leak(error.message, token, "the step error")


def test_an_echo_of_the_secret_in_an_error_is_redacted(server, acme, token):
    config = {"url": server.url("/status/403?echo=authorization"), "headers": BEARER}
    error = failure(config, make_ctx(acme))
    assert "HTTP 403" in error.message and "[redacted]" in error.message
    assert_no_leak(error.message, token, "the step error")


def test_a_missing_secret_fails_permanently_naming_it_and_sends_nothing(server, acme):
    config = {"url": server.url(), "headers": {"X-Api-Key": "{{ secrets.MISSING }}"}}
    error = failure(config, make_ctx(acme))
    assert error.error_class == ErrorClass.PERMANENT
    assert "This workspace has no secret 'MISSING'." in error.message
    assert "Settings → Secrets" in error.message
    assert server.requests == []


def test_another_workspaces_secret_is_not_found(server, acme, globex, token):
    error = failure({"url": server.url(), "headers": BEARER}, make_ctx(globex))
    assert "This workspace has no secret 'TOKEN'." in error.message
    assert server.requests == []


def test_a_secret_written_into_the_run_input_stays_text(server, acme, token):
    """Data is never evaluated as a template: input that spells {{ secrets.TOKEN }} is sent
    as those characters, not as the secret."""
    config = {"url": server.url(), "headers": {"X-Note": "{{ input.note }}"}}
    run_http(config, make_ctx(acme, {"note": "{{ secrets.TOKEN }}"}))
    [request] = server.requests
    assert request.headers["x-note"] == "{{ secrets.TOKEN }}"


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"headers": {"X-Key": "{{ secrets.TOKEN | lower }}"}}, "Use a secret whole"),
        ({"headers": {"X-Key": "{{ secrets.TOKEN ~ 'x' }}"}}, "Use a secret whole"),
        ({"headers": {"X-Key": "{% if secrets.TOKEN %}y{% endif %}"}}, "Use a secret whole"),
        ({"headers": {"X-Key": "{{ secrets }}"}}, "Use a secret whole"),
        ({"body": "token={{ secrets.TOKEN }}"}, "only in an HTTP step's URL and headers"),
    ],
)
def test_a_secret_used_other_than_whole_in_a_url_or_header_is_refused(
    server, acme, token, config, problem
):
    error = failure({"url": server.url(), **config}, make_ctx(acme))
    assert error.error_class == ErrorClass.PERMANENT
    assert problem in error.message
    assert_no_leak(error.message, token, "the step error")
    assert server.requests == []


TOOL_CALLS: list[dict] = []


@tool("secrets_test_tool")
def secrets_test_tool(args, ctx):
    TOOL_CALLS.append(dict(args))
    return {"ok": True}


def test_a_tool_gets_the_value_in_its_arguments(acme, token):
    TOOL_CALLS.clear()
    config = {"tool": "secrets_test_tool", "args": {"token": "{{ secrets.TOKEN }}", "n": 1}}
    assert run_tool(config, make_ctx(acme)) == {"ok": True}
    assert TOOL_CALLS == [{"token": token, "n": 1}]


def test_everywhere_else_a_secret_renders_as_its_own_text(acme, token):
    """The executor's and the step page's render never hold a value."""
    rendered = render_config(
        {"h": "Bearer {{ secrets.TOKEN }}", "whole": "{{ secrets.TOKEN }}"},
        template_context({}, {}),
    )
    assert rendered == {"h": "Bearer {{ secrets.TOKEN }}", "whole": "{{ secrets.TOKEN }}"}


def http_step(**config) -> dict:
    return chain(1, "http", {"url": "https://api.example.com/", **config})


def messages(definition, workspace=None) -> list[str]:
    return [issue.message for issue in draft_issues(definition, workspace and workspace.id)]


def test_the_builder_flags_a_secret_the_workspace_does_not_have(acme, token):
    assert messages(http_step(headers=BEARER), acme) == []
    missing = http_step(headers={"Authorization": "Bearer {{ secrets.OTHER }}"})
    assert messages(missing, acme) == [
        "Setting 'headers.Authorization' of step 's0': this workspace has no secret 'OTHER'. "
        "An owner or admin can add it in Settings → Secrets."
    ]
    # Without a workspace (an import), only the definition itself is checked.
    assert messages(missing) == []


WHERE = "A secret can be used only in an HTTP step's URL and headers, or a Python tool step's"


@pytest.mark.parametrize(
    ("definition", "problem"),
    [
        (http_step(headers={"X": "{{ secrets.T | upper }}"}), "Use a secret whole"),
        (http_step(body={"t": "{{ secrets.T }}"}), WHERE),
        (chain(1, "llm", {"provider": "openai", "model": "m", "prompt": "{{ secrets.T }}"}), WHERE),
        (chain(1, "noop", {"output": "{{ secrets.T }}"}), WHERE),
        (chain(1, "tool", {"tool": "{{ secrets.T }}"}), WHERE),
    ],
)
def test_the_builder_flags_a_secret_used_where_it_may_not_be(definition, problem):
    assert any(problem in message for message in messages(definition)), messages(definition)


def test_publishing_is_refused_while_a_secret_is_missing(acme, alice):
    from vectorbea.workflows import commands
    from vectorbea.workflows.models import Workflow

    workflow = Workflow.objects.create(
        workspace=acme, name="Calls", draft=http_step(headers=BEARER)
    )
    with pytest.raises(commands.PublishRefused) as refused:
        commands.publish_draft(workflow, workflow.draft_revision, alice)
    assert "no secret 'TOKEN'" in refused.value.issues[0].message
    vault.set_secret(acme, "TOKEN", canary("ghp_"), alice)
    assert commands.publish_draft(workflow, workflow.draft_revision, alice).number == 1
