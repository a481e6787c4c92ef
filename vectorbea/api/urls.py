from django.urls import path, re_path

from vectorbea.api import endpoints, views

urlpatterns = [
    path("w/<slug:ws>/settings/api-tokens/", views.api_tokens, name="api-tokens"),
    path(
        "w/<slug:ws>/settings/api-tokens/<uuid:token_id>/revoke/",
        views.api_token_revoke,
        name="api-token-revoke",
    ),
    path("api/", endpoints.api.urls),
    re_path(r"^api/", endpoints.not_found, name="api-not-found"),
]
