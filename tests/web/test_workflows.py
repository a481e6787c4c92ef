"""The workflow pages: list, create, rename, duplicate, archive, the builder's draft saves,
publish, versions, import/export and the run form."""

import json

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.conftest import make_member
from tests.support.workflows import chain, publish, record
from vectorbea.accounts.models import Role
from vectorbea.engine import StepFailed
from vectorbea.eventlog.models import Run
from vectorbea.runs.commands import start_run
from vectorbea.workflows import commands
from vectorbea.workflows.models import Workflow, WorkflowVersion

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
TEXT_FIELD = {"type": "string"}


def transform(step_id: str, output="{{ input.ticket }}", **extra) -> dict:
    return {
        "id": step_id,
        "kind": "transform",
        "name": step_id,
        "config": {"output": output},
        **extra,
    }


def valid_definition() -> dict:
    return {
        "input_schema": {
            "type": "object",
            "properties": {"ticket": {"type": "string", "description": "The ticket text"}},
            "required": ["ticket"],
        },
        "steps": [
            transform("read"),
            {
                "id": "route",
                "kind": "branch",
                "name": "Route",
                "config": {
                    "conditions": [{"port": "urgent", "when": "{{ 'urgent' in input.ticket }}"}],
                    "default_port": "normal",
                },
            },
            transform("escalate", "{{ steps.read.output }}"),
        ],
        "edges": [
            {"source": "read", "target": "route", "port": None},
            {"source": "route", "target": "escalate", "port": "urgent"},
        ],
        "layout": {"read": {"x": 0, "y": 0}},
    }


@pytest.fixture
def workflow(acme, alice) -> Workflow:
    return commands.create_workflow(acme, alice, "Triage", valid_definition())


