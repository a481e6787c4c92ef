"""Which provider an LLM call goes to: its wire format, base URL, key and model. The one
place that decides it, for the LLM step, the agent step and "Test connection".

A step's `provider` names one of:

- "openai" or "anthropic": the installation's provider URL (VECTORBEA_OPENAI_BASE_URL,
  VECTORBEA_ANTHROPIC_BASE_URL) with the workspace's key, or the installation's
  (vectorbea.llm.keys.provider_key). A step's own `base_url` is still honoured: it goes
  through the SSRF guard and is sent no key unless it is the installation URL's origin.
- the name of one of the workspace's OpenAI-compatible providers (Settings → Providers):
  its base URL (through the SSRF guard: the operator's VECTORBEA_HTTP_ALLOWLIST decides
  which non-public addresses may be called), its key if it has one, its default model.
- nothing: the workspace's default provider (the first one set up, or the one chosen on
  the Providers page), else "openai".

A step's `model` wins over the provider's default model.
"""

import asyncio
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import httpx2
from django.conf import settings

from vectorbea.engine import ErrorClass, Issue, StepError
from vectorbea.llm.keys import PLATFORM, PROVIDER_NAMES, MissingKey, OwnKeyRequired, provider_key
from vectorbea.llm.providers import Answer, Call, Prompt, complete, run_closing
from vectorbea.steps import ssrf

BUILT_IN = ("openai", "anthropic")
DEFAULT_BASE_URL_SETTING = {
    "openai": "VECTORBEA_OPENAI_BASE_URL",
    "anthropic": "VECTORBEA_ANTHROPIC_BASE_URL",
}
# The model a step that names none asks a built-in provider for.
DEFAULT_MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}
# Hosts that always need a real key; a self-hosted OpenAI-compatible server may not.
KEYED_HOSTS = {"api.openai.com", "api.anthropic.com"}
NO_KEY = "no-key-configured"
PROVIDERS_PAGE = "Settings → Providers"
NO_PROVIDER = (
    f"No LLM provider is set up for this workspace: an owner or admin adds one in "
    f"{PROVIDERS_PAGE} (OpenAI, Anthropic, or an OpenAI-compatible server such as Ollama)."
)


@dataclass(frozen=True)
class Resolved:
    """Where one LLM call goes. Its repr never shows the key (Call's does not)."""

    provider: str  # the wire format, and the adapter in PROVIDERS: "openai" or "anthropic"
    name: str  # what the call is to, as the workspace names it: "openai", or "Local Ollama"
    model: str
    call: Call
    key_id: str  # the workspace key's or compatible provider's id; "" for none or the platform's


def provider_name(workspace_id: UUID, named: str | None) -> tuple[str, bool]:
    """The provider a step that names `named` calls, and whether that is the workspace's
    default (the step named none)."""
    named = (named or "").strip()
    if named:
        return named, False
    from vectorbea.keys import vault

    return vault.default_provider(workspace_id) or "", True


def resolve(workspace_id: UUID, config: Mapping[str, Any]) -> Resolved:
    """Where a call with these step settings (provider, model, base_url, timeout_seconds)
    goes; a permanent StepError saying what to set when it cannot go anywhere."""
    name, by_default = provider_name(workspace_id, config.get("provider"))
    timeout_seconds = float(config.get("timeout_seconds", 120))
    model = str(config.get("model") or "").strip()
    if name.lower() in BUILT_IN or not name:
        kind = name.lower() or "openai"
        none_set_up = by_default and not name  # the workspace has chosen no provider
        call, key_id = _built_in(workspace_id, kind, config, timeout_seconds, none_set_up)
        return Resolved(kind, kind, model or DEFAULT_MODELS[kind], call, key_id)
    from vectorbea.keys import vault

    entry = vault.compatible_state(workspace_id, name)
    if entry is None:
        raise StepError(
            ErrorClass.PERMANENT,
            f"This workspace has no provider named {name!r}: add it in {PROVIDERS_PAGE}, or "
            "choose openai or anthropic.",
        )
    if (config.get("base_url") or "").strip():
        raise StepError(
            ErrorClass.PERMANENT,
            f"The provider {entry.name!r} has its own base URL: leave the step's Base URL empty.",
        )
    ssrf.check_url(entry.base_url)
    value, key_id = (entry.key[0], entry.key[1]) if entry.key else (NO_KEY, "")
    call = Call(
        key=value,
        base_url=entry.base_url,
        timeout_seconds=timeout_seconds,
        http_client=httpx2.AsyncClient(transport=ssrf.GuardedAsyncTransport2()),
    )
    return Resolved("openai", entry.name, model or entry.default_model, call, key_id)


