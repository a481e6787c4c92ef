from django.urls import path

from vectorbea.workflows import views

W = "w/<slug:ws>/workflows/"
ONE = W + "<uuid:workflow_id>/"

urlpatterns = [
    path(W, views.workflows, name="workflows"),
    path(W + "new/", views.workflow_create, name="workflow-create"),
    path(W + "import/", views.workflow_import, name="workflow-import"),
    path("w/<slug:ws>/tools/", views.tools, name="tools"),
    path(ONE, views.workflow_builder, name="workflow-builder"),
    path(ONE + "draft/", views.workflow_draft, name="workflow-draft"),
    path(ONE + "panel/", views.workflow_panel, name="workflow-panel"),
    path(ONE + "test-step/", views.workflow_test_step, name="workflow-test-step"),
    path(ONE + "publish/", views.workflow_publish, name="workflow-publish"),
    path(ONE + "rename/", views.workflow_rename, name="workflow-rename"),
    path(ONE + "duplicate/", views.workflow_duplicate, name="workflow-duplicate"),
    path(ONE + "archive/", views.workflow_archive, name="workflow-archive"),
    path(ONE + "export/", views.workflow_export, name="workflow-export"),
    path(ONE + "versions/", views.workflow_versions, name="workflow-versions"),
    path(ONE + "versions/<int:version_number>/", views.workflow_version, name="workflow-version"),
    path(
        ONE + "versions/<int:version_number>/restore/",
        views.workflow_restore,
        name="workflow-restore",
    ),
    path(ONE + "run/", views.workflow_run, name="workflow-run"),
]
