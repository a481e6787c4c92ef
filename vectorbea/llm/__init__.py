"""Calling LLM providers: one adapter per wire format, the price list, and the one table
that turns a provider's failure into an engine error class.

    from vectorbea.llm import Call, Prompt, complete, provider_key

    key = provider_key(workspace_id, "anthropic")  # a UsableKey: .value, .key_id
    call = Call(key=key.value, base_url="https://api.anthropic.com", timeout_seconds=60)
    answer = await complete("anthropic", Prompt(model="claude-haiku-4-5", user="Hi"), call)
"""

from vectorbea.llm.errors import error_class_for_status, redact, retry_after_seconds
from vectorbea.llm.keys import MissingKey, provider_key
from vectorbea.llm.pricing import Cost, cost_of
from vectorbea.llm.providers import PROVIDERS, Answer, Call, Prompt, complete

__all__ = [
    "PROVIDERS",
    "Answer",
    "Call",
    "Cost",
    "MissingKey",
    "Prompt",
    "complete",
    "cost_of",
    "error_class_for_status",
    "provider_key",
    "redact",
    "retry_after_seconds",
]
