from collections.abc import Sequence
from uuid import UUID

from django.apps import AppConfig


def email_when_attention_is_needed(
    run_id: UUID, workspace_id: UUID, recorded: Sequence, *_context: object
) -> None:
    """After an append that made a run need attention commits: tell the people who can
    resolve it (never raises; see runs.attention.notify_attention)."""
    if any(type(r.event).__name__ == "RunNeedsAttention" for r in recorded):
        from vectorbea.runs.attention import notify_attention

        notify_attention(run_id)


class RunsConfig(AppConfig):
    name = "vectorbea.runs"

    def ready(self) -> None:
        from vectorbea.eventlog import store

        if email_when_attention_is_needed not in store.AFTER_APPEND_HOOKS:
            store.AFTER_APPEND_HOOKS.append(email_when_attention_is_needed)
