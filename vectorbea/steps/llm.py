"""The "llm" step: one prompt to one provider, with the cost of the answer.

The worker renders templated config before calling the handler, so every value here is
plain. The provider key comes from vectorbea.llm.keys.provider_key and nowhere else. The
handler prepares the call and hands it back (a PendingCall): it is awaited on the worker
process's event loop, with no thread and no database connection held while the model
thinks. The answer is streamed, its words shown on the run page as they come
(vectorbea.runs.partials).
"""

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx2
from django.conf import settings
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from vectorbea import queues
from vectorbea.budgets.guard import Meter, estimated_tokens, open_meter
from vectorbea.engine import ErrorClass, StepError
from vectorbea.llm import Answer, MissingKey, Prompt, cost_of, provider_key
from vectorbea.llm.errors import clip
from vectorbea.llm.keys import PLATFORM, OwnKeyRequired
from vectorbea.llm.providers import ANSWERED, NOT_SENT, TIMED_OUT, Call, CallError, complete
from vectorbea.runs.partials import text_stream
from vectorbea.steps import ssrf
from vectorbea.steps.registry import (
    DeadlinePassed,
    PendingCall,
    StepContext,
    StepKind,
    StepResult,
    call_outcome,
    register,
)

DEFAULT_BASE_URL_SETTING = {
    "openai": "VECTORBEA_OPENAI_BASE_URL",
    "anthropic": "VECTORBEA_ANTHROPIC_BASE_URL",
}
# Hosts that always need a real key; a self-hosted OpenAI-compatible server may not.
KEYED_HOSTS = {"api.openai.com", "api.anthropic.com"}
NO_KEY = "no-key-configured"
MAX_ERRORS_SHOWN = 5

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "provider": {
            "type": "string",
            "enum": ["openai", "anthropic"],
            "title": "Provider",
            "description": (
                "openai: OpenAI or any server with an OpenAI-compatible chat completions API "
                "(Ollama, vLLM, llama.cpp). anthropic: Anthropic's messages API."
            ),
        },
        "model": {
            "type": "string",
            "minLength": 1,
            "title": "Model",
            "description": "The provider's model name, e.g. gpt-4o-mini or claude-haiku-4-5.",
        },
        "base_url": {
            "type": "string",
            "title": "Base URL",
            "description": (
                "Where the provider's API lives. Leave empty for the installation's default "
                "(VECTORBEA_OPENAI_BASE_URL or VECTORBEA_ANTHROPIC_BASE_URL). Another "
                "server must be public or allow-listed, and is sent no API key: the key goes "
                "only to that default's own scheme, host and port."
            ),
        },
        "system": {
            "type": "string",
            "title": "System prompt",
            "description": "Instructions that frame every answer.",
        },
        "prompt": {
            "type": "string",
            "minLength": 1,
            "title": "User prompt",
            "description": "The message the model answers.",
        },
        "temperature": {
            "type": "number",
            "minimum": 0,
            "maximum": 2,
            "title": "Temperature",
            "description": "Randomness, 0 to 2. Leave empty for the model's default.",
        },
        "max_tokens": {
            "type": "integer",
            "minimum": 1,
            "maximum": 200000,
            "default": 1024,
            "title": "Maximum output tokens",
            "description": "The longest answer the model may give, in tokens.",
        },
        "output_schema": {
            "type": "object",
            "title": "Output schema",
            "description": (
                "A JSON Schema. When set, the model is asked for JSON and its answer must "
                "validate, or the attempt fails as invalid_output."
            ),
        },
        "validator": {
            "type": "string",
            "title": "Validator",
            "description": (
                "The name of a Python validator (registered with @validator) that checks "
                "the JSON answer beyond its schema. What it finds wrong is sent back to "
                "the model to correct."
            ),
        },
        "timeout_seconds": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 600,
            "default": 120,
            "title": "Timeout (seconds)",
            "description": "How long to wait for the provider before the attempt fails.",
        },
    },
    "required": ["provider", "model", "prompt"],
    "additionalProperties": False,
}


