"""The http step against a local counting server (allow-listed), calling the handler."""

import socket
from urllib.parse import quote
from uuid import uuid4

import pytest

from tests.support.counting_server import CountingServer
from vectorbea.engine import ErrorClass, StepError
from vectorbea.steps import http
from vectorbea.steps.registry import StepContext, run_now


def run_http(config, ctx):
    """The step as a worker makes it: its call awaited, then finished."""
    return run_now(http.run_http(config, ctx))


def make_ctx() -> StepContext:
    run_id = uuid4()
    return StepContext(
        run_id=run_id,
        workspace_id=uuid4(),
        step_id="call",
        attempt=1,
        idempotency_key=f"vb-{run_id}-call",
        run_input={},
        outputs={},
    )


@pytest.fixture
def server(settings):
    with CountingServer() as running:
        settings.VECTORBEA_HTTP_ALLOWLIST = [running.allow]
        yield running


def failure(config: dict) -> StepError:
    with pytest.raises(StepError) as caught:
        run_http(config, make_ctx())
    return caught.value


def test_it_calls_the_url_with_the_steps_idempotency_key(server):
    ctx = make_ctx()
    output = run_http({"url": server.url("/echo?x=1")}, ctx)
    assert output["status"] == 200
    assert output["body"]["method"] == "GET"
    assert output["body"]["idempotency_key"] == ctx.idempotency_key
    assert output["headers"]["content-type"] == "application/json"
    assert output["url"] == server.url("/echo?x=1")
    [seen] = server.requests
    assert seen.idempotency_key == ctx.idempotency_key
    assert seen.headers["user-agent"] == "Vectorbea"


def test_the_idempotency_key_is_always_the_steps_own(server):
    ctx = make_ctx()
    run_http({"url": server.url(), "headers": {"idempotency-key": "mine"}}, ctx)
    [seen] = server.requests
    assert seen.idempotency_key == ctx.idempotency_key


def test_it_sends_json_and_text_bodies(server):
    run_http({"method": "POST", "url": server.url(), "body": {"a": [1, 2]}}, make_ctx())
    run_http({"method": "PUT", "url": server.url(), "body": "plain words"}, make_ctx())
    run_http(
        {
            "method": "POST",
            "url": server.url(),
            "body": "already json",
            "body_format": "json",
            "headers": {"Content-Type": "application/vnd.api+json"},
        },
        make_ctx(),
    )
    first, second, third = server.requests
    assert first.headers["content-type"] == "application/json" and first.body == b'{"a": [1, 2]}'
    assert second.headers["content-type"].startswith("text/plain") and second.body == b"plain words"
    assert third.headers["content-type"] == "application/vnd.api+json"
    assert third.body == b'"already json"'


def test_a_text_answer_is_returned_as_text(server):
    assert run_http({"url": server.url("/text")}, make_ctx())["body"] == "hello"


@pytest.mark.parametrize(
    ("code", "error_class"),
    [
        (429, ErrorClass.RATE_LIMITED),
        (500, ErrorClass.TRANSIENT),
        (502, ErrorClass.TRANSIENT),
        (503, ErrorClass.TRANSIENT),
        (504, ErrorClass.TRANSIENT),
        (408, ErrorClass.TRANSIENT),
        (400, ErrorClass.PERMANENT),
        (401, ErrorClass.PERMANENT),
        (403, ErrorClass.PERMANENT),
        (404, ErrorClass.PERMANENT),
        (409, ErrorClass.PERMANENT),
        (422, ErrorClass.PERMANENT),
    ],
)
def test_each_status_maps_to_its_error_class(server, code, error_class):
    error = failure({"url": server.url(f"/status/{code}")})
    assert error.error_class == error_class
    assert f"answered HTTP {code}" in error.message
    assert len(server.requests) == 1


def test_a_429_carries_its_retry_after(server):
    error = failure({"url": server.url("/status/429?retry_after=3")})
    assert error.error_class == ErrorClass.RATE_LIMITED
    assert error.retry_after_seconds == 3.0