@pytest.fixture
def as_alice(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def as_viewer(acme) -> Client:
    client = Client()
    client.force_login(make_member("vera", acme, Role.VIEWER))
    return client


@pytest.fixture
def as_editor(acme) -> Client:
    client = Client()
    client.force_login(make_member("eddie", acme, Role.EDITOR))
    return client


def url(name: str, workflow: Workflow, *args) -> str:
    return reverse(name, args=[workflow.workspace.slug, workflow.id, *args])


def save(client: Client, workflow: Workflow, definition, revision: int):
    return client.post(
        url("workflow-draft", workflow),
        json.dumps({"definition": definition, "revision": revision}),
        content_type="application/json",
    )


# --- the list ------------------------------------------------------------------------------


def test_the_list_shows_latest_version_last_run_and_recent_runs(as_alice, acme, alice):
    published = publish(acme, chain(1), name="Nightly report")
    start_run(published, {})
    start_run(published, {})
    commands.create_workflow(acme, alice, "Unpublished idea")
    as_alice.get(reverse("workflows", args=["acme"]))  # the first visit remembers the workspace
    with CaptureQueriesContext(connection) as few:
        as_alice.get(reverse("workflows", args=["acme"]))
    for n in range(10):
        start_run(publish(acme, chain(1), name=f"More {n}"), {})

    with CaptureQueriesContext(connection) as queries:
        response = as_alice.get(reverse("workflows", args=["acme"]))

    assert response.status_code == 200
    rows = {w.name: w for w in response.context["rows"]}
    assert rows["Nightly report"].latest_number == 1
    assert rows["Nightly report"].runs_24h == 2
    assert rows["Nightly report"].last_run_status
    assert rows["Unpublished idea"].latest_number is None
    assert rows["Unpublished idea"].runs_24h == 0
    assert b"Draft only" in response.content
    assert len(queries) == len(few)  # one query for the rows, however many there are


def test_the_empty_list_invites_to_create_or_import(as_alice):
    response = as_alice.get(reverse("workflows", args=["acme"]))

    assert b"No workflows in Acme yet" in response.content
    assert reverse("workflow-create", args=["acme"]).encode() in response.content
    assert reverse("workflow-import", args=["acme"]).encode() in response.content


def test_names_with_html_render_as_text_in_the_list(as_alice, acme, alice):
    commands.create_workflow(acme, alice, XSS)

    content = as_alice.get(reverse("workflows", args=["acme"])).content.decode()

    assert "<script>alert" not in content
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in content


def test_create_opens_the_builder(as_alice, acme):
    response = as_alice.post(reverse("workflow-create", args=["acme"]), {"name": "  My   flow "})

    workflow = Workflow.objects.get(workspace=acme)
    assert workflow.name == "My flow"
    assert workflow.draft["steps"] == []
    assert response["Location"] == url("workflow-builder", workflow)


def test_create_needs_a_name(as_alice, acme):
    response = as_alice.post(reverse("workflow-create", args=["acme"]), {"name": "   "})

    assert response.status_code == 400
    assert not Workflow.objects.filter(workspace=acme).exists()


def test_rename_duplicate_and_archive(as_alice, workflow):
    as_alice.post(url("workflow-rename", workflow), {"name": "Triage tickets"})
    workflow.refresh_from_db()
    assert workflow.name == "Triage tickets"

    response = as_alice.post(url("workflow-duplicate", workflow))
    copy = Workflow.objects.exclude(pk=workflow.pk).get()
    assert copy.name == "Copy of Triage tickets"
    assert copy.draft == workflow.draft
    assert response["Location"] == url("workflow-builder", copy)

    as_alice.post(url("workflow-archive", workflow))
    listed = as_alice.get(reverse("workflows", args=["acme"])).context["rows"]
    assert [w.name for w in listed] == ["Copy of Triage tickets"]
    archived = as_alice.get(reverse("workflows", args=["acme"]) + "?archived=1").context["rows"]
    assert [w.name for w in archived] == ["Triage tickets"]

    as_alice.post(url("workflow-archive", workflow), {"restore": "1"})
    workflow.refresh_from_db()
    assert workflow.archived_at is None


def test_rename_with_htmx_returns_the_title_form(as_alice, workflow):
    response = as_alice.post(
        url("workflow-rename", workflow), {"name": XSS}, headers={"HX-Request": "true"}
    )

    assert response.status_code == 200
    content = response.content.decode()
    assert 'id="wf-title"' in content
    assert "<script>alert" not in content


def test_a_name_another_workflow_has_is_refused_in_plain_words(as_alice, workflow, acme):
    response = as_alice.post(reverse("workflow-create", args=["acme"]), {"name": " triage "})

    assert response.status_code == 400
    assert "Acme already has a workflow named “triage”" in response.content.decode()
    assert Workflow.objects.filter(workspace=acme).count() == 1

    other = commands.create_workflow(acme, None, "Nightly")
    response = as_alice.post(url("workflow-rename", other), {"name": "TRIAGE"})
    assert response.status_code == 400
    assert "already has a workflow named “TRIAGE”" in response.content.decode()
    other.refresh_from_db()
    assert other.name == "Nightly"

    as_alice.post(url("workflow-rename", workflow), {"name": "Triage"})  # its own name: fine
    workflow.refresh_from_db()
    assert workflow.name == "Triage"


def test_the_builder_title_says_why_a_taken_name_was_refused(as_alice, workflow, acme):
    other = commands.create_workflow(acme, None, "Nightly")

    response = as_alice.post(
        url("workflow-rename", other), {"name": "Triage"}, headers={"HX-Request": "true"}
    )

    content = response.content.decode()
    assert 'value="Nightly"' in content
    assert 'role="alert"' in content and "already has a workflow named “Triage”" in content
    other.refresh_from_db()
    assert other.name == "Nightly"


def test_names_are_unique_per_workspace_and_copies_get_a_free_name(
    as_alice, workflow, acme, globex
):
    assert commands.create_workflow(globex, None, "Triage").workspace == globex  # another one's

    as_alice.post(url("workflow-duplicate", workflow))
    as_alice.post(url("workflow-duplicate", workflow))

    names = sorted(Workflow.objects.filter(workspace=acme).values_list("name", flat=True))
    assert names == ["Copy of Triage", "Copy of Triage (2)", "Triage"]


# --- permissions and CSRF ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("workflow-draft", "post"),
        ("workflow-publish", "post"),
        ("workflow-rename", "post"),
        ("workflow-duplicate", "post"),
        ("workflow-archive", "post"),
        ("workflow-run", "get"),
    ],
)
def test_a_viewer_cannot_change_or_run_workflows(as_viewer, workflow, name, method):
    response = getattr(as_viewer, method)(url(name, workflow), {"name": "x", "revision": "0"})

    assert response.status_code == 403
    workflow.refresh_from_db()
    assert workflow.name == "Triage"
    assert workflow.draft_revision == 0


