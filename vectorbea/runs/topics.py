"""Live fragments for workspace pages, pushed over the one workspace websocket.

A page says which topics it shows (e.g. "runs" on the run list, "inbox" for the count in
the navigation); when a run of the workspace changes, each subscribed topic renders the
HTML to swap in (out-of-band, by element id) for that user, given their access to the
workspace as it is now (the socket checks it once per push). Apps register their topics:

    @topic("inbox")
    def inbox_count(user, access, run_id) -> str: ...

A renderer returns "" when it has nothing to change.
"""

from collections.abc import Callable
from typing import Any
from uuid import UUID

from vectorbea.accounts.access import Access

Renderer = Callable[[Any, Access, UUID], str]
TOPICS: dict[str, Renderer] = {}


def topic(name: str) -> Callable[[Renderer], Renderer]:
    def register(renderer: Renderer) -> Renderer:
        TOPICS[name] = renderer
        return renderer

    return register


def load_topics() -> None:
    """Import the modules that register topics (kept explicit, like step kinds)."""
    import importlib

    for module in TOPIC_MODULES:
        importlib.import_module(module)


TOPIC_MODULES: tuple[str, ...] = ("vectorbea.runs.list_topic", "vectorbea.approvals.topics")
