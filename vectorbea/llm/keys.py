"""Where provider keys come from. This is the ONLY place Vectorbea reads one.

For now the keys are installation-wide settings; the BYOK issue replaces the body of
provider_key() with the workspace's encrypted key store. Never log a key, put it in an
exception message or in a step's output.
"""

from uuid import UUID

from django.conf import settings

from vectorbea.engine import VectorbeaError

SETTING_FOR = {
    "openai": "VECTORBEA_OPENAI_API_KEY",
    "anthropic": "VECTORBEA_ANTHROPIC_API_KEY",
}


class MissingKey(VectorbeaError):
    """No key is configured for this provider (the message names where to set one)."""


def provider_key(workspace_id: UUID, provider: str) -> str:
    """The API key for `provider` that `workspace_id`'s steps use; MissingKey if none."""
    setting = SETTING_FOR.get(provider)
    if setting is None:
        raise MissingKey(f"Unknown LLM provider {provider!r}")
    key = getattr(settings, setting, "")
    if not key:
        raise MissingKey(f"No API key is configured for {provider}: set {setting}.")
    return key
