from django.urls import path

from vectorbea.front import views

urlpatterns = [
    path("", views.home, name="home"),
    path("w/<slug:ws>/", views.workspace_home, name="workspace"),
    # Placeholders until the workflows, runs and approvals apps take these over.
    path("w/<slug:ws>/workflows/", views.workflows, name="workflows"),
    path("w/<slug:ws>/runs/", views.runs, name="runs"),
    path("w/<slug:ws>/inbox/", views.inbox, name="inbox"),
]