def test_a_viewer_cannot_create_import_or_restore(as_viewer, workflow, alice):
    commands.publish_draft(workflow, 0, alice)

    assert (
        as_viewer.post(reverse("workflow-create", args=["acme"]), {"name": "x"}).status_code == 403
    )
    assert (
        as_viewer.post(reverse("workflow-import", args=["acme"]), {"text": "{}"}).status_code == 403
    )
    assert as_viewer.post(url("workflow-restore", workflow, 1)).status_code == 403


def test_a_viewer_sees_the_builder_read_only(as_viewer, workflow):
    response = as_viewer.get(url("workflow-builder", workflow))

    assert response.status_code == 200
    assert response.context["builder_data"]["readOnly"] is True
    assert b'class="palette"' not in response.content
    assert b'data-action="publish"' not in response.content


def test_an_editor_can_edit_publish_and_run(as_editor, workflow):
    assert save(as_editor, workflow, valid_definition(), 0).status_code == 200
    assert as_editor.post(url("workflow-publish", workflow), {"revision": 1}).status_code == 200
    assert as_editor.get(url("workflow-run", workflow)).status_code == 200


def test_posts_need_the_csrf_token(alice, workflow):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    assert save(client, workflow, valid_definition(), 0).status_code == 403
    assert client.post(url("workflow-publish", workflow), {"revision": 0}).status_code == 403
    assert client.post(reverse("workflow-create", args=["acme"]), {"name": "x"}).status_code == 403

    token = client.get(url("workflow-builder", workflow)).context["csrf_token"]
    response = client.post(
        url("workflow-draft", workflow),
        json.dumps({"definition": valid_definition(), "revision": 0}),
        content_type="application/json",
        headers={"X-CSRFToken": str(token)},
    )
    assert response.status_code == 200


# --- the builder and the draft -------------------------------------------------------------


def test_the_builder_embeds_the_draft_kinds_and_problems(as_alice, workflow):
    response = as_alice.get(url("workflow-builder", workflow))

    data = response.context["builder_data"]
    assert data["revision"] == 0
    assert data["definition"]["steps"][1]["id"] == "route"
    assert data["ports"]["route"] == ["urgent", "normal"]
    assert data["issues"] == []
    assert {"transform", "branch", "approval", "llm", "http", "delay"} <= {
        k["name"] for k in data["kinds"]
    }
    assert b'id="builder-data" type="application/json"' in response.content


def test_step_names_with_html_are_escaped_in_the_builder(as_alice, acme, alice):
    definition = valid_definition()
    definition["steps"][0]["name"] = XSS
    workflow = commands.create_workflow(acme, alice, XSS, definition)

    content = as_alice.get(url("workflow-builder", workflow)).content.decode()

    assert "<script>alert" not in content
    assert "<img src=x" not in content


def test_a_save_returns_the_next_revision_problems_and_ports(as_alice, workflow):
    definition = valid_definition()
    definition["steps"][1]["config"]["conditions"].append({"port": "spam", "when": ""})

    response = save(as_alice, workflow, definition, 0)

    assert response.status_code == 200
    body = response.json()
    assert body["revision"] == 1
    assert body["ports"]["route"] == ["urgent", "spam", "normal"]
    assert [i["path"] for i in body["issues"]] == ["steps[1].config.conditions[1].when"]
    assert body["issues"][0]["step_id"] == "route"
    workflow.refresh_from_db()
    assert workflow.draft == definition  # saved, problems and all
    assert workflow.draft_revision == 1


