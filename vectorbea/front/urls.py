from django.urls import path

from vectorbea.front import health, views

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", views.home, name="home"),
    path("w/<slug:ws>/", views.workspace_home, name="workspace"),
    path("w/<slug:ws>/operations/", views.operations_page, name="operations"),
    path("w/<slug:ws>/operations/redrive/", views.operations_redrive, name="operations-redrive"),
]
