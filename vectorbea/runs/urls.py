from django.urls import path

from vectorbea.runs import views

urlpatterns = [
    path("w/<slug:ws>/runs/", views.runs, name="runs"),
    path("w/<slug:ws>/runs/bulk/", views.runs_bulk, name="runs-bulk"),
    path(
        "w/<slug:ws>/runs/attention-count/",
        views.runs_attention_count,
        name="runs-attention-count",
    ),
    path("w/<slug:ws>/runs/<uuid:run_id>/", views.run_detail, name="run-detail"),
    path("w/<slug:ws>/runs/<uuid:run_id>/events/", views.run_events, name="run-events"),
    path("w/<slug:ws>/runs/<uuid:run_id>/step/", views.run_step, name="run-step"),
    path("w/<slug:ws>/runs/<uuid:run_id>/as-of/", views.run_as_of, name="run-as-of"),
    path("w/<slug:ws>/runs/<uuid:run_id>/cancel/", views.run_cancel, name="run-cancel"),
    path("w/<slug:ws>/runs/<uuid:run_id>/pause/", views.run_pause, name="run-pause"),
    path("w/<slug:ws>/runs/<uuid:run_id>/resume/", views.run_resume, name="run-resume"),
    path("w/<slug:ws>/runs/<uuid:run_id>/retry/", views.run_retry, name="run-retry"),
    # A person's answers to a step that needs attention: one view, one URL per answer.
    *(
        path(
            f"w/<slug:ws>/runs/<uuid:run_id>/attention/{action.replace('_', '-')}/",
            views.run_resolve,
            {"action": action},
            name=f"run-attention-{action.replace('_', '-')}",
        )
        for action in ("retry", "supply_output", "skip", "fail")
    ),
]