def test_a_save_based_on_a_stale_revision_is_refused(as_alice, as_editor, workflow):
    assert save(as_editor, workflow, valid_definition() | {"layout": {}}, 0).status_code == 200

    response = save(as_alice, workflow, chain(2), 0)

    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "conflict"
    assert body["revision"] == 1
    assert body["updatedBy"] == "eddie"
    assert "eddie changed this draft" in body["message"]
    workflow.refresh_from_db()
    assert workflow.draft["layout"] == {}


def test_a_save_from_a_closing_tab_arrives_as_a_form(as_alice, workflow):
    response = as_alice.post(
        url("workflow-draft", workflow),
        {"definition": json.dumps(chain(2)), "revision": "0"},
    )

    assert response.status_code == 200
    workflow.refresh_from_db()
    assert workflow.draft == chain(2)


@pytest.mark.parametrize(
    "body",
    ["not json", json.dumps([1, 2]), json.dumps({"definition": [], "revision": 0}), "{}"],
)
def test_a_malformed_save_is_refused_and_changes_nothing(as_alice, workflow, body):
    response = as_alice.post(url("workflow-draft", workflow), body, content_type="application/json")

    assert response.status_code == 400
    workflow.refresh_from_db()
    assert workflow.draft_revision == 0


def test_the_panel_renders_a_form_from_the_kinds_schema(as_alice, workflow):
    definition = valid_definition()
    definition["steps"][0]["name"] = XSS
    response = as_alice.post(
        url("workflow-panel", workflow), {"definition": json.dumps(definition), "step": "escalate"}
    )

    content = response.content.decode()
    assert response.status_code == 200
    assert 'data-path="config.output"' in content
    assert 'data-path="retry.maximum_attempts"' in content
    assert 'data-path="timeout_seconds"' in content
    assert "{{ input.ticket }}" in content  # a run input field to use
    assert "{{ steps.read.output }}" in content  # an upstream step
    assert "{{ steps.route.output }}" in content
    assert "<script>alert" not in content


def test_the_panel_offers_the_workspaces_secrets_to_http_steps_only(
    as_alice, workflow, acme, alice
):
    from vectorbea.keys import vault

    vault.set_secret(acme, "GITHUB_TOKEN", "ghp_panel-secret-value-0123456789", alice)
    definition = valid_definition()
    definition["steps"].append(
        {"id": "call", "kind": "http", "name": "Call", "config": {"url": "https://x.test/"}}
    )
    panels = {
        step: as_alice.post(
            url("workflow-panel", workflow), {"definition": json.dumps(definition), "step": step}
        ).content.decode()
        for step in ("call", "escalate")
    }
    assert "{{ secrets.GITHUB_TOKEN }}" in panels["call"]
    assert "Secret “GITHUB_TOKEN” (in url or headers only)" in panels["call"]
    assert "secrets.GITHUB_TOKEN" not in panels["escalate"]
    assert "ghp_panel-secret-value" not in panels["call"]


def test_the_panel_sets_what_happens_when_a_step_cannot_succeed(as_alice, workflow):
    definition = valid_definition()
    definition["steps"][0].update(on_failure="fail", max_corrections=1, allow_skip=True)
    response = as_alice.post(
        url("workflow-panel", workflow),
        {"definition": json.dumps(definition), "step": definition["steps"][0]["id"]},
    )

    content = response.content.decode()
    assert 'data-path="on_failure"' in content and '<option value="fail" selected>' in content
    assert 'data-path="max_corrections"' in content and 'value="1"' in content
    assert 'data-path="allow_skip" checked' in content
    assert "Ask a person (needs attention)" in content


def test_the_branch_panel_has_a_row_per_condition(as_alice, workflow):
    response = as_alice.post(
        url("workflow-panel", workflow),
        {"definition": json.dumps(valid_definition()), "step": "route"},
    )

    content = response.content.decode()
    assert 'data-path="config.conditions" data-type="rows"' in content
    assert 'data-field="config.conditions[0].port"' in content
    assert 'value="urgent"' in content
    assert 'data-path="config.mode"' in content  # an enum, as a select


