"""The scripted fake provider speaks tool calls and streaming as both official SDKs read
them: what a test scripts is what the SDK hands back."""

import json
import time

import anthropic
import httpx2
import openai
import pytest

from tests.support.fake_llm import FakeLLM, broken, calls, ok, stall, words

TOOLS_OPENAI = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Find an order",
            "parameters": {"type": "object", "properties": {"id": {"type": "integer"}}},
        },
    }
]
TOOLS_ANTHROPIC = [
    {
        "name": "lookup_order",
        "description": "Find an order",
        "input_schema": {"type": "object", "properties": {"id": {"type": "integer"}}},
    }
]


@pytest.fixture
def fake():
    with FakeLLM() as server:
        yield server


def openai_client(fake: FakeLLM) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test", base_url=fake.openai_url, max_retries=0)


def anthropic_client(fake: FakeLLM) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="sk-test", base_url=fake.anthropic_url, max_retries=0)


def test_words_are_the_chunks_a_stream_sends():
    assert words("a b  c") == ["a ", "b  ", "c"]
    assert "".join(words(" Hello, there world ")) == " Hello, there world "
    assert words("") == []


def test_openai_tool_calls_come_back_with_the_text_and_the_client_request_is_kept(fake):
    fake.script(
        calls(("lookup_order", {"id": 7}), ("refund", {"id": 7}, "call_mine"), text="Checking")
    )
    messages = [
        {"role": "system", "content": "Be helpful"},
        {"role": "user", "content": "Where is order 7?"},
    ]
    response = openai_client(fake).chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=TOOLS_OPENAI
    )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking"
    assert [(c.id, c.function.name) for c in choice.message.tool_calls] == [
        ("call_0_0", "lookup_order"),
        ("call_mine", "refund"),
    ]
    assert json.loads(choice.message.tool_calls[0].function.arguments) == {"id": 7}
    (request,) = fake.requests
    assert request.messages == messages
    assert request.tools == TOOLS_OPENAI
    assert request.tool_names == ["lookup_order"]
    assert not request.stream


def test_openai_malformed_arguments_are_sent_as_scripted(fake):
    fake.script(calls(("lookup_order", '{"id": 7')))
    response = openai_client(fake).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}]
    )
    assert response.choices[0].message.tool_calls[0].function.arguments == '{"id": 7'


def test_anthropic_tool_use_blocks_follow_the_text(fake):
    fake.script(calls(("lookup_order", {"id": 7}), text="Checking", usage=(30, 9)))
    messages = [{"role": "user", "content": "Where is order 7?"}]
    message = anthropic_client(fake).messages.create(
        model="claude-x", max_tokens=100, messages=messages, tools=TOOLS_ANTHROPIC
    )
    assert message.stop_reason == "tool_use"
    text, use = message.content
    assert (text.type, text.text) == ("text", "Checking")
    assert (use.type, use.id, use.name, use.input) == (
        "tool_use",
        "call_0_0",
        "lookup_order",
        {"id": 7},
    )
    assert (message.usage.input_tokens, message.usage.output_tokens) == (30, 9)
    assert fake.requests[0].tools == TOOLS_ANTHROPIC
    assert fake.requests[0].tool_names == ["lookup_order"]


def test_anthropic_tool_calls_alone_have_no_text_block(fake):
    fake.script(calls(("a", {}), ("b", {"x": [1, 2]})))
    message = anthropic_client(fake).messages.create(
        model="claude-x", max_tokens=100, messages=[{"role": "user", "content": "go"}]
    )
    assert [(block.type, block.name, block.input) for block in message.content] == [
        ("tool_use", "a", {}),
        ("tool_use", "b", {"x": [1, 2]}),
    ]


def test_openai_stream_sends_a_word_a_chunk_paced_with_usage_last(fake):
    fake.script(ok("one two three four", usage=(21, 4), chunk_delay=0.1))
    arrivals: list[tuple[float, str]] = []
    started = time.monotonic()
    with openai_client(fake).chat.completions.stream(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "count"}],
        stream_options={"include_usage": True},
    ) as stream:
        for event in stream:
            if event.type == "content.delta" and event.delta:  # the head's content is ""
                arrivals.append((time.monotonic(), event.delta))
        final = stream.get_final_completion()
    assert [delta for _, delta in arrivals] == ["one ", "two ", "three ", "four"]
    # The server waits 0.1 s before each word after the first, so the last word cannot arrive
    # sooner than 0.3 s after the request (a busy client may read several words at once).
    assert arrivals[-1][0] - started >= 0.3
    assert final.choices[0].message.content == "one two three four"
    assert final.choices[0].finish_reason == "stop"
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (21, 4)
    assert fake.requests[0].stream


def test_openai_stream_without_include_usage_sends_no_usage(fake):
    fake.script(ok("hi"))
    with openai_client(fake).chat.completions.stream(
        model="m", messages=[{"role": "user", "content": "x"}]
    ) as stream:
        final = stream.get_final_completion()
    assert final.usage is None
    assert final.choices[0].message.content == "hi"


