"""Workspace secrets in step settings: ``{{ secrets.NAME }}``.

An HTTP step may use a secret in its URL and headers, a tool step in its arguments
(SECRET_SETTINGS), always whole. The ordinary render leaves ``{{ secrets.NAME }}`` as its
own text (templating.SECRET_PLACEHOLDERS), so no rendered config, event, page, export or
diff holds a value. The step kind renders its settings here, with the values, as it calls
out: each value is remembered by the redaction filter first (vectorbea.keys.redaction), so
an echo of it in an answer, an error or a log line is replaced before anything records it.
"""

from collections.abc import Iterator, Mapping
from typing import Any
from uuid import UUID

from vectorbea.engine import ErrorClass, Issue, StepError
from vectorbea.steps.registry import StepContext
from vectorbea.steps.templating import (
    TemplateProblem,
    render_config,
    secret_uses,
    template_context,
    template_strings,
)

# The settings of each step kind that may use a secret; no other kind may.
SECRET_SETTINGS: dict[str, tuple[str, ...]] = {
    "http": ("url", "headers"),
    "tool": ("args",),
    "agent": ("tools",),  # an HTTP tool's URL and headers (rendered only as it is called)
}
WHERE_ALLOWED = "only in an HTTP step's URL and headers, or a Python tool step's arguments"
HOW_TO_ADD = "An owner or admin can add it in Settings → Secrets."


def secret_problems(definition: Mapping[str, Any]) -> list[Issue]:
    """Save-time check of how a definition uses secrets: whole, and only in the settings
    that take one. Never raises on junk; a check for validate_definition."""
    issues: list[Issue] = []
    for step_id, kind, path, setting, source in _templates(definition):
        names, problems = secret_uses(source)
        if names and not _takes_secrets(kind, setting):
            problems = [*problems, f"A secret can be used {WHERE_ALLOWED}."]
        issues += [
            Issue(
                path,
                f"Setting '{setting}' of step '{step_id}': {problem}",
                step_id=step_id,
                advice=problem,
            )
            for problem in problems
        ]
    return issues


def missing_secrets(definition: Mapping[str, Any], workspace_id: UUID) -> list[Issue]:
    """An issue for every ``{{ secrets.NAME }}`` the workspace has no secret for."""
    uses = [
        (step_id, path, setting, names)
        for step_id, _kind, path, setting, source in _templates(definition)
        if (names := secret_uses(source)[0])
    ]
    if not uses:
        return []
    from vectorbea.keys import vault

    have = vault.secret_names(workspace_id)
    return [
        Issue(
            path,
            f"Setting '{setting}' of step '{step_id}': this workspace has no secret "
            f"'{name}'. {HOW_TO_ADD}",
            step_id=step_id,
            advice=f"this workspace has no secret '{name}'. {HOW_TO_ADD}",
        )
        for step_id, path, setting, names in uses
        for name in sorted(names - have)
    ]


def render_with_secrets(
    config: Mapping[str, Any], ctx: StepContext, kind: str
) -> tuple[dict[str, Any], list[str]]:
    """The settings of a `kind` step rendered for the call it is about to make, with the
    values of the secrets they use; and those values, for the step's own redaction.
    TemplateProblem for a secret used other than whole or where `kind` takes none; a
    permanent StepError naming each secret the workspace does not have."""
    names: set[str] = set()
    for path, source in template_strings(config):
        used, problems = secret_uses(source)
        if used and not _takes_secrets(kind, path):
            problems = [*problems, f"A secret can be used {WHERE_ALLOWED}."]
        if problems:
            raise TemplateProblem(path, " ".join(problems))
        names |= used
    context = template_context(ctx.run_input, ctx.outputs)
    if not names:
        return render_config(config, context), []
    from vectorbea.keys import vault

    values = vault.secret_values(ctx.workspace_id, names)
    missing = sorted(names - values.keys())
    if missing:
        listed = ", ".join(f"'{name}'" for name in missing)
        which = f"secret {listed}" if len(missing) == 1 else f"secrets {listed}"
        raise StepError(
            ErrorClass.PERMANENT,
            f"This workspace has no {which}. {HOW_TO_ADD} Then retry the step.",
        )
    return render_config(config, {**context, "secrets": values}), list(values.values())


def _takes_secrets(kind: str, setting: str) -> bool:
    root = setting.split(".", 1)[0].split("[", 1)[0]
    return root in SECRET_SETTINGS.get(kind, ())


def _templates(definition: Any) -> Iterator[tuple[str, str, str, str, str]]:
    """(step id, kind, path, setting, source) of every templated setting in a definition."""
    raw_steps = definition.get("steps") if isinstance(definition, Mapping) else None
    for index, raw in enumerate(raw_steps if isinstance(raw_steps, list) else ()):
        if not (isinstance(raw, Mapping) and isinstance(raw.get("id"), str)):
            continue
        base = f"steps[{index}].config"
        for path, source in template_strings(raw.get("config"), base):
            setting = path[len(base) :].lstrip(".") or "config"
            yield raw["id"], str(raw.get("kind")), path, setting, source
