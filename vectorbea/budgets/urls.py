from django.urls import path

from vectorbea.budgets import views

LIMITS = "w/<slug:ws>/settings/limits/"

urlpatterns = [
    path(LIMITS, views.limits, name="limits"),
    path(
        LIMITS + "workflows/<uuid:workflow_id>/",
        views.workflow_limits,
        name="workflow-limits",
    ),
    path(LIMITS + "stop/", views.stop_everything, name="kill-switch-stop"),
    path(LIMITS + "allow/", views.allow_again, name="kill-switch-allow"),
    path(LIMITS + "resume/", views.resume_stopped, name="kill-switch-resume"),
    path("w/<slug:ws>/usage/", views.usage_page, name="usage"),
]
