"""Money as people read it, the kill switch banner, and cost estimates for run pages."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

from vectorbea.budgets.estimates import estimate_run, estimate_to_finish
from vectorbea.budgets.models import WorkspaceLimits

register = template.Library()

# Pages that show the kill switch themselves: no banner on top of it.
KILL_SWITCH_PAGES = {"limits", "workflow-limits", "kill-switch-stop"}


@register.filter
def money(value: Any) -> str:
    """$1,234.56; below a cent, up to six decimals ($0.0035); None: "—"."""
    if value is None or value == "":
        return "—"
    value = Decimal(str(value))
    if value == 0:
        return "$0"
    if abs(value) < Decimal("0.01"):
        return f"${value.normalize():f}"
    return f"${value:,.2f}"


@register.filter
def ago(value: Any) -> str:
    """ "3 minutes ago", or "just now" within the first minute."""
    if value is None:
        return ""
    if timezone.now() - value < timedelta(minutes=1):
        return "just now"
    return f"{timesince(value)} ago"


@register.inclusion_tag("budgets/_kill_switch_banner.html", takes_context=True)
def kill_switch_banner(context: template.Context) -> dict[str, Any]:
    """While the workspace's kill switch is thrown: who threw it, when and why."""
    membership = context.get("nav_current")
    request = context.get("request")
    match = getattr(request, "resolver_match", None)
    if membership is None or (match and match.url_name in KILL_SWITCH_PAGES):
        return {"stopped": None}
    stopped = (
        WorkspaceLimits.objects.filter(
            workspace_id=membership.workspace_id, stopped_at__isnull=False
        )
        .only("stopped_at", "stopped_by", "stop_reason")
        .first()
    )
    return {"stopped": stopped, "ws": membership.workspace.slug}


@register.inclusion_tag("budgets/_run_estimate.html")
def run_estimate(version: Any) -> dict[str, Any]:
    """On the start-a-run form: what a run of `version` typically costs and at worst."""
    return {"estimate": estimate_run(version) if version is not None else None}


@register.inclusion_tag("budgets/_finish_estimate.html")
def finish_estimate(run: Any, summary: Any) -> dict[str, Any]:
    """On the run page, beside the cost so far, while LLM steps are still to run."""
    estimate = estimate_to_finish(run, summary)
    spent = Decimal(summary.cost_usd or 0)
    return {"estimate": estimate if estimate.worst_usd > spent else None}
