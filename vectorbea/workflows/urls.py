from django.urls import path

from vectorbea.front import views as placeholder

urlpatterns = [
    path("w/<slug:ws>/workflows/", placeholder.workflows, name="workflows"),
]