def run_llm(config: Mapping[str, Any], ctx: StepContext) -> PendingCall:
    """Prepare the call (where, with which key; the rate limits and the budget's
    reservation) and hand it to the worker runtime; `finish` settles what it cost and
    checks the answer once it is in."""
    provider = config["provider"]
    schema = config.get("output_schema")
    if schema is not None:
        check_output_schema(schema)
    if ctx.is_cancelled:
        raise StepError(ErrorClass.CANCELLED, "The step was cancelled before calling the model")
    check = _validator(config.get("validator"))
    call, key_id = provider_call(config, ctx, provider)
    prompt = Prompt(
        model=config["model"],
        user=config["prompt"],
        system=config.get("system", ""),
        temperature=config.get("temperature"),
        max_tokens=int(config.get("max_tokens", 1024)),
        json_schema=schema,
        followups=correction_turns(ctx.correction),
    )
    input_tokens = estimated_tokens(prompt.system, *(m["content"] for m in prompt.messages()))
    meter = open_meter(ctx, provider, prompt.model, input_tokens, prompt.max_tokens)
    if ctx.is_cancelled:  # cancelled while it waited for the budget: nothing was sent
        meter.not_sent()
        meter.close()
        raise StepError(ErrorClass.CANCELLED, "The step was cancelled before calling the model")

    def finish(answered: Any) -> StepResult:
        try:
            if isinstance(answered, DeadlinePassed):
                meter.unanswered(TIMED_OUT)
            try:
                answer = call_outcome(answered, ctx)
            except StepError as exc:
                bill_failed_call(meter, exc, provider, prompt.model)
                if key_id and exc.usage is None:  # which key a rejected call used (its id)
                    exc.usage = {"provider": provider, "key_id": key_id}
                raise
            usage = usage_of(provider, answer)
            meter.answered(usage)
        finally:
            meter.close()
        if key_id:
            usage["key_id"] = key_id
        output = {
            "text": answer.text,
            "json": None if schema is None else validated_json(answer, schema, usage, check),
            "model": answer.model,
            "finish_reason": answer.finish_reason,
        }
        return StepResult(output, usage=usage)

    async def send() -> Any:
        try:
            async with text_stream(ctx) as on_text:  # the words, live on the run page
                return await complete(provider, prompt, call, on_text)
        finally:
            if call.http_client is not None:  # a client of this call's own
                await call.http_client.aclose()

    return PendingCall(send, finish)


def bill_failed_call(meter: Meter, exc: StepError, provider: str, model: str) -> None:
    """Tell the meter what a failed call means for its bill. A failure that says nothing
    (the call was abandoned when the attempt was cancelled) leaves the meter's default:
    the call may have been billed."""
    if not isinstance(exc, CallError):
        return
    if exc.bill == ANSWERED:  # an error answer: providers do not bill it
        meter.answered({"provider": provider, "model": model, "cost_usd": 0.0})
    elif exc.bill == NOT_SENT:
        meter.not_sent()
    else:
        meter.unanswered(exc.bill)


MAX_ANSWER_KEPT = 8000


def correction_turns(correction: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """What a correction adds to the conversation: the refused answer, then exactly what
    was wrong with it and what is asked instead."""
    if not correction:
        return ()
    errors = [str(error) for error in correction.get("errors") or ()]
    listed = "\n".join(f"- {error}" for error in errors) or f"- {correction.get('problem', '')}"
    ask = (
        "Your previous answer was not accepted. These are the problems with it:\n"
        f"{listed}\n\n"
        "Answer again, fixing every problem listed, with only the JSON value and no other text."
    )
    return (("assistant", str(correction.get("answer", ""))), ("user", ask))


def _validator(name: Any) -> Any:
    if not name:
        return None
    from vectorbea.steps.tools import VALIDATORS

    function = VALIDATORS.get(str(name))
    if function is None:
        raise StepError(
            ErrorClass.PERMANENT,
            f"No validator named {name!r} is registered (list its module in "
            "VECTORBEA_TOOL_MODULES).",
        )
    return function


def usage_of(provider: str, answer: Answer) -> dict[str, Any]:
    cost = cost_of(answer.model, answer.input_tokens, answer.output_tokens)
    return {
        "provider": provider,
        "model": answer.model,
        "input_tokens": answer.input_tokens,
        "output_tokens": answer.output_tokens,
        "cost_usd": cost.usd,
        "cost_estimated": cost.estimated,
    }


def provider_call(config: Mapping[str, Any], ctx: StepContext, provider: str) -> tuple[Call, str]:
    """Where and how to call, and the id of the key used ("" for none): a step's own
    base_url is user input, so it goes through the SSRF guard (pinned); the installation's
    default is the operator's and is trusted. A key is sent only to the default's own
    origin (scheme, host and port), and to a provider's public API only over https."""
    default = getattr(settings, DEFAULT_BASE_URL_SETTING[provider])
    base_url = (config.get("base_url") or "").strip() or default
    keyed = (urlsplit(base_url).hostname or "").lower() in KEYED_HOSTS
    gets_key = _origin(base_url) == _origin(default) and (
        not keyed or urlsplit(base_url).scheme.lower() == "https"
    )
    if keyed and not gets_key:
        raise StepError(
            ErrorClass.PERMANENT,
            f"Refused to call {_shown(base_url)}: a provider's own API is called only over "
            f"https at the installation's provider URL ({_shown(default)}), so its key is "
            "never sent in the clear or elsewhere. Leave Base URL empty to use it.",
        )
    http_client = None
    if base_url.rstrip("/") != default.rstrip("/"):
        ssrf.check_url(base_url)
        http_client = httpx2.AsyncClient(transport=ssrf.GuardedAsyncTransport2())
    if not gets_key:
        # Never hand a key to a server a step chose: it could be anyone's, or be reached
        # over a connection anyone on the way can read.
        key, key_id = NO_KEY, ""
    else:
        try:
            usable = provider_key(ctx.workspace_id, provider)
            # Record which workspace key was used; the installation's key is not audited.
            key, key_id = usable.value, "" if usable.key_id == PLATFORM else usable.key_id
        except MissingKey as exc:
            keyed = urlsplit(base_url).hostname in KEYED_HOSTS
            if keyed or isinstance(exc, OwnKeyRequired):
                raise StepError(ErrorClass.PERMANENT, str(exc)) from None
            key, key_id = NO_KEY, ""  # a local OpenAI-compatible server that wants none
    call = Call(
        key=key,
        base_url=base_url,
        timeout_seconds=float(config.get("timeout_seconds", 120)),
        http_client=http_client,
    )
    return call, key_id


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, the port filled in from the scheme."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        return scheme, "", None
    return scheme, (parts.hostname or "").lower(), port or ssrf.SCHEMES.get(scheme)


def _shown(url: str) -> str:
    """A base URL for messages: scheme, host and port only (a path or query may hold
    anything)."""
    scheme, host, port = _origin(url)
    if not host:
        return "that URL"
    default_port = ssrf.SCHEMES.get(scheme)
    shown_host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown_host}" + ("" if port == default_port else f":{port}")


