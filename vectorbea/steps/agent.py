"""The "agent" step: a model that calls tools in a durable loop until it answers.

Each leg of the loop is one model turn or one tool call, and each is recorded as its own
event (engine.events: AgentTurnCompleted, ToolCallStarted/Completed/Failed) before the
next leg starts: the handler reads the step's transcript (folded from those events),
asks engine.agent.next_action what comes next, does that one thing and returns its
Progress; the worker records it and runs the handler again for the same attempt. A
crash resumes from the last recorded leg on any worker: a recorded turn is never asked
again, a recorded result is never fetched again; a call recorded as started and never
finished runs again with the same idempotency key. A model turn (and an HTTP tool, or an
async Python tool) is awaited on the worker's event loop, with no thread and no database
connection held.

Provider, key, base URL, rate limits, budget reservation and the answer's schema check
are the LLM step's own (steps.llm).
"""

import json
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from vectorbea import queues
from vectorbea.budgets.guard import estimated_tokens, open_meter
from vectorbea.engine import (
    AgentTurnCompleted,
    ApprovalRequested,
    ErrorClass,
    Issue,
    StepError,
    StepState,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallStarted,
)
from vectorbea.engine import agent as moves
from vectorbea.engine import transcript as tr
from vectorbea.engine.waits import (
    approval_allows_self,
    approval_approvers,
    approval_escalation,
    approval_on_timeout,
    approval_required,
    approval_timeout_at,
)
from vectorbea.llm import Answer
from vectorbea.llm.conversation import Conversation, Tool, Turn, converse
from vectorbea.llm.providers import TIMED_OUT
from vectorbea.runs.partials import text_stream
from vectorbea.steps import llm
from vectorbea.steps.agent_tools import AgentTool, argument_problem, tool_problem, tools_of
from vectorbea.steps.registry import (
    DeadlinePassed,
    PendingCall,
    Progress,
    StepContext,
    StepKind,
    StepResult,
    call_outcome,
    register,
)
from vectorbea.steps.templating import render_config, template_context

TOOL_ERROR = "tool_error"

_TOOL = {
    "type": "object",
    "properties": {
        "type": {
            "type": "string",
            "enum": ["python", "http"],
            "title": "Type",
            "description": "python: a workspace's Python tool (@tool). http: an HTTP API.",
        },
        "name": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$", "title": "Name"},
        "description": {
            "type": "string",
            "title": "Description",
            "description": "What the tool does, for the model (a Python tool's own by default).",
        },
        "needs_approval": {
            "type": "boolean",
            "default": False,
            "title": "Needs approval",
            "description": "A person approves, denies or edits each call before it runs.",
        },
        "approval": {
            "type": "object",
            "title": "Approval rules",
            "description": (
                "As an approval step's: approvers, required_approvals, timeout_seconds, "
                "on_timeout, escalate, allow_self_approval."
            ),
        },
        "method": {
            "type": "string",
            "enum": ["GET", "POST", "PUT", "PATCH", "DELETE"],
            "title": "Method",
        },
        "url": {
            "type": "string",
            "title": "URL",
            "description": "May use workspace secrets ({{ secrets.NAME }}).",
        },
        "headers": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "title": "Headers",
            "description": "May use workspace secrets ({{ secrets.NAME }}).",
        },
        "parameters": {
            "type": "object",
            "title": "Parameters",
            "description": (
                "A JSON Schema of the arguments: sent as the query string (GET, DELETE) or "
                "as the JSON body."
            ),
        },
        "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 600},
    },
    "required": ["type", "name"],
    "additionalProperties": False,
}

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        **{
            key: llm.CONFIG_SCHEMA["properties"][key]
            for key in ("provider", "model", "base_url", "system", "temperature", "max_tokens")
        },
        "task": {
            "type": "string",
            "minLength": 1,
            "title": "Task",
            "description": "What the agent is asked to do (the first user message).",
        },
        "tools": {"type": "array", "items": _TOOL, "title": "Tools"},
        "limits": {
            "type": "object",
            "title": "Limits",
            "properties": {
                "max_turns": {"type": "integer", "minimum": 1, "maximum": 200},
                "max_tool_calls": {"type": "integer", "minimum": 0, "maximum": 1000},
                "max_cost_usd": {"type": "number", "exclusiveMinimum": 0},
                "max_repeats": {"type": "integer", "minimum": 2, "maximum": 50},
                "max_invalid_calls": {"type": "integer", "minimum": 1, "maximum": 50},
            },
            "additionalProperties": False,
        },
        "output_schema": llm.CONFIG_SCHEMA["properties"]["output_schema"],
        "timeout_seconds": {
            **llm.CONFIG_SCHEMA["properties"]["timeout_seconds"],
            "description": "How long to wait for the provider on each turn.",
        },
    },
    "required": ["provider", "model", "task"],
    "additionalProperties": False,
}