def test_the_panel_without_a_step_edits_the_run_input(as_alice, workflow):
    response = as_alice.post(
        url("workflow-panel", workflow), {"definition": json.dumps(valid_definition())}
    )

    content = response.content.decode()
    assert 'data-panel="input"' in content
    assert 'value="ticket"' in content
    assert 'value="The ticket text"' in content


# --- publish and versions ------------------------------------------------------------------


def test_publish_creates_an_immutable_version(as_alice, workflow, alice):
    response = as_alice.post(url("workflow-publish", workflow), {"revision": 0})

    assert response.status_code == 200
    assert response.json()["number"] == 1
    version = WorkflowVersion.objects.get(workflow=workflow)
    assert version.created_by == alice
    assert version.definition == valid_definition()
    with pytest.raises(IntegrityError), transaction.atomic():
        WorkflowVersion.objects.filter(pk=version.pk).update(definition={})


def test_publish_is_refused_while_the_draft_has_problems(as_alice, workflow):
    broken = valid_definition()
    broken["edges"].append({"source": "escalate", "target": "read", "port": None})
    save(as_alice, workflow, broken, 0)

    response = as_alice.post(url("workflow-publish", workflow), {"revision": 1})

    assert response.status_code == 400
    body = response.json()
    assert body["message"] == f"Fix {len(body['issues'])} problems before publishing."
    assert "Steps read → route → escalate → read form a cycle." in [
        i["message"] for i in body["issues"]
    ]
    assert not WorkflowVersion.objects.exists()


def test_publish_is_refused_for_a_stale_revision_or_no_change(as_alice, workflow):
    assert as_alice.post(url("workflow-publish", workflow), {"revision": 5}).status_code == 409
    assert as_alice.post(url("workflow-publish", workflow), {"revision": 0}).status_code == 200

    again = as_alice.post(url("workflow-publish", workflow), {"revision": 0})

    assert again.status_code == 400
    assert "same as v1" in again.json()["message"]


def test_history_lists_versions_with_author_and_a_readable_diff(as_alice, workflow, alice):
    commands.publish_draft(workflow, 0, alice)
    changed = valid_definition()
    changed["steps"][2]["name"] = XSS
    changed["steps"][2]["config"]["output"] = "done"
    changed["steps"].append(transform("notify"))
    changed["steps"] = [s for s in changed["steps"] if s["id"] != "read"]
    changed["edges"] = [
        {"source": "route", "target": "escalate", "port": "urgent"},
        {"source": "escalate", "target": "notify", "port": None},
    ]
    changed["steps"][1]["config"]["output"] = "{{ input.ticket }}"
    commands.save_draft(workflow, changed, 0, alice)
    commands.publish_draft(workflow, 1, alice)

    response = as_alice.get(url("workflow-versions", workflow))

    content = response.content.decode()
    texts = [c.text for c in response.context["entries"][0]["changes"]]
    assert "Added step “notify” (transform)" in texts
    assert "Removed step “read” (transform)" in texts
    assert any(t.startswith("Renamed step “escalate” to") for t in texts)
    changes = response.context["entries"][0]["changes"]
    output = next(c for c in changes if c.text.endswith(": Output"))
    assert (output.old, output.new) == ("{{ steps.read.output }}", "{{ input.ticket }}")
    assert "Connected “route” → “escalate” (when urgent)" not in texts
    assert any(t.startswith("Connected") and "“notify”" in t for t in texts)
    assert any(t.startswith("Disconnected “read”") for t in texts)
    assert "Published by alice" in content
    assert "<script>alert" not in content
    assert "&lt;script&gt;" in content