def check_output_schema(schema: Any) -> None:
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise StepError(
            ErrorClass.PERMANENT, clip(f"output_schema is not a valid JSON Schema: {exc.message}")
        ) from None


FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n(.*?)\n?\s*```\s*$", re.DOTALL)


def parse_answer_json(text: str) -> Any:
    """The JSON value in an answer, tolerating a ```json fence around it; ValueError if none."""
    match = FENCE.match(text)
    return json.loads(match.group(1) if match else text)


def validated_json(
    answer: Answer, schema: dict[str, Any], usage: dict[str, Any], check: Any = None
) -> Any:
    cut_short = (
        " (the answer was cut off at max_tokens)"
        if answer.finish_reason
        in (
            "length",
            "max_tokens",
        )
        else ""
    )
    try:
        value = parse_answer_json(answer.text)
    except ValueError as exc:
        message = f"The model's answer is not JSON{cut_short}: {exc}"
        raise _invalid(message, usage, answer, [message]) from None
    errors = sorted(
        Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path)
    )
    if errors:
        shown = "; ".join(
            f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
            for error in errors[:MAX_ERRORS_SHOWN]
        )
        more = f" (and {len(errors) - MAX_ERRORS_SHOWN} more)" if len(errors) > 5 else ""
        each = [
            f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
            for error in errors[:20]
        ]
        raise _invalid(
            f"The model's answer does not match output_schema{cut_short}: {shown}{more}",
            usage,
            answer,
            each,
        )
    if check is not None:
        problems = _validator_problems(check, value)
        if problems:
            shown = "; ".join(problems[:MAX_ERRORS_SHOWN])
            raise _invalid(f"The validator refused the answer: {shown}", usage, answer, problems)
    return value


def _validator_problems(check: Any, value: Any) -> list[str]:
    try:
        problems = check(value)
    except Exception as exc:  # a broken validator is the workflow's problem, not the model's
        raise StepError(
            ErrorClass.PERMANENT, clip(f"The validator raised {type(exc).__name__}: {exc}")
        ) from None
    return [clip(str(problem)) for problem in (problems or [])][:20]


def _invalid(message: str, usage: dict[str, Any], answer: Answer, errors: list[str]) -> StepError:
    # The call was paid for even though its answer is refused: record what it cost, and
    # what a correction needs: the answer and exactly what was wrong with it.
    detail = {"answer": answer.text[:MAX_ANSWER_KEPT], "errors": [clip(e) for e in errors]}
    return StepError(ErrorClass.INVALID_OUTPUT, clip(message), usage=usage, detail=detail)


register(
    StepKind(
        name="llm",
        label="LLM call",
        config_schema=CONFIG_SCHEMA,
        handler=run_llm,
        queue=queues.LLM,  # slow calls: a pool of their own can be sized apart from quick steps
    )
)
