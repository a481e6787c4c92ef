from django.urls import path

from vectorbea.keys import views

urlpatterns = [
    path("w/<slug:ws>/settings/keys/", views.provider_keys, name="provider-keys"),
    path(
        "w/<slug:ws>/settings/keys/policy/",
        views.provider_key_policy,
        name="provider-key-policy",
    ),
    path(
        "w/<slug:ws>/settings/keys/<uuid:key_id>/revoke/",
        views.provider_key_revoke,
        name="provider-key-revoke",
    ),
    path(
        "w/<slug:ws>/settings/keys/servers/",
        views.compatible_provider_save,
        name="compatible-provider-save",
    ),
    path(
        "w/<slug:ws>/settings/keys/servers/<uuid:provider_id>/delete/",
        views.compatible_provider_delete,
        name="compatible-provider-delete",
    ),
    path("w/<slug:ws>/settings/keys/default/", views.provider_default, name="provider-default"),
    path("w/<slug:ws>/settings/keys/test/", views.provider_test, name="provider-test"),
    path("w/<slug:ws>/settings/secrets/", views.workspace_secrets, name="workspace-secrets"),
    path(
        "w/<slug:ws>/settings/secrets/<uuid:secret_id>/delete/",
        views.workspace_secret_delete,
        name="workspace-secret-delete",
    ),
]