def run_agent(config: Mapping[str, Any], ctx: StepContext) -> Any:
    """One leg of the agent's loop: what next_action says, as Progress (or the answer)."""
    tools = tools_of(config)
    rendered = render_config(
        {key: value for key, value in config.items() if key != "tools"},
        template_context(ctx.run_input, ctx.outputs),
    )
    schema = rendered.get("output_schema")
    if schema is not None:
        llm.check_output_schema(schema)
    # The step as the log has it (a fresh one when called outside a worker).
    step = ctx.step_state or StepState(status="running", attempt=ctx.attempt)
    transcript = step.agent
    needs = {name: tool.needs_approval for name, tool in tools.items()}
    action = moves.next_action(ctx.run_id, ctx.step_id, step, needs, rendered.get("limits"))
    if isinstance(action, moves.AskModel):
        return _ask_model(rendered, ctx, tools, transcript, action.turn)
    if isinstance(action, moves.CallTool):
        return _call_tool(ctx, tools[action.name], action)
    if isinstance(action, moves.RefuseCall):
        said = (action.call_id, action.name, action.error_class, action.message)
        return Progress((ToolCallFailed(ctx.step_id, ctx.attempt, *said),))
    if isinstance(action, moves.AskPerson):
        return Progress((tool_gate(ctx, config, action),))
    if isinstance(action, moves.Answer):
        return _answer(rendered, action.text, transcript)
    raise StepError(ErrorClass(action.error_class), action.message)


def _ask_model(
    config: Mapping[str, Any],
    ctx: StepContext,
    tools: Mapping[str, AgentTool],
    transcript: tr.Transcript | None,
    turn: int,
) -> PendingCall:
    provider = config["provider"]
    if ctx.is_cancelled:
        raise StepError(ErrorClass.CANCELLED, "The step was cancelled before calling the model")
    call, key_id = llm.provider_call(config, ctx, provider)
    conversation = Conversation(
        model=config["model"],
        system=config.get("system", ""),
        messages=conversation_messages(str(config["task"]), transcript),
        tools=[Tool(t.name, t.description, t.parameters) for t in tools.values()],
        max_tokens=int(config.get("max_tokens", 1024)),
        temperature=config.get("temperature"),
        json_schema=config.get("output_schema"),
    )
    texts = [str(m.get("text") or m.get("content") or "") for m in conversation.messages]
    input_tokens = estimated_tokens(conversation.system, *texts)
    meter = open_meter(ctx, provider, conversation.model, input_tokens, conversation.max_tokens)
    if ctx.is_cancelled:
        meter.not_sent()
        meter.close()
        raise StepError(ErrorClass.CANCELLED, "The step was cancelled before calling the model")

    def finish(answered: Any) -> Progress:
        try:
            if isinstance(answered, DeadlinePassed):
                meter.unanswered(TIMED_OUT)
            try:
                answer: Turn = call_outcome(answered, ctx)
            except StepError as exc:
                llm.bill_failed_call(meter, exc, provider, conversation.model)
                raise
            usage = llm.usage_of(provider, answer)  # type: ignore[arg-type]
            meter.answered(usage)
        finally:
            meter.close()
        if key_id:
            usage["key_id"] = key_id
        message = {
            "role": "assistant",
            "text": answer.text,
            "tool_calls": _unique_ids(answer.tool_calls, transcript, turn),
        }
        return Progress((AgentTurnCompleted(ctx.step_id, ctx.attempt, turn, message, usage),))

    async def send() -> Turn:
        try:
            async with text_stream(ctx) as on_text:  # the turn's words, live on the run page
                return await converse(provider, conversation, call, on_text)
        finally:
            if call.http_client is not None:
                await call.http_client.aclose()

    return PendingCall(send, finish)