def test_expected_status_codes_decide_what_success_is(server):
    output = run_http({"url": server.url("/status/404"), "expected_status": [404]}, make_ctx())
    assert output["status"] == 404 and output["body"] == {"error": "status 404"}
    error = failure({"url": server.url("/echo"), "expected_status": [201]})
    assert error.error_class == ErrorClass.PERMANENT
    assert "not one of the expected status codes" in error.message


def test_it_follows_redirects_itself_and_reports_the_final_url(server):
    target = server.url("/echo")
    output = run_http({"url": server.url(f"/redirect?to={quote(target)}")}, make_ctx())
    assert output["status"] == 200 and output["url"] == target
    assert [r.path for r in server.requests] == [f"/redirect?to={quote(target)}", "/echo"]
    assert len({r.idempotency_key for r in server.requests}) == 1


def test_a_303_after_a_post_continues_as_a_get_without_the_body(server):
    target = quote(server.url("/echo"))
    run_http(
        {"method": "POST", "url": server.url(f"/redirect?code=303&to={target}"), "body": {"a": 1}},
        make_ctx(),
    )
    first, second = server.requests
    assert (first.method, second.method) == ("POST", "GET")
    assert second.body == b""


def test_a_307_keeps_the_method_and_body(server):
    target = quote(server.url("/echo"))
    run_http(
        {"method": "POST", "url": server.url(f"/redirect?code=307&to={target}"), "body": [1]},
        make_ctx(),
    )
    assert [(r.method, r.body) for r in server.requests] == [("POST", b"[1]"), ("POST", b"[1]")]


def test_more_than_five_redirects_fail_permanently(server):
    url = server.url("/echo")
    for _ in range(6):
        url = server.url(f"/redirect?to={quote(url, safe='')}")
    error = failure({"url": url})
    assert error.error_class == ErrorClass.PERMANENT
    assert "Too many redirects" in error.message
    assert len(server.requests) == 6


CREDENTIALS = {
    "Authorization": "Bearer s3cr3t-token-value",
    "Proxy-Authorization": "Basic cHJveHk6czNjcjN0",
    "Cookie": "session=s3cr3t",
    "X-API-Key": "s3cr3t-x-api-key",
    "Api-Key": "s3cr3t-api-key",
    "X-Auth-Token": "s3cr3t-auth-token",
    "PRIVATE-TOKEN": "s3cr3t-gitlab",
    "X-Goog-Api-Key": "s3cr3t-google",
    "Ocp-Apim-Subscription-Key": "s3cr3t-azure",
    "X-Custom-Signature": "s3cr3t-signature",
}


@pytest.mark.parametrize("code", [302, 307])
def test_no_credential_header_is_carried_to_another_origin(settings, code):
    with CountingServer() as first, CountingServer() as second:
        settings.VECTORBEA_HTTP_ALLOWLIST = [first.allow, second.allow]
        ctx = make_ctx()
        harmless = {"Accept": "application/json", "User-Agent": "tests", "Accept-Language": "fr"}
        run_http(
            {
                "url": first.url(f"/redirect?code={code}&to={quote(second.url())}"),
                "headers": {**CREDENTIALS, **harmless},
            },
            ctx,
        )
        sent = first.requests[0].headers
        assert {name: sent[name.lower()] for name in CREDENTIALS} == CREDENTIALS
        [moved] = second.requests
        for name in CREDENTIALS:
            assert name.lower() not in moved.headers, name
        assert not any("s3cr3t" in value for value in moved.headers.values())
        assert {name: moved.headers[name.lower()] for name in harmless} == harmless
        assert moved.idempotency_key == ctx.idempotency_key


