from django.urls import path

from vectorbea.metrics import views

urlpatterns = [
    path("metrics", views.metrics, name="metrics"),
]
