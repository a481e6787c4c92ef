"""Settings → Providers: OpenAI-compatible servers beside the OpenAI and Anthropic keys.

A workspace adds a server (name, base URL, optional write-only key, default model); an LLM
step that names it, or names nothing while it is the default, calls it through the SSRF
guard with its key and model; "Test connection" makes one tiny call by the same path.
Owners and admins only; the key is shown by its last four characters and nowhere else."""

from uuid import uuid4

import pytest
from django.test import Client
from django.urls import reverse

from tests.conftest import make_member
from tests.keys.support import assert_no_leak, canary
from tests.support.fake_llm import FakeLLM, ok, status
from tests.support.workflows import chain
from vectorbea.accounts.models import Role
from vectorbea.engine import ErrorClass, StepError
from vectorbea.keys import vault
from vectorbea.keys.models import CompatibleProvider, Keyring
from vectorbea.llm.resolve import NO_PROVIDER, provider_problems, resolve
from vectorbea.steps import llm
from vectorbea.steps.registry import StepContext, run_now
from vectorbea.workflows.checks import draft_issues

pytestmark = pytest.mark.django_db


def page_url(ws: str = "acme") -> str:
    return reverse("provider-keys", args=[ws])


def save_url(ws: str = "acme") -> str:
    return reverse("compatible-provider-save", args=[ws])


def connection_url(ws: str = "acme") -> str:
    return reverse("provider-test", args=[ws])


@pytest.fixture
def fake(settings):
    with FakeLLM() as server:
        settings.VECTORBEA_HTTP_ALLOWLIST = [f"127.0.0.1:{server.port}"]
        yield server


@pytest.fixture
def owner_client(client, alice):
    client.force_login(alice)
    return client


def add_server(client, name="Local Ollama", base_url="http://127.0.0.1:11434/v1", **more):
    data = {
        "server-name": name,
        "server-base_url": base_url,
        "server-default_model": more.pop("model", "llama3.2"),
        "server-key": more.pop("key", ""),
        **{f"server-{k}": v for k, v in more.items()},
    }
    return client.post(save_url(), data)


def ctx_for(workspace) -> StepContext:
    run_id = uuid4()
    return StepContext(run_id, workspace.id, "s0", 1, f"vb-{run_id}-s0", {}, {})


def sent_key(request) -> str:
    return request.headers.get("authorization", "").removeprefix("Bearer ")


def test_an_owner_adds_a_server_and_its_key_is_shown_only_by_its_last_four(owner_client, acme):
    value = canary("ollama-")
    response = add_server(owner_client, key=value)
    assert response.status_code == 302
    html = owner_client.get(page_url()).content.decode()
    assert_no_leak(html, value, "the providers page")
    assert f"…{value[-4:]}" in html
    assert "Added the provider Local Ollama" in html
    entry = CompatibleProvider.objects.get(workspace=acme)
    assert (entry.name, entry.base_url, entry.default_model) == (
        "Local Ollama",
        "http://127.0.0.1:11434/v1",
        "llama3.2",
    )
    assert value.encode() not in bytes(entry.ciphertext)
    # The first provider a workspace sets up is its default.
    assert Keyring.objects.get(workspace=acme).default_provider == "Local Ollama"


def test_a_refused_address_is_saved_with_the_exact_setting_the_operator_adds(
    owner_client, settings
):
    settings.VECTORBEA_HTTP_ALLOWLIST = []
    add_server(owner_client)
    html = owner_client.get(page_url()).content.decode()
    setting = "the operator adds 127.0.0.1:11434 to VECTORBEA_HTTP_ALLOWLIST."
    assert "Steps cannot call it yet." in html
    assert setting in html
    settings.VECTORBEA_HTTP_ALLOWLIST = ["127.0.0.1:11434"]
    assert setting not in owner_client.get(page_url()).content.decode()


