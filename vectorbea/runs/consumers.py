"""The run timeline over a websocket.

On connect the browser says the last seq it shows ({"after": N}); the consumer sends every
event after it from Postgres, then again whenever a push says the run has moved on. It
keeps the last seq it sent, so the timeline has no gaps and no duplicates whatever pushes
were lost or repeated, and however often the socket reconnects. A running step's text so
far (a model's words as they arrive, runs.partials) is not in the log: it comes as it is
pushed, and from Redis on (re)connect.

Access is checked for every frame, not once at connect: each one is rendered for the
person's membership and role as they are when it is rendered (one indexed query, next to
the several its fragment's own rendering costs; pushes of one run are coalesced to at most
one every few tens of milliseconds). A member removed while the page is open gets no
further frame and the socket closes (ACCESS_GONE); a member whose role changed gets the
next frame rendered for the new role.
"""

import logging
from typing import Any
from uuid import UUID

from asgiref.sync import async_to_sync
from channels.generic.websocket import WebsocketConsumer
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404

from vectorbea.accounts.access import Access, Capability, workspace_access
from vectorbea.engine.limits import BadJson, parse_json
from vectorbea.eventlog.models import Run, RunSummary
from vectorbea.metrics.sockets import CountedConnection
from vectorbea.runs import live, partials
from vectorbea.runs.timeline import render_live_update

log = logging.getLogger(__name__)

BATCH = 200
MAX_MESSAGE_BYTES = 10_000  # what a browser sends: {"after": N} or {"topics": [...]}
MAX_SEQ = 2_147_483_647  # a seq is a Postgres integer

# The close code when the person may no longer see the workspace (the 4000s are the
# application's): the browser's socket stays closed rather than reconnecting.
ACCESS_GONE = 4403


class WorkspaceSocket(CountedConnection, WebsocketConsumer):
    """A socket in one workspace's group; `current_access()` before every frame."""

    slug: str
    group: str | None = None
    gone = False

    def join(self, slug: str, group: str) -> None:
        self.slug, self.group = slug, group
        async_to_sync(self.channel_layer.group_add)(group, self.channel_name)
        self.accept()

    def disconnect(self, code: int) -> None:
        self.leave()

    def leave(self) -> None:
        if self.group:
            async_to_sync(self.channel_layer.group_discard)(self.group, self.channel_name)

    def current_access(self) -> Access | None:
        """The person's access now, or None once it is gone: then the socket has left its
        group and is closed, and pushes still queued for it render nothing."""
        if self.gone:
            return None
        try:
            return workspace_access(self.scope.get("user"), self.slug)
        except (Http404, PermissionDenied):
            self.gone = True
            self.leave()
            self.close(code=ACCESS_GONE)
            return None


class RunTimelineConsumer(WorkspaceSocket):
    run_id: UUID
    sent: int | None = None

    def connect(self) -> None:
        kwargs = self.scope["url_route"]["kwargs"]
        try:
            access = workspace_access(self.scope.get("user"), kwargs["ws"])
            run = Run.objects.get(pk=kwargs["run_id"], workspace=access.workspace)
        except (Http404, PermissionDenied, Run.DoesNotExist, ValidationError):
            self.close()  # before accept: the handshake is refused (HTTP 403)
            return
        self.run_id = run.id
        self.join(access.workspace.slug, live.run_group(run.id))

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            message = parse_json(text_data or "{}", "The message", max_bytes=MAX_MESSAGE_BYTES)
            after = int(message.get("after", 0))
        except (BadJson, ValueError, TypeError, AttributeError):
            return  # not ours to understand; ignore rather than crash the socket
        self.sent = min(max(0, after), MAX_SEQ)
        self.catch_up()
        self.send_texts_so_far()

    def run_changed(self, message: dict[str, Any]) -> None:
        if self.sent is not None and message.get("seq", 0) > self.sent:
            self.catch_up()

    def step_partial(self, message: dict[str, Any]) -> None:
        """A running step's text so far (runs.partials): not an event, so it is sent as
        it comes, to a person who may see the run now."""
        if self.current_access() is None:
            return
        try:
            html = partials.render_partial(
                str(message["step_id"]), int(message["attempt"]), str(message["text"])
            )
        except (KeyError, ValueError, TypeError):
            return
        self.send(text_data=html)

    def send_texts_so_far(self) -> None:
        """On (re)connect: the text so far of the steps running now, from Redis (their
        pushes while the socket was away are lost; recorded rows come by catch_up)."""
        steps = RunSummary.objects.filter(run_id=self.run_id).values_list("steps", flat=True)
        running = {
            step_id: int(step.get("attempt", 0))
            for step_id, step in (steps.first() or {}).items()
            if isinstance(step, dict) and step.get("status") == "running"
        }
        texts = partials.texts_so_far(self.run_id, running)
        if texts and self.current_access() is not None:
            html = "".join(
                partials.render_partial(step_id, running[step_id], text)
                for step_id, text in texts.items()
            )
            self.send(text_data=html)

    def catch_up(self) -> None:
        while access := self.current_access():
            html, last = render_live_update(
                self.run_id,
                after=self.sent or 0,
                limit=BATCH,
                can_operate=access.can(Capability.OPERATE_RUNS),
                workspace_slug=self.slug,
            )
            if last is None:
                return
            self.send(text_data=html)
            self.sent = last


class WorkspaceConsumer(WorkspaceSocket):
    """One socket per workspace page: the client subscribes to topics ({"topics": [...]})
    and gets their fragments whenever a run of the workspace changes."""

    def connect(self) -> None:
        try:
            access = workspace_access(
                self.scope.get("user"), self.scope["url_route"]["kwargs"]["ws"]
            )
        except (Http404, PermissionDenied):
            self.close()
            return
        self.topics: list[str] = []
        self.join(access.workspace.slug, live.workspace_group(access.workspace.id))

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        from vectorbea.runs.topics import TOPICS, load_topics

        load_topics()
        try:
            message = parse_json(text_data or "{}", "The message", max_bytes=MAX_MESSAGE_BYTES)
        except BadJson:
            return
        wanted = message.get("topics") if isinstance(message, dict) else None
        if not isinstance(wanted, list):
            return  # not a subscription (e.g. a page script's message meant for another socket)
        # Subscriptions add up: several scripts on one page may each subscribe to their topic.
        for name in wanted:
            if isinstance(name, str) and name in TOPICS and name not in self.topics:
                self.topics.append(name)

    def run_changed(self, message: dict[str, Any]) -> None:
        from vectorbea.runs.topics import TOPICS

        if not (access := self.current_access()) or not self.topics:
            return
        run_id = UUID(message["run_id"])
        html = "".join(TOPICS[name](self.scope["user"], access, run_id) for name in self.topics)
        if html:
            self.send(text_data=html)
