from django.urls import path

from vectorbea.triggers import views

T = "w/<slug:ws>/workflows/<uuid:workflow_id>/triggers/"
HOOK = T + "webhooks/<uuid:endpoint_id>/"
SCHEDULE = T + "schedules/<uuid:schedule_id>/"

urlpatterns = [
    path("w/<slug:ws>/triggers/", views.workspace_triggers, name="triggers"),
    path(T, views.workflow_triggers, name="workflow-triggers"),
    path(T + "webhooks/", views.webhook_create, name="webhook-create"),
    path(HOOK + "toggle/", views.webhook_toggle, name="webhook-toggle"),
    path(HOOK + "delete/", views.webhook_delete, name="webhook-delete"),
    path(T + "schedules/", views.schedule_create, name="schedule-create"),
    path(T + "schedules/preview/", views.schedule_preview, name="schedule-preview"),
    path(SCHEDULE, views.schedule_edit, name="schedule-edit"),
    path(SCHEDULE + "toggle/", views.schedule_toggle, name="schedule-toggle"),
    path(SCHEDULE + "delete/", views.schedule_delete, name="schedule-delete"),
    # The one unauthenticated write: signed deliveries (see vectorbea/triggers/webhooks.py).
    path("hooks/<str:public_id>/", views.webhook_receive, name="webhook-receive"),
]
