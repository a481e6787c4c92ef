from django.urls import path

from vectorbea.front import health, views

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", views.home, name="home"),
    path("w/<slug:ws>/", views.workspace_home, name="workspace"),
]
