from django.urls import path

from vectorbea.approvals import views

urlpatterns = [
    path("w/<slug:ws>/inbox/", views.inbox, name="inbox"),
    path("w/<slug:ws>/inbox/count/", views.inbox_count, name="inbox-count"),
    path("w/<slug:ws>/inbox/audit/", views.audit_export, name="approvals-audit"),
    path("w/<slug:ws>/inbox/<uuid:run_id>/<slug:step_id>/", views.gate_detail, name="gate"),
    path(
        "w/<slug:ws>/inbox/<uuid:run_id>/<slug:step_id>/decide/",
        views.gate_decide,
        name="gate-decide",
    ),
    path(
        "w/<slug:ws>/inbox/<uuid:run_id>/<slug:step_id>/reassign/",
        views.gate_reassign,
        name="gate-reassign",
    ),
    path(
        "w/<slug:ws>/inbox/<uuid:run_id>/<slug:step_id>/escalate/",
        views.gate_escalate,
        name="gate-escalate",
    ),
]