def test_changing_a_server_keeps_its_key_unless_told_and_names_are_case_blind(owner_client, acme):
    value = canary("vllm-")
    add_server(owner_client, name="GPU box", key=value)
    add_server(owner_client, name="gpu BOX", base_url="http://10.0.0.7:8000/v1", model="qwen")
    entry = CompatibleProvider.objects.get(workspace=acme)
    assert (entry.name, entry.base_url, entry.default_model) == (
        "gpu BOX",
        "http://10.0.0.7:8000/v1",
        "qwen",
    )
    assert entry.last_four == value[-4:] and entry.has_key
    add_server(owner_client, name="GPU box", **{"remove_key": "on"})
    entry.refresh_from_db()
    assert not entry.has_key and entry.last_four == ""


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("name", "OpenAI", "is the built-in provider’s name"),
        ("name", "", "Give the provider a name"),
        ("base_url", "localhost:11434", "Give a whole http or https address"),
        ("base_url", "ftp://example.com/v1", "Give a whole http or https address"),
        ("base_url", "http://me:pw@example.com/v1", "Leave the user name and password out"),
        ("model", "", "Name the model steps use by default"),
        ("key", "short", "a key needs at least 8"),
    ],
)
def test_bad_input_is_refused_with_a_plain_message(owner_client, field, value, error):
    response = add_server(owner_client, **{field: value})
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not CompatibleProvider.objects.exists()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR, Role.APPROVER])
def test_other_roles_cannot_add_test_or_delete_servers(client, acme, alice, role):
    entry, _ = vault.save_compatible_provider(
        acme, "Local", "http://127.0.0.1:1/v1", "m", None, alice
    )
    client.force_login(make_member("pat", acme, role))
    assert add_server(client).status_code == 403
    assert client.post(connection_url(), {"name": "Local"}).status_code == 403
    delete = reverse("compatible-provider-delete", args=["acme", entry.id])
    assert client.post(delete).status_code == 403
    assert CompatibleProvider.objects.count() == 1


def test_another_workspaces_server_is_not_found(client, acme, alice, bob, globex):
    entry, _ = vault.save_compatible_provider(
        acme, "Local", "http://127.0.0.1:1/v1", "m", None, alice
    )
    client.force_login(bob)
    delete = reverse("compatible-provider-delete", args=["globex", entry.id])
    assert client.post(delete).status_code == 404
    response = client.post(connection_url("globex"), {"name": "Local"})
    assert "There is no such provider" in response.content.decode()
    assert CompatibleProvider.objects.count() == 1


