"""Runs that need a person: what the run page's panel shows about each step that stopped,
and the email that tells the workspace's owners and admins.

A step needs attention when it can go no further on its own (its retries or corrections
used up, a permanent error, a spent budget). The run starts no new step until a person
retries it, supplies its output, skips it or fails the run (commands.resolve_attention).
"""

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Subquery
from django.template.loader import render_to_string
from django.urls import reverse

from vectorbea.accounts.models import workspace_managers
from vectorbea.engine import ERROR_CLASS_POLICY, ErrorClass, RunNeedsAttention
from vectorbea.eventlog import store
from vectorbea.eventlog.hooks import Change
from vectorbea.eventlog.models import Run
from vectorbea.keys.redaction import redact
from vectorbea.runs.forms import RESOLVE_FORMS, ResolveForm
from vectorbea.workflows.models import WorkflowVersion

log = logging.getLogger(__name__)


# Where a person fixes what a stop's summary names: (its words, the page's URL name, the
# link's text). The summary says it in words; the panel adds the link.
FIX_LINKS = (
    ("Settings → Providers", "provider-keys", "Open Settings → Providers"),
    ("Settings → Secrets", "workspace-secrets", "Open Settings → Secrets"),
)


@dataclass
class AttentionItem:
    """One step that needs a person, and the forms that answer it."""

    step_id: str
    name: str
    kind: str
    summary: str  # what was tried and why it stopped, in plain language
    error_label: str
    since: datetime | None
    attempts: int
    settings: dict[str, Any]  # what the step runs with now (a person's earlier edit, if any)
    settings_edited: bool
    can_skip: bool
    can_supply: bool
    newest_version: int | None  # a newer version of the workflow the run could move to
    forms: dict[str, ResolveForm] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Stable while the step waits, new each time it stops: keeps the page's forms
        (and what is typed in them) across live updates of the same stop."""
        digits = "".join(c for c in self.since.isoformat() if c.isdigit()) if self.since else ""
        return f"{self.step_id}-{digits}"

    @property
    def fix_link(self) -> tuple[str, str] | None:
        """(URL name, link text) of the settings page the summary sends a person to."""
        for words, url_name, text in FIX_LINKS:
            if words in self.summary:
                return url_name, text
        return None

    @property
    def settings_json(self) -> str:
        return json.dumps(self.settings, indent=2, ensure_ascii=False)

    def with_form(self, action: str, form: ResolveForm) -> "AttentionItem":
        self.forms = {**self.forms, action: form}
        return self


def attention_items(run_id: UUID, loaded: store.Loaded | None = None) -> list[AttentionItem]:
    """The steps of the run that need a person now (none when it does not)."""
    from vectorbea.steps.registry import kind_specs

    loaded = loaded or store.load(run_id)
    state = loaded.state
    if not state.attention or state.is_terminal:
        return []
    definition = loaded.definition
    specs = kind_specs()
    newest = _newer_version(state.workflow_id, loaded.version_id)
    items = []
    for step_id, info in sorted(state.attention.items()):
        step_def = definition.steps.get(step_id)
        if step_def is None:
            continue
        step = state.step(step_id)
        spec = specs.get(step_def.kind)
        item = AttentionItem(
            step_id=step_id,
            name=step_def.name or step_id,
            kind=step_def.kind,
            summary=str(info.get("summary", "")),
            error_label=_error_label(str(info.get("error_class", ""))),
            since=_parse(info.get("at")),
            attempts=step.attempt,
            settings=dict(step.config if step.config is not None else step_def.config),
            settings_edited=step.config is not None,
            can_skip=step_def.allow_skip,
            can_supply=spec is None or spec.ports is None,
            newest_version=newest,
        )
        for action, form_class in RESOLVE_FORMS.items():
            initial = {"step": step_id}
            if action == "retry":
                initial["settings"] = item.settings_json
            item.forms[action] = form_class(initial=initial, auto_id=f"id_{item.key}_{action}_%s")
        items.append(item)
    return items


def _newer_version(workflow_id: str | None, current: UUID) -> int | None:
    """The number of the workflow's newest version, if it is newer than the run's."""
    if not workflow_id:
        return None
    current_number = WorkflowVersion.objects.filter(pk=current).values("number")
    return (
        WorkflowVersion.objects.filter(workflow_id=workflow_id, number__gt=Subquery(current_number))
        .order_by("-number")
        .values_list("number", flat=True)
        .first()
    )


def _error_label(error_class: str) -> str:
    try:
        return ERROR_CLASS_POLICY[ErrorClass(error_class)].label
    except (ValueError, KeyError):
        return error_class


def _parse(iso: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(iso) if isinstance(iso, str) else None
    except ValueError:
        return None


# The email


def email_when_attention_is_needed(change: Change) -> None:
    """After-commit hook: an append that made a run need attention tells the people who
    can resolve it."""
    if any(isinstance(r.event, RunNeedsAttention) for r in change.events):
        notify_attention(change.run_id)


def notify_attention(run_id: UUID) -> int:
    """Email the workspace's owners and admins that the run needs a person: the workflow,
    the run, each step that stopped and why, and a link to the run's page. Nothing else
    of the run (no input, settings or output: they may hold secrets or personal data).

    Call it after the append that recorded RunNeedsAttention commits. A failure is logged,
    never raised: an email problem must not fail a run. Returns the emails sent."""
    try:
        return _notify(run_id)
    except Exception:
        log.exception("Could not email about run %s needing attention", run_id)
        return 0


def _notify(run_id: UUID) -> int:
    run = Run.objects.select_related("workspace", "workflow").filter(pk=run_id).first()
    if run is None:
        return 0
    loaded = store.load(run_id)
    if not loaded.state.attention or loaded.state.is_terminal:
        return 0  # resolved (or ended) before we got here
    names = {key: step.name or key for key, step in loaded.definition.steps.items()}
    steps = [
        {"name": names.get(step_id, step_id), "summary": redact(str(info.get("summary", "")))}
        for step_id, info in sorted(loaded.state.attention.items())
    ]
    path = reverse("run-detail", kwargs={"ws": run.workspace.slug, "run_id": run.id})
    url = settings.SITE_URL.rstrip("/") + path
    versions = WorkflowVersion.objects.filter(pk=loaded.version_id)
    version = versions.values_list("number", flat=True).first()
    subject = " ".join(f"Needs attention: {run.workflow.name} run {str(run.id)[:8]}".split())
    members = workspace_managers(run.workspace_id)
    sent = 0
    for membership in members:
        context = {
            "user": membership.user,
            "run": run,
            "version": version,
            "steps": steps,
            "url": url,
        }
        body = render_to_string("runs/email_attention.txt", context)
        send_mail(subject[:200], body, None, [membership.user.email])
        sent += 1
    return sent
