from django.urls import path

from vectorbea.front import views

urlpatterns = [
    path("", views.home, name="home"),
    path("w/<slug:ws>/", views.workspace_home, name="workspace"),
]