def test_openai_stream_builds_tool_calls_from_their_deltas(fake):
    arguments = {"id": 7, "note": "a longer argument than one piece"}
    fake.script(calls(("lookup_order", arguments), ("refund", {"id": 7}), text="Let me see"))
    with openai_client(fake).chat.completions.stream(
        model="m",
        messages=[{"role": "user", "content": "x"}],
        tools=TOOLS_OPENAI,
        stream_options={"include_usage": True},
    ) as stream:
        argument_deltas = [e for e in stream if e.type == "tool_calls.function.arguments.delta"]
        final = stream.get_final_completion()
    assert len(argument_deltas) > 2
    message = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls"
    assert message.content == "Let me see"
    assert [(c.id, c.function.name) for c in message.tool_calls] == [
        ("call_0_0", "lookup_order"),
        ("call_0_1", "refund"),
    ]
    assert json.loads(message.tool_calls[0].function.arguments) == arguments
    assert json.loads(message.tool_calls[1].function.arguments) == {"id": 7}


def test_anthropic_stream_sends_a_word_a_chunk_paced_with_usage(fake):
    fake.script(ok("one two three", usage=(40, 3), chunk_delay=0.1))
    arrivals: list[tuple[float, str]] = []
    started = time.monotonic()
    with anthropic_client(fake).messages.stream(
        model="claude-x", max_tokens=100, messages=[{"role": "user", "content": "count"}]
    ) as stream:
        for text in stream.text_stream:
            arrivals.append((time.monotonic(), text))
        final = stream.get_final_message()
    assert [text for _, text in arrivals] == ["one ", "two ", "three"]
    # 0.1 s before each word after the first: the last cannot arrive sooner than 0.2 s in.
    assert arrivals[-1][0] - started >= 0.2
    assert final.content[0].text == "one two three"
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (40, 3)


def test_anthropic_stream_builds_tool_use_from_partial_json(fake):
    arguments = {"id": 7, "note": "a longer argument than one piece"}
    fake.script(calls(("lookup_order", arguments), text="Looking"))
    with anthropic_client(fake).messages.stream(
        model="claude-x",
        max_tokens=100,
        messages=[{"role": "user", "content": "x"}],
        tools=TOOLS_ANTHROPIC,
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    text, use = final.content
    assert text.text == "Looking"
    assert (use.id, use.name, use.input) == ("call_0_0", "lookup_order", arguments)


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_a_broken_stream_stops_after_its_first_chunks(fake, api):
    fake.script(broken(ok("alpha beta gamma delta"), after=3))
    received: list[str] = []
    # openai's SDK wraps the transport's error; anthropic's lets it through.
    lost = openai.APIConnectionError if api == "openai" else httpx2.RemoteProtocolError
    with pytest.raises(lost):
        if api == "openai":
            with openai_client(fake).chat.completions.stream(
                model="m", messages=[{"role": "user", "content": "x"}]
            ) as stream:
                for event in stream:
                    if event.type == "content.delta" and event.delta:
                        received.append(event.delta)
        else:
            with anthropic_client(fake).messages.stream(
                model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}]
            ) as stream:
                received.extend(stream.text_stream)
    # The head, then two words (anthropic: the head, the block's start, one word).
    assert received == (["alpha ", "beta "] if api == "openai" else ["alpha "])
    assert fake.abandoned == 0


def test_a_broken_reply_asked_without_streaming_gets_no_answer(fake):
    fake.script(broken("never sent"))
    with pytest.raises(openai.APIConnectionError):
        openai_client(fake).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
    assert len(fake.requests) == 1


def test_a_client_that_leaves_a_paced_stream_is_counted_as_abandoned(fake):
    fake.script(ok("a b c d e f g h", chunk_delay=0.2))
    with openai_client(fake).chat.completions.stream(
        model="m", messages=[{"role": "user", "content": "x"}]
    ) as stream:
        for event in stream:
            if event.type == "content.delta" and event.delta:
                break
    deadline = time.monotonic() + 5
    while fake.abandoned == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.abandoned == 1


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_the_time_each_streamed_answer_sent_its_first_word_is_kept(fake, api):
    fake.script(stall(0.3, ok("late words", chunk_delay=0.1)), ok(""))
    started = time.time()
    for _ in range(2):
        if api == "openai":
            with openai_client(fake).chat.completions.stream(
                model="m", messages=[{"role": "user", "content": "x"}]
            ) as stream:
                stream.get_final_completion()
        else:
            with anthropic_client(fake).messages.stream(
                model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}]
            ) as stream:
                stream.get_final_message()
    assert list(fake.first_word_at) == [0]  # the second answer had no words
    assert started + 0.3 <= fake.first_word_at[0] <= time.time()