def test_a_version_opens_read_only_and_can_be_restored(as_alice, workflow, alice):
    commands.publish_draft(workflow, 0, alice)
    commands.save_draft(workflow, chain(2), 0, alice)

    page = as_alice.get(url("workflow-version", workflow, 1))
    assert page.status_code == 200
    assert page.context["builder_data"]["readOnly"] is True
    assert page.context["builder_data"]["definition"] == valid_definition()

    response = as_alice.post(url("workflow-restore", workflow, 1))

    assert response["Location"] == url("workflow-builder", workflow)
    workflow.refresh_from_db()
    assert workflow.draft == valid_definition()
    assert workflow.draft_revision == 2
    assert as_alice.get(url("workflow-version", workflow, 7)).status_code == 404


# --- import and export ---------------------------------------------------------------------


def test_export_then_import_round_trips(as_alice, workflow, acme):
    exported = as_alice.get(url("workflow-export", workflow))
    assert exported["Content-Disposition"] == 'attachment; filename="triage-draft.json"'

    refused = as_alice.post(
        reverse("workflow-import", args=["acme"]), {"text": exported.content.decode()}
    )  # "Triage" is taken: the import needs a name of its own
    assert refused.status_code == 400
    assert "Acme already has a workflow named “Triage”" in refused.content.decode()
    assert Workflow.objects.filter(workspace=acme).count() == 1

    response = as_alice.post(
        reverse("workflow-import", args=["acme"]),
        {"text": exported.content.decode(), "name": "Triage, imported"},
    )

    imported = Workflow.objects.exclude(pk=workflow.pk).get(workspace=acme)
    assert response["Location"] == url("workflow-builder", imported)
    assert imported.name == "Triage, imported"
    assert imported.draft == valid_definition()


def test_import_accepts_an_uploaded_file(as_alice, acme):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("flow.json", json.dumps(chain(3)).encode())
    as_alice.post(reverse("workflow-import", args=["acme"]), {"file": upload, "name": "Three"})

    assert Workflow.objects.get(workspace=acme).name == "Three"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"steps": [', "The file is not valid JSON: expecting value at line 1, column 12."),
        ("[1, 2]", "The file must hold a JSON object"),
        (
            json.dumps({"definition": {"steps": [{"id": "a", "kind": "teleport"}]}}),
            "definition.steps[0].kind Step &#x27;a&#x27; has an unknown kind &#x27;teleport&#x27;",
        ),
        (
            json.dumps(
                {
                    "steps": [transform("a"), transform("b")],
                    "edges": [{"source": "a", "target": "b"}, {"source": "b", "target": "a"}],
                }
            ),
            "Steps a → b → a form a cycle.",
        ),
        (
            json.dumps({"steps": [transform("a")], "edges": [{"source": "a", "target": "ghost"}]}),
            "edges[0].target</code> Edge 0 points to a step &#x27;ghost&#x27; that does not exist.",
        ),
        (
            json.dumps({"steps": [transform(f"s{i}") for i in range(500)]}),
            "This workflow has 500 steps; a workflow can have at most 250.",
        ),
    ],
)
def test_a_bad_import_names_each_problem_and_saves_nothing(as_alice, acme, text, expected):
    response = as_alice.post(reverse("workflow-import", args=["acme"]), {"text": text})

    assert response.status_code == 400
    content = response.content.decode().replace("<code>", "").replace("</code>", "")
    assert expected.replace("</code>", "") in " ".join(content.split())
    assert not Workflow.objects.filter(workspace=acme).exists()


@pytest.mark.parametrize("char", ["\\u0000", "\\ud800", "\\udc00"])
@pytest.mark.parametrize(
    ("where", "path"),
    [
        ("step name", "definition.steps[0].name"),
        ("step config", "definition.steps[0].config.output"),
        ("workflow name", "name"),
    ],
)
def test_an_import_holding_text_postgres_cannot_store_is_refused_and_saves_nothing(
    as_alice, acme, char, where, path
):
    document = commands.export_document("Triage", valid_definition())
    step = document["definition"]["steps"][0]
    if where == "step name":
        step["name"] = "MARKER"
    elif where == "step config":
        step["config"]["output"] = "MARKER"
    else:
        document["name"] = "MARKER"
    text = json.dumps(document).replace("MARKER", f"a{char}b")

    response = as_alice.post(reverse("workflow-import", args=["acme"]), {"text": text})

    assert response.status_code == 400
    what = "a NUL character" if char == "\\u0000" else "an unpaired surrogate"
    assert f"The file contains {what}" in response.content.decode()
    assert f" at {path}, which cannot be stored." in response.content.decode()
    assert not Workflow.objects.filter(workspace=acme).exists()