def test_every_header_follows_a_redirect_within_the_origin(server):
    run_http(
        {"url": server.url(f"/redirect?to={quote('/echo')}"), "headers": CREDENTIALS},
        make_ctx(),
    )
    _first, moved = server.requests
    assert moved.path == "/echo"
    assert {name: moved.headers[name.lower()] for name in CREDENTIALS} == CREDENTIALS


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("http://10.0.0.1/", "Refused to call 10.0.0.1: private addresses are blocked"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "Refused to call 169.254.169.254: link-local addresses are blocked",
        ),
        ("http://2130706433/", "Refused to call 2130706433 (127.0.0.1): loopback"),
        ("http://[::ffff:127.0.0.1]:1/", "Refused to call ::ffff:127.0.0.1: loopback"),
        ("http://127.0.0.1:1/", "Refused to call 127.0.0.1: loopback addresses are blocked"),
    ],
)
def test_a_redirect_from_an_allowed_server_to_a_private_address_is_refused(server, target, message):
    error = failure({"url": server.url(f"/redirect?to={quote(target)}")})
    assert error.error_class == ErrorClass.PERMANENT
    assert message in error.message
    assert "VECTORBEA_HTTP_ALLOWLIST" in error.message
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:9/", "Refused to call 127.0.0.1: loopback addresses are blocked"),
        ("http://[::1]/", "Refused to call ::1: loopback addresses are blocked"),
        ("http://10.0.0.1/", "Refused to call 10.0.0.1: private addresses are blocked"),
        ("http://169.254.169.254/", "Refused to call 169.254.169.254: link-local addresses"),
        ("http://2130706433/", "Refused to call 2130706433 (127.0.0.1): loopback"),
        ("http://[::ffff:127.0.0.1]/", "Refused to call ::ffff:127.0.0.1: loopback"),
        ("ftp://example.com/", "only http and https are allowed"),
    ],
)
def test_the_step_refuses_private_addresses_before_connecting(settings, url, message):
    settings.VECTORBEA_HTTP_ALLOWLIST = []
    error = failure({"url": url})
    assert error.error_class == ErrorClass.PERMANENT
    assert message in error.message


def test_an_answer_over_max_response_bytes_fails_permanently(server):
    assert len(run_http({"url": server.url("/bytes/1000")}, make_ctx())["body"]) == 1000
    error = failure({"url": server.url("/bytes/5000"), "max_response_bytes": 1000})
    assert error.error_class == ErrorClass.PERMANENT
    assert "larger than 1,000 bytes" in error.message


def test_a_slow_server_times_out_as_transient(server):
    error = failure({"url": server.url("/slow?seconds=2"), "timeout_seconds": 0.3})
    assert error.error_class == ErrorClass.TRANSIENT
    assert "did not answer in time" in error.message


def test_a_server_that_drips_past_the_timeout_is_cut_off(server):
    error = failure({"url": server.url("/drip?bytes=20&interval=0.1"), "timeout_seconds": 0.5})
    assert error.error_class == ErrorClass.TRANSIENT
    assert "did not answer in time" in error.message


def test_a_closed_port_is_transient(settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.VECTORBEA_HTTP_ALLOWLIST = [f"127.0.0.1:{port}"]
    error = failure({"url": f"http://127.0.0.1:{port}/"})
    assert error.error_class == ErrorClass.TRANSIENT
    assert "Could not reach" in error.message


def test_a_secret_header_echoed_in_an_error_is_redacted(server):
    error = failure(
        {
            "url": server.url("/status/401?echo=x-api-key"),
            "headers": {"X-Api-Key": "my-very-secret-value-42"},
        }
    )
    assert error.error_class == ErrorClass.PERMANENT
    assert "my-very-secret-value-42" not in error.message
    assert "[redacted]" in error.message


def test_a_query_string_is_left_out_of_messages(server):
    error = failure({"url": server.url("/status/500?token=abc123secret")})
    assert "abc123secret" not in error.message


def test_a_cancelled_step_sends_nothing(server):
    ctx = make_ctx()
    ctx.cancelled.set()
    with pytest.raises(StepError) as caught:
        run_http({"url": server.url()}, ctx)
    assert caught.value.error_class == ErrorClass.CANCELLED
    assert server.requests == []
