"""The provider clients with `on_text`: the answer is streamed, its words handed over as
they arrive, and the Answer is the one a call in one piece gives (usage, tool calls, the
final message); an error event in place of the rest of the answer is a failed call."""

import json
import time

import pytest

from tests.support.fake_llm import FakeLLM, broken, calls, failing, malformed, ok, status
from vectorbea.engine import ErrorClass
from vectorbea.llm.providers import (
    ANSWERED,
    NO_ANSWER,
    Call,
    CallError,
    Prompt,
    ToolCall,
    complete,
    run_closing,
)

PROVIDERS = ["openai", "anthropic"]


@pytest.fixture
def fake():
    with FakeLLM() as server:
        yield server


def ask(fake: FakeLLM, provider: str, on_text=None, **prompt) -> object:
    base_url = fake.openai_url if provider == "openai" else fake.anthropic_url
    call = Call(key="sk-test-key-0123456789", base_url=base_url, timeout_seconds=10)

    async def go():
        return await complete(provider, Prompt(model="m-1", user="hi", **prompt), call, on_text)

    return run_closing(go())


def pieces_arriving(fake: FakeLLM, provider: str, **prompt):
    """The answer, and each piece of text with the time it reached `on_text`."""
    arrivals: list[tuple[float, str]] = []
    answer = ask(fake, provider, lambda text: arrivals.append((time.monotonic(), text)), **prompt)
    return answer, arrivals


@pytest.mark.parametrize("provider", PROVIDERS)
def test_words_reach_on_text_as_they_arrive_and_the_answer_is_whole(fake, provider):
    fake.script(ok("The quick brown fox", usage=(120, 7), model="m-2", chunk_delay=0.1))
    answer, arrivals = pieces_arriving(fake, provider)
    assert [text for _, text in arrivals] == ["The ", "quick ", "brown ", "fox"]
    assert arrivals[-1][0] - arrivals[0][0] >= 0.25  # three pauses: they came one by one
    assert answer.text == "The quick brown fox"
    assert (answer.model, answer.input_tokens, answer.output_tokens) == ("m-2", 120, 7)
    assert answer.finish_reason == ("stop" if provider == "openai" else "end_turn")
    assert answer.raw is not None
    (request,) = fake.requests
    assert request.stream
    if provider == "openai":  # asked for its usage, which a stream leaves out otherwise
        assert request.body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_without_on_text_the_answer_comes_in_one_piece(fake, provider):
    fake.script(calls(("lookup_order", {"id": 7}), text="Checking"))
    answer = ask(fake, provider)
    assert not fake.requests[0].stream
    assert answer.text == "Checking"
    assert answer.tool_calls == (ToolCall("call_0_0", "lookup_order", '{"id": 7}'),)
    assert answer.finish_reason == ("tool_calls" if provider == "openai" else "tool_use")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_streamed_tool_calls_are_in_the_answer(fake, provider):
    arguments = {"id": 7, "reason": "a long enough reason to come in several pieces"}
    fake.script(calls(("lookup_order", arguments), ("refund", {"id": 7}), text="One moment"))
    answer, arrivals = pieces_arriving(fake, provider)
    assert "".join(text for _, text in arrivals) == "One moment"
    assert [(c.id, c.name) for c in answer.tool_calls] == [
        ("call_0_0", "lookup_order"),
        ("call_0_1", "refund"),
    ]
    assert json.loads(answer.tool_calls[0].arguments) == arguments
    assert json.loads(answer.tool_calls[1].arguments) == {"id": 7}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_stream_that_breaks_off_is_an_answer_lost_on_the_way(fake, provider):
    fake.script(broken(ok("alpha beta gamma delta"), after=4))
    seen: list[str] = []
    with pytest.raises(CallError) as caught:
        ask(fake, provider, seen.append)
    assert seen  # some words came before the break
    assert caught.value.error_class == ErrorClass.TRANSIENT
    assert caught.value.bill == NO_ANSWER


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("code", "error_class"), [(529, ErrorClass.TRANSIENT), (429, ErrorClass.RATE_LIMITED)]
)
def test_an_error_event_mid_answer_is_classed_by_its_kind(fake, provider, code, error_class):
    """Providers that fail after the answer began send an error event instead of the rest
    (Anthropic's overloaded_error): a failed call, billed as one that may have been
    charged, whose message is the provider's own words."""
    fake.script(failing(ok("alpha beta gamma delta"), after=3, code=code))
    seen: list[str] = []
    with pytest.raises(CallError) as caught:
        ask(fake, provider, seen.append)
    assert seen  # some words came before the error
    assert caught.value.error_class == error_class
    assert caught.value.bill == NO_ANSWER
    assert f"Scripted {code}" in caught.value.message
    assert "sk-test-key" not in caught.value.message


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_error_status_is_classed_as_without_streaming(fake, provider):
    fake.script(status(429, headers={"Retry-After": "3"}))
    with pytest.raises(CallError) as caught:
        ask(fake, provider, lambda text: None)
    assert caught.value.error_class == ErrorClass.RATE_LIMITED
    assert caught.value.retry_after_seconds == 3.0
    assert caught.value.bill == ANSWERED


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_json_schema_prompt_streams_too(fake, provider):
    fake.script(ok('{"city": "Oslo"}'))
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    answer, arrivals = pieces_arriving(fake, provider, json_schema=schema)
    assert answer.text == '{"city": "Oslo"}'
    assert "".join(text for _, text in arrivals) == '{"city": "Oslo"}'


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_stream_of_broken_json_is_a_malformed_answer(fake, provider):
    fake.script(malformed())
    with pytest.raises(CallError) as caught:
        ask(fake, provider, lambda text: None)
    assert caught.value.error_class == ErrorClass.TRANSIENT
    assert "malformed" in caught.value.message
    assert caught.value.bill == NO_ANSWER


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_answer_cut_off_at_max_tokens_is_returned_with_its_usage(fake, provider):
    reason = "length" if provider == "openai" else "max_tokens"
    fake.script(ok('{"items": [1, 2,', usage=(30, 64), finish_reason=reason))
    answer, _ = pieces_arriving(fake, provider, json_schema={"type": "object"})
    assert (answer.text, answer.finish_reason) == ('{"items": [1, 2,', reason)
    assert (answer.input_tokens, answer.output_tokens) == (30, 64)
