"""One table of network failures: the LLM step (at the installation's provider URL, or at a
workspace's server through the SSRF guard) and the HTTP step give the same failure the same
class and the same words."""

import re
import socket
import ssl
from uuid import uuid4

import httpx
import pytest

from vectorbea.engine import ErrorClass, StepError
from vectorbea.keys import vault
from vectorbea.llm.errors import NETWORK_FAILURES, network_error, network_failure_kind
from vectorbea.steps import http, llm
from vectorbea.steps.registry import StepContext, run_now

pytestmark = pytest.mark.django_db

NO_SUCH_HOST = "no-such-host.invalid"
KEY = "sk-test-0123456789abcdefSECRET"


@pytest.fixture
def no_such_host(monkeypatch):
    """NO_SUCH_HOST does not resolve (as a resolver says of a name that does not exist),
    whoever looks it up: the SSRF guard, or the provider SDK's transport."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name == NO_SUCH_HOST:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ctx_for(workspace) -> StepContext:
    run_id = uuid4()
    return StepContext(run_id, workspace.id, "s0", 1, f"vb-{run_id}-s0", {}, {})


def failure(handler, config, ctx) -> StepError:
    with pytest.raises(StepError) as caught:
        run_now(handler(config, ctx))
    return caught.value


def llm_failures(settings, workspace, user, base_url: str) -> list[StepError]:
    """The LLM step calling `base_url` as the installation's provider URL, and as a
    workspace's OpenAI-compatible server (through the SSRF guard)."""
    settings.VECTORBEA_OPENAI_BASE_URL = base_url
    settings.VECTORBEA_OPENAI_API_KEY = KEY
    vault.save_compatible_provider(workspace, "Server", base_url, "m", None, user)
    return [
        failure(llm.run_llm, {"provider": "openai", "prompt": "Hi"}, ctx_for(workspace)),
        failure(llm.run_llm, {"provider": "Server", "prompt": "Hi"}, ctx_for(workspace)),
    ]


def test_llm_and_http_steps_classify_a_dns_failure_the_same(no_such_host, settings, acme, alice):
    settings.VECTORBEA_HTTP_ALLOWLIST = []
    from_http = failure(http.run_http, {"url": f"http://{NO_SUCH_HOST}/v1"}, ctx_for(acme))
    from_llm = llm_failures(settings, acme, alice, f"http://{NO_SUCH_HOST}/v1")

    expected = NETWORK_FAILURES["dns_not_found"].message.format(target=NO_SUCH_HOST)
    assert (from_http.error_class, from_http.message) == (ErrorClass.PERMANENT, expected)
    for error in from_llm:
        assert (error.error_class, error.message) == (ErrorClass.PERMANENT, expected)


def test_llm_and_http_steps_classify_a_refused_connection_the_same(
    settings, acme, alice, closed_port
):
    settings.VECTORBEA_HTTP_ALLOWLIST = [f"127.0.0.1:{closed_port}"]
    url = f"http://127.0.0.1:{closed_port}/v1"
    from_http = failure(http.run_http, {"url": url}, ctx_for(acme))
    from_llm = llm_failures(settings, acme, alice, url)

    expected = NETWORK_FAILURES["refused"].message.format(target=f"127.0.0.1:{closed_port}")
    assert (from_http.error_class, from_http.message) == (ErrorClass.TRANSIENT, expected)
    for error in from_llm:
        assert (error.error_class, error.message) == (ErrorClass.TRANSIENT, expected)


def caused(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__cause__ = inner
    return outer


@pytest.mark.parametrize(
    ("exc", "kind", "error_class"),
    [
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            "dns_not_found",
            "permanent",
        ),
        (
            socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
            "dns_temporary",
            "transient",
        ),
        (
            caused(httpx.ConnectError("x"), ConnectionRefusedError(111, "refused")),
            "refused",
            "transient",
        ),
        (
            caused(httpx.ConnectError("x"), ssl.SSLCertVerificationError("bad cert")),
            "tls",
            "permanent",
        ),
        (
            httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"),
            "tls",
            "permanent",
        ),
        (httpx.ReadTimeout("slow"), "timeout", "transient"),
        (TimeoutError(), "timeout", "transient"),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            "lost",
            "transient",
        ),
        (
            caused(
                httpx.ConnectError("All connection attempts failed"),
                OSError(113, "No route to host"),
            ),
            "unreachable",
            "transient",
        ),
    ],
)
def test_each_network_failure_has_one_class_and_one_message(exc, kind, error_class):
    assert network_failure_kind(exc) == kind
    error = network_error(exc, "example.com:8080")
    assert error.error_class == error_class
    template = NETWORK_FAILURES[kind].message.replace("{target}", "example.com:8080")
    pattern = ".+".join(re.escape(part) for part in template.split("{detail}"))
    assert re.fullmatch(pattern, error.message)


def test_the_systems_words_in_a_message_are_redacted():
    exc = httpx.ConnectError(f"failed while sending {KEY}")
    assert KEY not in network_error(exc, "example.com", [KEY]).message