def _built_in(
    workspace_id: UUID,
    provider: str,
    config: Mapping[str, Any],
    timeout_seconds: float,
    none_set_up: bool,
) -> tuple[Call, str]:
    """Where and how to call a built-in provider, and the id of the key used ("" for
    none): a step's own base_url is user input, so it goes through the SSRF guard
    (pinned); the installation's default is the operator's and is trusted. A key is sent
    only to the default's own origin (scheme, host and port), and to a provider's public
    API only over https."""
    default = getattr(settings, DEFAULT_BASE_URL_SETTING[provider])
    base_url = (config.get("base_url") or "").strip() or default
    keyed = (urlsplit(base_url).hostname or "").lower() in KEYED_HOSTS
    gets_key = _origin(base_url) == _origin(default) and (
        not keyed or urlsplit(base_url).scheme.lower() == "https"
    )
    if keyed and not gets_key:
        raise StepError(
            ErrorClass.PERMANENT,
            f"Refused to call {shown_url(base_url)}: a provider's own API is called only over "
            f"https at the installation's provider URL ({shown_url(default)}), so its key is "
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
            usable = provider_key(workspace_id, provider)
            # Record which workspace key was used; the installation's key is not audited.
            key, key_id = usable.value, "" if usable.key_id == PLATFORM else usable.key_id
        except MissingKey as exc:
            if keyed or isinstance(exc, OwnKeyRequired):
                message = NO_PROVIDER if none_set_up else str(exc)
                raise StepError(ErrorClass.PERMANENT, message) from None
            key, key_id = NO_KEY, ""  # a local OpenAI-compatible server that wants none
    call = Call(
        key=key, base_url=base_url, timeout_seconds=timeout_seconds, http_client=http_client
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


def shown_url(url: str) -> str:
    """A base URL for messages: scheme, host and port only (a path or query may hold
    anything)."""
    scheme, host, port = _origin(url)
    if not host:
        return "that URL"
    default_port = ssrf.SCHEMES.get(scheme)
    shown_host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown_host}" + ("" if port == default_port else f":{port}")


def display_name(name: str) -> str:
    """ "OpenAI" for "openai"; a compatible provider's own name otherwise."""
    return PROVIDER_NAMES.get(name.lower(), name)


def provider_problems(definition: Any, workspace_id: UUID | None = None) -> list[Issue]:
    """The builder's checks of where LLM and HTTP steps call: a provider the workspace does
    not have, and an address the installation refuses (with the exact
    VECTORBEA_HTTP_ALLOWLIST entry that would allow it). Never raises on junk."""
    raw_steps = definition.get("steps") if isinstance(definition, Mapping) else None
    issues: list[Issue] = []
    for index, raw in enumerate(raw_steps if isinstance(raw_steps, list) else ()):
        if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), str):
            continue
        config = raw.get("config") if isinstance(raw.get("config"), Mapping) else {}
        step_id, label = raw["id"], raw.get("name") or raw["id"]
        base = f"steps[{index}].config"
        if raw.get("kind") == "http":
            issues += _refused(config.get("url"), f"{base}.url", step_id, label)
        if raw.get("kind") not in ("llm", "agent"):
            continue
        named = config.get("provider")
        own_url = config.get("base_url")
        defaults = {getattr(settings, s).rstrip("/") for s in DEFAULT_BASE_URL_SETTING.values()}
        if isinstance(own_url, str) and own_url.strip().rstrip("/") not in defaults:
            # The installation's own provider URLs are the operator's, called as they are.
            issues += _refused(own_url, f"{base}.base_url", step_id, label)
        if workspace_id is None or not isinstance(named, str) or "{" in named:
            continue
        named = named.strip()
        if not named or named.lower() in BUILT_IN:
            continue
        from vectorbea.keys import vault

        entry = vault.compatible_provider(workspace_id, named)
        if entry is None:
            issues.append(
                Issue(
                    f"{base}.provider",
                    f"Step '{label}' uses the provider '{named}', which this workspace does "
                    f"not have: add it in {PROVIDERS_PAGE}, or choose openai or anthropic.",
                    step_id=step_id,
                )
            )
        else:
            issues += _refused(entry.base_url, f"{base}.provider", step_id, label)
    return issues


def _refused(url: Any, path: str, step_id: str, label: str) -> list[Issue]:
    if not isinstance(url, str) or not url.strip() or "{" in url:
        return []
    why = ssrf.refusal(url.strip())
    return [Issue(path, f"Step '{label}': {why}", step_id=step_id)] if why else []


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    message: str  # the answer, or the plain error (never the key: errors are redacted)


CHECK_PROMPT = "Reply with the single word OK."
CHECK_TIMEOUT_SECONDS = 20.0


def check_connection(workspace_id: UUID, name: str) -> ConnectionCheck:
    """One tiny call (max_tokens 1) to the provider `name`, by the path a step's call
    takes (resolve, the SSRF guard, the adapter and its error table)."""
    shown = display_name(name)
    try:
        where = resolve(workspace_id, {"provider": name, "timeout_seconds": CHECK_TIMEOUT_SECONDS})
    except StepError as exc:
        return ConnectionCheck(False, exc.message)
    prompt = Prompt(model=where.model, user=CHECK_PROMPT, max_tokens=1)

    async def ask() -> Answer:
        # A client of its own, closed here: this loop lives only for this call.
        client = where.call.http_client or httpx2.AsyncClient()
        try:
            return await complete(where.provider, prompt, replace(where.call, http_client=client))
        finally:
            await client.aclose()

    try:
        answer = _run(ask())
    except StepError as exc:
        return ConnectionCheck(False, exc.message)
    said = " ".join(answer.text.split())[:200]
    heard = f"“{said}”" if said else "an empty answer (it was asked for 1 token)"
    return ConnectionCheck(True, f"{shown} answered with model {answer.model}: {heard}")


def _run(coroutine: Any) -> Any:
    """Await `coroutine` on a loop of its own (on another thread if this one runs a loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run_closing(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run_closing, coroutine).result()
