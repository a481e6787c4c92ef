from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("vectorbea.accounts.urls")),
    path("", include("vectorbea.front.urls")),
    path("", include("vectorbea.metrics.urls")),
    path("", include("vectorbea.workflows.urls")),
    path("", include("vectorbea.runs.urls")),
    path("", include("vectorbea.approvals.urls")),
    path("", include("vectorbea.keys.urls")),
    path("", include("vectorbea.budgets.urls")),
    path("", include("vectorbea.triggers.urls")),
    path("", include("vectorbea.api.urls")),
    path("admin/", admin.site.urls),
]

handler400 = "vectorbea.front.errors.bad_request"