@pytest.mark.parametrize("depth", [65, 10_000, 100_000])
def test_an_import_nested_past_the_limit_says_so_in_plain_words(as_alice, acme, depth):
    text = '{"definition": {"steps": ' + "[" * depth + "]" * depth + "}}"

    response = as_alice.post(reverse("workflow-import", args=["acme"]), {"text": text})

    assert response.status_code == 400
    page = response.content.decode()
    assert "The file is nested more than 64 levels deep; the limit is 64 levels." in page
    assert "recursion" not in page
    assert not Workflow.objects.filter(workspace=acme).exists()


def test_an_import_whose_step_name_is_too_long_is_refused(as_alice, acme):
    definition = valid_definition()
    definition["steps"][0]["name"] = "x" * 1_900_000
    text = json.dumps(commands.export_document("Triage", definition))

    response = as_alice.post(reverse("workflow-import", args=["acme"]), {"text": text})

    assert response.status_code == 400
    assert (
        "The name of step &#x27;read&#x27; is 1,900,000 characters long; a step&#x27;s name "
        "can have at most 200 characters."
    ) in response.content.decode()
    assert not Workflow.objects.filter(workspace=acme).exists()


def test_an_import_whose_workflow_name_is_too_long_is_refused(as_alice, acme):
    text = json.dumps(commands.export_document("n" * 121, valid_definition()))

    response = as_alice.post(reverse("workflow-import", args=["acme"]), {"text": text})

    assert response.status_code == 400
    assert (
        "The workflow&#x27;s name is 121 characters long; a name can have at most 120 characters."
    ) in response.content.decode()
    assert not Workflow.objects.filter(workspace=acme).exists()


def test_a_step_name_too_long_is_saved_as_a_problem_and_stops_publishing(as_alice, workflow):
    definition = valid_definition()
    definition["steps"][1]["name"] = "R" * 201

    saved = save(as_alice, workflow, definition, 0)

    assert saved.status_code == 200
    message = "R" * 59 + "… → Step name: shorten it to 200 characters at most"
    assert {"path": "steps[1].name", "message": message} in [
        {"path": issue["path"], "message": issue["message"]} for issue in saved.json()["issues"]
    ]
    published = as_alice.post(url("workflow-publish", workflow), {"revision": 1})
    assert published.status_code == 400
    assert message in [issue["message"] for issue in published.json()["issues"]]
    assert not WorkflowVersion.objects.exists()


def test_the_step_name_field_takes_no_more_than_a_name_may_hold(as_alice, workflow):
    response = as_alice.post(
        url("workflow-panel", workflow),
        {"definition": json.dumps(workflow.draft), "step": "read"},
    )

    assert 'data-path="name" data-type="string" maxlength="200"' in response.content.decode()


def test_a_500_step_import_is_refused_quickly(as_alice, acme):
    import time

    text = json.dumps(chain(500))
    started = time.perf_counter()
    response = as_alice.post(reverse("workflow-import", args=["acme"]), {"text": text})

    assert response.status_code == 400
    assert time.perf_counter() - started < 2
    assert b"at most 250" in response.content


# --- starting a run ------------------------------------------------------------------------


def test_the_run_form_is_built_from_the_input_schema(as_alice, workflow, alice):
    commands.publish_draft(workflow, 0, alice)

    response = as_alice.get(url("workflow-run", workflow))

    content = response.content.decode()
    assert "The ticket text" in content
    assert 'name="input_0"' in content
    assert "v1" in content