def _unique_ids(
    calls: tuple[dict[str, Any], ...], transcript: tr.Transcript | None, turn: int
) -> list[dict[str, Any]]:
    """The turn's calls, each with an id no other call of the step has (some servers
    number their calls afresh each turn)."""
    used = {str(call["id"]) for call in tr.all_calls(transcript)}
    kept = []
    for position, call in enumerate(calls):
        call_id = str(call.get("id") or "")
        if not call_id or call_id in used:
            call_id = f"t{turn}c{position}"
        used.add(call_id)
        kept.append({"id": call_id, "name": str(call["name"]), "arguments": call["arguments"]})
    return kept


def conversation_messages(task: str, transcript: tr.Transcript | None) -> list[dict[str, Any]]:
    """The conversation so far, from the step's transcript: the task, then each turn with
    its calls' results (or errors), and the corrections asked after a refused answer."""
    messages: list[dict[str, Any]] = [{"role": "user", "text": task}]
    t = transcript or tr.empty()
    for turn in t["turns"]:
        messages.append(
            {"role": "assistant", "text": turn["text"], "tool_calls": turn["tool_calls"]}
        )
        for call in turn["tool_calls"]:
            messages.append(_result_message(call, tr.call_record(t, str(call["id"]))))
        for correction in t.get("corrections") or ():
            if correction["after_turn"] == turn["turn"]:
                (_, ask) = llm.correction_turns(correction)[1]
                messages.append({"role": "user", "text": ask})
    return messages


def _result_message(call: Mapping[str, Any], record: Mapping[str, Any] | None) -> dict[str, Any]:
    said = {"role": "tool", "call_id": str(call["id"]), "name": str(call["name"])}
    if record is not None and record.get("status") == tr.COMPLETED:
        result = record.get("result")
        content = result if isinstance(result, str) else tr.json_text(result)
        return {**said, "content": content, "is_error": False}
    if record is not None and record.get("status") == tr.FAILED:
        content = f"Error ({record.get('error_class')}): {record.get('message')}"
        return {**said, "content": content, "is_error": True}
    return {**said, "content": "The call did not finish.", "is_error": True}


def _call_tool(ctx: StepContext, tool: AgentTool, action: moves.CallTool) -> Any:
    step_id, attempt = ctx.step_id, ctx.attempt
    if not action.started:
        problem = argument_problem(tool, action.arguments)
        if problem:
            return Progress(
                (
                    ToolCallFailed(
                        step_id,
                        attempt,
                        action.call_id,
                        action.name,
                        moves.INVALID_ARGUMENTS,
                        problem,
                    ),
                )
            )
        started = ToolCallStarted(
            step_id, attempt, action.call_id, action.name, action.arguments, action.idempotency_key
        )
        return Progress((started,))  # recorded before the tool's side effect

    def done(result: Any) -> Progress:
        completed = ToolCallCompleted(
            step_id, attempt, action.call_id, action.name, tr.capped(result)
        )
        return Progress((completed,))

    def failed(exc: Exception) -> Progress:
        if _abandoned(ctx):  # the attempt is over: the call runs again in the next one
            raise exc
        if isinstance(exc, StepError):
            error_class, message = str(exc.error_class), exc.message
        else:
            error_class, message = TOOL_ERROR, _describe(exc)
        return Progress(
            (ToolCallFailed(step_id, attempt, action.call_id, action.name, error_class, message),)
        )

    tool_ctx = replace(ctx, idempotency_key=action.idempotency_key)
    try:
        result = tool.call(dict(action.arguments), tool_ctx)
    except Exception as exc:
        return failed(exc)
    if not isinstance(result, PendingCall):
        return done(result)
    pending = result

    def finish(answered: Any) -> Progress:
        try:
            return done(pending.finish(answered))
        except Exception as exc:
            return failed(exc)

    return PendingCall(pending.call, finish)