def test_the_forms_need_a_csrf_token(acme, alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert add_server(client).status_code == 403
    assert client.post(connection_url(), {"name": "openai"}).status_code == 403


def test_test_connection_shows_the_answer_and_sends_the_key(fake, owner_client, acme):
    value = canary("local-")
    add_server(owner_client, base_url=fake.openai_url, key=value, model="llama3.2")
    fake.script(ok("OK"))
    response = owner_client.post(connection_url(), {"name": "local ollama"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Connected." in html
    assert "Local Ollama answered with model llama3.2: “OK”" in html
    [request] = fake.requests
    assert sent_key(request) == value
    assert request.body["max_tokens"] == 1
    assert request.body["model"] == "llama3.2"
    assert_no_leak(html, value, "the test's answer")


def test_test_connection_shows_the_plain_error_without_the_key(fake, owner_client):
    value = canary("local-")
    add_server(owner_client, base_url=fake.openai_url, key=value)
    fake.script(status(401, body={"error": {"message": f"Invalid key {value}"}}))
    html = owner_client.post(
        connection_url(), {"name": "Local Ollama"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "Failed." in html
    assert "answered HTTP 401: Invalid key [redacted]" in html
    assert_no_leak(html, value, "the test's error")


def test_test_connection_says_which_setting_allows_a_refused_address(owner_client, settings):
    settings.VECTORBEA_HTTP_ALLOWLIST = []
    add_server(owner_client, base_url="http://127.0.0.1:11434/v1")
    html = owner_client.post(
        connection_url(), {"name": "Local Ollama"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "Failed." in html
    assert "the operator adds 127.0.0.1:11434 to VECTORBEA_HTTP_ALLOWLIST." in html


def test_test_connection_of_openai_without_any_key_says_where_to_add_one(owner_client, settings):
    settings.VECTORBEA_OPENAI_API_KEY = ""
    settings.VECTORBEA_OPENAI_BASE_URL = "https://api.openai.com/v1"
    html = owner_client.post(connection_url(), {"name": "openai"}).content.decode()
    assert html == ""  # without htmx: a redirect, and the message on the page
    page = owner_client.get(page_url()).content.decode()
    assert "No OpenAI key is set for this workspace: add one in Settings → Providers" in page


def test_a_step_that_names_the_server_calls_it_with_its_key_and_model(fake, acme, alice):
    value = canary("local-")
    entry, _ = vault.save_compatible_provider(
        acme, "Local Ollama", fake.openai_url, "llama3.2", value, alice
    )
    fake.script(ok("Hi there"))
    config = {"provider": "Local Ollama", "prompt": "Hi"}
    result = run_now(llm.run_llm(config, ctx_for(acme)))
    assert result.output["text"] == "Hi there"
    assert result.usage["key_id"] == str(entry.id)
    [request] = fake.requests
    assert sent_key(request) == value
    assert request.body["model"] == "llama3.2"
    # A step's own model wins over the provider's default.
    run_now(llm.run_llm({**config, "model": "qwen2.5"}, ctx_for(acme)))
    assert fake.requests[1].body["model"] == "qwen2.5"


def test_a_step_that_names_no_provider_calls_the_default(fake, acme, alice, settings):
    settings.VECTORBEA_OPENAI_API_KEY = "sk-test-installation-0123456789"
    vault.save_compatible_provider(acme, "Local", fake.openai_url, "llama3.2", None, alice)
    where = resolve(acme.id, {"prompt": "Hi"})
    assert (where.provider, where.name, where.model) == ("openai", "Local", "llama3.2")
    assert where.call.key == "no-key-configured"
    vault.set_default_provider(acme, "openai")
    assert resolve(acme.id, {"prompt": "Hi"}).name == "openai"


def test_a_workspace_with_no_provider_is_told_where_to_add_one(acme, settings):
    settings.VECTORBEA_OPENAI_API_KEY = ""
    settings.VECTORBEA_OPENAI_BASE_URL = "https://api.openai.com/v1"
    with pytest.raises(StepError) as caught:
        resolve(acme.id, {"prompt": "Hi"})
    assert caught.value.error_class == ErrorClass.PERMANENT
    assert caught.value.message == NO_PROVIDER
    assert "Settings → Providers" in NO_PROVIDER


def test_a_provider_set_up_elsewhere_is_used_at_once_after_a_step_found_none(
    fake, acme, alice, settings
):
    # A worker process found no provider; then the web process (another process: the
    # rows change under this one's feet) sets one up, and the next run uses it at once.
    settings.VECTORBEA_OPENAI_API_KEY = ""
    settings.VECTORBEA_OPENAI_BASE_URL = "https://api.openai.com/v1"
    with pytest.raises(StepError):
        resolve(acme.id, {"prompt": "Hi"})
    vault.keyring_for(acme)
    CompatibleProvider.objects.create(
        workspace=acme, name="Local", base_url=fake.openai_url, default_model="m"
    )
    Keyring.objects.filter(workspace=acme).update(default_provider="Local")

    assert resolve(acme.id, {"prompt": "Hi"}).name == "Local"


def test_a_step_naming_a_provider_the_workspace_lacks_fails_permanently(acme):
    with pytest.raises(StepError) as caught:
        resolve(acme.id, {"provider": "Nope", "prompt": "Hi"})
    assert caught.value.error_class == ErrorClass.PERMANENT
    assert "no provider named 'Nope': add it in Settings → Providers" in caught.value.message


def test_a_step_calling_a_refused_server_fails_with_the_setting_to_add(acme, alice, settings):
    settings.VECTORBEA_HTTP_ALLOWLIST = []
    vault.save_compatible_provider(acme, "Local", "http://127.0.0.1:11434/v1", "m", None, alice)
    with pytest.raises(StepError) as caught:
        resolve(acme.id, {"provider": "Local", "prompt": "Hi"})
    assert caught.value.error_class == ErrorClass.PERMANENT
    assert "the operator adds 127.0.0.1:11434 to VECTORBEA_HTTP_ALLOWLIST." in str(caught.value)


def test_old_step_settings_keep_working(fake, acme, settings):
    """provider + model + base_url, as steps stored them before providers were named."""
    settings.VECTORBEA_OPENAI_BASE_URL = "https://api.openai.com/v1"
    config = {"provider": "openai", "model": "gpt-4o-mini", "base_url": fake.openai_url}
    result = run_now(llm.run_llm({**config, "prompt": "Hi"}, ctx_for(acme)))
    assert result.output["model"] == "gpt-4o-mini"
    assert sent_key(fake.requests[0]) == "no-key-configured"  # never a key to a step's URL


def test_the_builder_lists_a_missing_provider_and_a_refused_address(acme, alice, settings):
    settings.VECTORBEA_HTTP_ALLOWLIST = []
    vault.save_compatible_provider(acme, "Local", "http://127.0.0.1:11434/v1", "m", None, alice)
    definition = chain(3, "llm", {"prompt": "Hi"})
    definition["steps"][0]["config"]["provider"] = "Missing"
    definition["steps"][1]["config"]["provider"] = "local"
    definition["steps"][2]["config"] = {
        "provider": "openai",
        "base_url": "http://localhost:8080/v1",
        "prompt": "Hi",
    }
    issues = provider_problems(definition, acme.id)
    assert [(issue.step_id, issue.path) for issue in issues] == [
        ("s0", "steps[0].config.provider"),
        ("s1", "steps[1].config.provider"),
        ("s2", "steps[2].config.base_url"),
    ]
    assert "uses the provider 'Missing', which this workspace does not have" in issues[0].message
    assert "adds 127.0.0.1:11434 to VECTORBEA_HTTP_ALLOWLIST" in issues[1].message
    assert "adds localhost:8080 to VECTORBEA_HTTP_ALLOWLIST" in issues[2].message
    # They are the builder's problems (and so block publishing).
    assert {i.path for i in issues} <= {i.path for i in draft_issues(definition, acme.id)}
    settings.VECTORBEA_HTTP_ALLOWLIST = ["127.0.0.1:11434", "localhost:8080"]
    assert [i.step_id for i in provider_problems(definition, acme.id)] == ["s0"]


def test_an_owner_makes_another_provider_the_default(owner_client, acme, alice):
    vault.save_compatible_provider(acme, "Local", "http://127.0.0.1:1/v1", "m", None, alice)
    owner_client.post(reverse("provider-default", args=["acme"]), {"name": "anthropic"})
    assert vault.default_provider(acme.id, fresh=True) == "anthropic"
    html = owner_client.get(page_url()).content.decode()
    assert "Anthropic is now the default" in html
    entry = CompatibleProvider.objects.get()
    owner_client.post(reverse("provider-default", args=["acme"]), {"name": "LOCAL"})
    assert vault.default_provider(acme.id, fresh=True) == "Local"
    owner_client.post(reverse("compatible-provider-delete", args=["acme", entry.id]))
    assert vault.default_provider(acme.id, fresh=True) == ""


def test_an_admin_tests_the_openai_connection_with_the_workspace_key(fake, client, acme, settings):
    settings.VECTORBEA_OPENAI_BASE_URL = fake.openai_url  # the operator's URL: no guard
    settings.VECTORBEA_OPENAI_API_KEY = ""
    value = canary()
    admin = make_member("ada", acme, Role.ADMIN)
    vault.add_key(acme, "openai", value, "", admin)
    client.force_login(admin)
    fake.script(ok("OK", model="gpt-4o-mini-2024-07-18"))
    html = client.post(connection_url(), {"name": "openai"}, HTTP_HX_REQUEST="true")
    html = html.content.decode()
    assert "OpenAI answered with model gpt-4o-mini-2024-07-18: “OK”" in html
    assert sent_key(fake.requests[0]) == value
    assert fake.requests[0].body["model"] == "gpt-4o-mini"
    assert_no_leak(html, value, "the test's answer")


def test_the_builder_lists_an_http_step_calling_a_refused_address(acme, settings):
    settings.VECTORBEA_HTTP_ALLOWLIST = []
    definition = chain(2, "http", {"url": "http://10.0.0.5/hook"})
    definition["steps"][1]["config"] = {"url": "https://api.example.com/{{ input.path }}"}
    [issue] = provider_problems(definition, acme.id)
    assert (issue.step_id, issue.path) == ("s0", "steps[0].config.url")
    assert "the operator adds 10.0.0.5:80 to VECTORBEA_HTTP_ALLOWLIST." in issue.message


def test_change_fills_the_form_with_the_provider_but_never_its_key(owner_client, acme, alice):
    value = canary("local-")
    vault.save_compatible_provider(acme, "Local", "http://10.1.1.1:8000/v1", "qwen", value, alice)
    html = owner_client.get(page_url() + "?edit=local").content.decode()
    assert "Change Local" in html
    assert 'value="http://10.1.1.1:8000/v1"' in html and 'value="qwen"' in html
    assert "Remove its key" in html
    assert_no_leak(html, value, "the change form")