def test_the_run_form_shows_errors_by_field(as_alice, workflow, alice):
    definition = valid_definition()
    definition["input_schema"]["properties"]["count"] = {"type": "integer", "minimum": 1}
    commands.save_draft(workflow, definition, 0, alice)
    commands.publish_draft(workflow, 1, alice)
    form = as_alice.get(url("workflow-run", workflow)).context["form"]
    field = {name: key for key, name in form.input_names.items()}

    response = as_alice.post(
        url("workflow-run", workflow),
        {field["ticket"]: "", field["count"]: "0", "idempotency_key": "k1"},
    )

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert errors[field["ticket"]] == ["This field is required."]
    assert errors[field["count"]] == ["Enter 1 or more."]
    assert not Run.objects.exists()


def test_the_run_form_starts_a_run_once_and_opens_it(as_alice, workflow, alice):
    commands.publish_draft(workflow, 0, alice)
    data = {"input_0": "urgent: printer on fire", "idempotency_key": "abc123"}

    first = as_alice.post(url("workflow-run", workflow), data)
    second = as_alice.post(url("workflow-run", workflow), data)  # a double submit

    run = Run.objects.get()
    assert first["Location"] == reverse("run-detail", args=["acme", run.id])
    assert second["Location"] == first["Location"]
    assert run.started_by == alice
    assert run.version.number == 1


def test_the_run_form_says_when_nothing_is_published(as_alice, workflow):
    response = as_alice.get(url("workflow-run", workflow))

    assert response.status_code == 409
    assert b"has no published version" in response.content


# --- examples ------------------------------------------------------------------------------


def test_the_examples_are_valid_and_install_once(acme, alice):
    from vectorbea.workflows.checks import draft_issues
    from vectorbea.workflows.examples import EXAMPLES, install_examples

    for name, definition in EXAMPLES.items():
        assert draft_issues(definition) == [], name

    first = install_examples(acme, alice)
    again = install_examples(acme, alice)

    assert [w.pk for w in first] == [w.pk for w in again]
    assert Workflow.objects.filter(workspace=acme).count() == len(EXAMPLES)
    assert WorkflowVersion.objects.filter(workflow__workspace=acme).count() == len(EXAMPLES)


def test_the_run_form_keeps_the_builders_field_order(as_alice, workflow, alice):
    definition = valid_definition()
    definition["input_schema"] = {
        "type": "object",
        "properties": {"zebra_crossing": TEXT_FIELD, "ant": TEXT_FIELD, "moth": TEXT_FIELD},
        "x-order": ["zebra_crossing", "ant", "moth"],
    }
    definition["steps"][0]["config"]["output"] = "{{ input.ant }}"
    commands.save_draft(workflow, definition, 0, alice)  # jsonb sorts the keys its own way
    commands.publish_draft(workflow, 1, alice)

    form = as_alice.get(url("workflow-run", workflow)).context["form"]

    assert list(form.input_names.values()) == ["zebra_crossing", "ant", "moth"]


def test_a_draft_nested_too_deep_is_refused(as_alice, workflow):
    deep: dict = {}
    for _ in range(100):
        deep = {"x": deep}
    definition = valid_definition()
    definition["steps"][0]["config"]["output"] = deep

    response = save(as_alice, workflow, definition, 0)

    assert response.status_code == 400
    assert "nested more than 64 levels" in response.json()["message"]


def test_saves_say_whether_the_draft_differs_from_the_published_version(as_alice, workflow, alice):
    commands.publish_draft(workflow, 0, alice)

    changed = save(as_alice, workflow, chain(2), 0).json()
    back = save(as_alice, workflow, valid_definition(), 1).json()

    assert changed["unpublished"] is True
    assert back["unpublished"] is False
    save(as_alice, workflow, chain(2), 2)
    assert b"changes that are not published" in as_alice.get(url("workflow-run", workflow)).content


def test_the_list_names_a_last_runs_status_in_words(as_alice, acme, alice):
    workflow = publish(acme, chain(1), name="Nightly")
    run = start_run(workflow, {}, started_by=alice)
    record(run.id, StepFailed("s0", 1, "permanent", "401 Unauthorized"))

    html = as_alice.get(reverse("workflows", args=["acme"])).content.decode()

    assert 'data-status="needs_attention"' in html
    assert "Needs attention</span>" in html
    assert "Needs_attention" not in html