def _abandoned(ctx: StepContext) -> bool:
    past = ctx.deadline is not None and time.monotonic() >= ctx.deadline
    return ctx.is_cancelled or past


def _describe(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__


def tool_gate(
    ctx: StepContext, config: Mapping[str, Any], action: moves.AskPerson
) -> ApprovalRequested:
    """The approval gate of one tool call, with its tool's rules (as an approval step's)."""
    spec = next(t for t in config.get("tools") or () if t.get("name") == action.name)
    rules = render_config(
        dict(spec.get("approval") or {}), template_context(ctx.run_input, ctx.outputs)
    )
    timeout_at = approval_timeout_at(rules, datetime.now(UTC))
    on_timeout = approval_on_timeout(rules)
    return ApprovalRequested(
        ctx.step_id,
        ctx.attempt,
        title=f"Run the tool {action.name}?",
        instructions=(
            "The agent wants to call this tool. Approve to run it (edit its arguments first "
            "if needed), or deny: the agent is told it was denied."
        ),
        payload={"tool": action.name, "arguments": action.arguments, "call_id": action.call_id},
        timeout_at=None if timeout_at is None else timeout_at.isoformat(),
        gate=action.gate,
        approvers=approval_approvers(rules),
        required=approval_required(rules),
        allow_self_approval=approval_allows_self(rules),
        # The approver may edit the arguments before approving (checked against the tool's
        # schema when they decide).
        form=[
            {
                "name": "arguments",
                "label": "Arguments (JSON: edit them to change the call)",
                "type": "long_text",
                "required": False,
                "default": json.dumps(action.arguments, indent=2, sort_keys=True),
            }
        ],
        on_timeout=on_timeout,
        escalate=approval_escalation(rules, on_timeout),
    )


def _answer(config: Mapping[str, Any], text: str, transcript: tr.Transcript | None) -> StepResult:
    t = transcript or tr.empty()
    last = tr.last_turn(t) or {}
    model = str((last.get("usage") or {}).get("model") or config["model"])
    schema = config.get("output_schema")
    value = None
    if schema is not None:
        answer = Answer(text, model, None, 0, 0)
        value = llm.validated_json(answer, schema, {})  # its cost is the turn's, recorded
    output = {
        "text": text,
        "json": value,
        "model": model,
        "turns": len(t["turns"]),
        "tool_calls": int(t["tool_calls"]),
        "cost_usd": float(t["cost_usd"]),
    }
    return StepResult(output)


def agent_problems(definition: Mapping[str, Any]) -> list[Issue]:
    """Builder problems of agent steps' tools: unknown Python tools, bad HTTP tool URLs
    and schemas, a name given twice."""
    issues: list[Issue] = []
    raw_steps = definition.get("steps") if isinstance(definition, Mapping) else None
    for index, raw in enumerate(raw_steps if isinstance(raw_steps, list) else ()):
        if not isinstance(raw, Mapping) or raw.get("kind") != moves.AGENT_KIND:
            continue
        config = raw.get("config")
        tools = config.get("tools") if isinstance(config, Mapping) else None
        seen: set[str] = set()
        for position, spec in enumerate(tools if isinstance(tools, list) else ()):
            path = f"steps[{index}].config.tools[{position}]"
            step_id = str(raw.get("id"))
            problem = tool_problem(spec)
            if problem is None and spec.get("name") in seen:
                problem = f"The tool name {spec.get('name')!r} is used twice."
            if problem:
                issues.append(Issue(path, f"Step '{step_id}': {problem}", step_id=step_id))
            if isinstance(spec, Mapping):
                seen.add(str(spec.get("name")))
    return issues


register(
    StepKind(
        name=moves.AGENT_KIND,
        label="Agent",
        config_schema=CONFIG_SCHEMA,
        handler=run_agent,
        queue=queues.LLM,
        # Rendered by run_agent: an HTTP tool's URL and headers only as it is called (they
        # may hold secrets), never the model's arguments.
        render_config=False,
    )
)
