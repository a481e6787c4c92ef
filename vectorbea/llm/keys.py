"""Where provider keys come from. This is the ONLY place Vectorbea obtains a plaintext key,
and only the worker step that calls the provider calls it.

A workspace's own key (BYOK, Settings → Providers) comes first. Without one, the
installation's key from settings is used, unless the workspace requires its own keys.
Every use is recorded: `last_used_at` on the key row (when a process reads it, at most
every few seconds: vault.key_state), and the key's id (never its value) in the step's
usage, which lands in the run's StepCompleted / StepFailed event. Every key handed out is
remembered by the redaction filter of this process (logs and events).
Never log a key, put it in an exception message or in a step's output.
"""

from dataclasses import dataclass, field
from uuid import UUID

from django.conf import settings

from vectorbea.engine import VectorbeaError

SETTING_FOR = {
    "openai": "VECTORBEA_OPENAI_API_KEY",
    "anthropic": "VECTORBEA_ANTHROPIC_API_KEY",
}
PROVIDER_NAMES = {"openai": "OpenAI", "anthropic": "Anthropic"}
PLATFORM = "platform"


class MissingKey(VectorbeaError):
    """No key is configured for this provider (the message names where to set one)."""


class OwnKeyRequired(MissingKey):
    """The workspace requires its own key and has none: never worth calling without one."""


@dataclass(frozen=True)
class UsableKey:
    """A plaintext key for one call. Its repr never shows the value."""

    value: str = field(repr=False)
    # The workspace key's id, or "platform" for the installation's key.
    key_id: str
    last_four: str


def provider_key(workspace_id: UUID, provider: str) -> UsableKey:
    """The API key for `provider` that `workspace_id`'s steps use; MissingKey if none."""
    from vectorbea.keys import vault
    from vectorbea.keys.redaction import remember

    setting = SETTING_FOR.get(provider)
    if setting is None:
        raise MissingKey(f"Unknown LLM provider {provider!r}")
    state = vault.key_state(workspace_id, provider)
    if state.own is not None:
        return UsableKey(*state.own)
    missing = (
        f"No {PROVIDER_NAMES[provider]} key is set for this workspace: "
        "add one in Settings → Providers"
    )
    if state.own_only:
        raise OwnKeyRequired(f"{missing} (this workspace uses only its own keys).")
    value = getattr(settings, setting, "")
    if not value:
        raise MissingKey(f"{missing}, or set {setting} for the whole installation.")
    remember(value)
    return UsableKey(value, PLATFORM, value[-4:])
