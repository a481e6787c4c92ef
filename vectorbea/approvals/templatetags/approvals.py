from typing import Any

from django import template

from vectorbea.approvals.topics import count_context

register = template.Library()


@register.inclusion_tag("approvals/_inbox_count.html", takes_context=True)
def inbox_count(context: template.Context) -> dict[str, Any]:
    """The navigation's count: the same fragment the "inbox" topic pushes."""
    membership = context.get("nav_current")
    user = context.get("user")
    if membership is None or user is None or not user.is_authenticated:
        return {"inbox_count": 0}
    return count_context(user, membership)


@register.filter
def pretty_json(value: Any) -> str:
    """A payload or input as people read it: text as is, anything else as indented JSON."""
    import json

    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


@register.filter
def approvers_words(approvers: Any) -> str:
    """{"roles": ["admin"], "users": ["carol"]} as "admins and carol"."""
    from vectorbea.approvals.others import approvers_text

    approvers = approvers if isinstance(approvers, dict) else {}
    return approvers_text(list(approvers.get("roles", [])), list(approvers.get("users", [])))
