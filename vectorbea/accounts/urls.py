from django.contrib.auth import views as auth_views
from django.urls import path

from vectorbea.accounts import views
from vectorbea.accounts.forms import LoginForm

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(
            authentication_form=LoginForm, redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),  # POST only
    path(
        "account/password/",
        auth_views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "account/password/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("workspaces/new/", views.workspace_create, name="workspace-create"),
    path("w/<slug:ws>/settings/", views.workspace_settings, name="workspace-settings"),
    path("w/<slug:ws>/settings/members/", views.members, name="members"),
    path(
        "w/<slug:ws>/settings/members/<int:member_id>/role/",
        views.member_role,
        name="member-role",
    ),
    path(
        "w/<slug:ws>/settings/members/<int:member_id>/remove/",
        views.member_remove,
        name="member-remove",
    ),
]
