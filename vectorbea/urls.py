from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("vectorbea.accounts.urls")),
    path("", include("vectorbea.front.urls")),
    path("", include("vectorbea.runs.urls")),
    path("admin/", admin.site.urls),
]
