"""Small formatters for run pages: durations, money, short ids."""

from datetime import datetime
from decimal import Decimal

from django import template
from django.utils import timezone

from vectorbea.engine.state import TERMINAL_RUN_STATUSES

register = template.Library()


@register.filter
def seconds(value: float | None) -> str:
    """1.2 s, 3 min 4 s, 2 h 5 min, 3 d 4 h."""
    if value is None:
        return "—"
    value = float(value)
    if value < 10:
        return f"{value:.1f} s"
    whole = int(value)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


@register.filter
def uptime(value: float | None) -> str:
    """How long a process has been up, to the unit a person reads: Up 45 s, Up 15 min,
    Up 2 h 5 min, Up 3 d 4 h."""
    if value is None:
        return "—"
    whole = max(int(value), 0)
    if whole < 60:
        return f"Up {whole} s"
    if whole < 3600:
        return f"Up {whole // 60} min"
    if whole < 86400:
        return f"Up {whole // 3600} h {whole % 3600 // 60} min"
    return f"Up {whole // 86400} d {whole % 86400 // 3600} h"


@register.filter
def run_duration(summary) -> str:
    """From start to finish, or to now while the run goes on."""
    start: datetime | None = summary.started_at
    if start is None:
        return "—"
    end = summary.finished_at or timezone.now()
    return seconds(max((end - start).total_seconds(), 0))


@register.filter
def usd(value) -> str:
    if value is None:
        return "—"
    value = Decimal(str(value))
    if value == 0:
        return "$0"
    if value < Decimal("0.01"):
        return f"${value:.4f}"
    return f"${value:,.2f}"


@register.filter
def short_id(value) -> str:
    return str(value)[:8]


@register.filter
def is_finished(status: str) -> bool:
    """Whether a run with this status has ended (completed, failed, denied or cancelled)."""
    return status in TERMINAL_RUN_STATUSES


@register.filter
def words(status: str) -> str:
    """retry_scheduled -> retry scheduled"""
    return str(status).replace("_", " ")
