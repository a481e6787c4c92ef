from django.urls import path

from vectorbea.front import views as placeholder
from vectorbea.runs import views

urlpatterns = [
    path("w/<slug:ws>/runs/", placeholder.runs, name="runs"),
    path("w/<slug:ws>/runs/<uuid:run_id>/", views.run_detail, name="run-detail"),
]
