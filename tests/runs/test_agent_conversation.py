"""An agent step's conversation as its step detail shows it, from the engine's transcript:
a long tool result starts folded, a failed call says its error, a refused answer says why,
and the totals add up the turns."""

from django.template.loader import render_to_string

from vectorbea.engine import transcript as tr
from vectorbea.runs.step_detail import FOLD_CHARS, conversation


def usage(i, o, cost):
    return {"model": "gpt-4o-mini", "input_tokens": i, "output_tokens": o, "cost_usd": cost}


def sample():
    t = tr.empty()
    calls = [
        {"id": "a", "name": "search", "arguments": {"q": "refunds"}},
        {"id": "b", "name": "fetch", "arguments": {"url": "x"}},
    ]
    t = tr.turn_completed(t, 1, 1, {"text": "Searching.", "tool_calls": calls}, usage(10, 2, 0.01))
    t = tr.call_started(t, "a", "search", {"q": "refunds"}, "k-a")
    t = tr.call_completed(t, "a", "search", {"hits": ["x" * 50] * 40})
    t = tr.call_started(t, "b", "fetch", {"url": "x"}, "k-b")
    t = tr.call_failed(t, "b", "fetch", "tool_error", "ValueError: no such page")
    t = tr.turn_completed(t, 2, 2, {"text": "{bad", "tool_calls": []}, usage(30, 4, 0.02))
    return tr.corrected(t, "{bad", ["not JSON"], "The answer is not valid JSON.")


def test_it_shows_each_turn_with_its_calls_and_adds_up_the_usage():
    shown = conversation(sample())

    assert [turn.number for turn in shown.turns] == [1, 2]
    assert (shown.input_tokens, shown.output_tokens, shown.tool_calls) == (40, 6, 2)
    assert round(shown.cost_usd, 4) == 0.03
    search, fetch = shown.turns[0].calls
    assert search.status == "completed" and len(search.result) > FOLD_CHARS
    assert search.result_folded
    assert fetch.status == "failed" and fetch.error_class == "tool_error"
    assert shown.turns[1].attempt == 2
    assert shown.turns[1].corrections[0]["problem"] == "The answer is not valid JSON."


def test_a_long_result_starts_folded_and_a_short_one_open():
    html = render_to_string(
        "runs/_agent_conversation.html",
        {"conversation": conversation(sample()), "step": {"id": "s0"}},
    )

    assert '<details class="tool-call-result"><summary>Result (' in html
    assert "ValueError: no such page" in html
    assert "the model was asked again: The answer is not valid JSON." in html
    assert "2 turns · 2 tool calls · 40 in · 6 out · $0.03" in html
    short = tr.call_completed(sample(), "a", "search", {"hits": 1})
    html = render_to_string(
        "runs/_agent_conversation.html", {"conversation": conversation(short), "step": {"id": "s0"}}
    )
    assert '<details class="tool-call-result">' not in html
    assert "&quot;hits&quot;: 1" in html


def test_a_call_the_model_asked_for_and_not_yet_made_says_so():
    t = tr.turn_completed(
        tr.empty(),
        1,
        1,
        {"text": "", "tool_calls": [{"id": "c", "name": "n", "arguments": {}}]},
        None,
    )
    assert conversation(t).turns[0].calls[0].status == "asked"
    waiting = tr.gate_opened(t, "c", "g1")
    assert conversation(waiting).turns[0].calls[0].status == "waiting"
    decided = tr.gate_decided(waiting, "g1", {"approved": False, "by": "bob", "reason": "No"})
    approval = conversation(decided).turns[0].calls[0].approval
    assert (approval.decided, approval.approved, approval.by) == (True, False, "bob")
