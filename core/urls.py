from django.urls import path

from core import views

app_name = "core"
urlpatterns = [
    path("", views.project_list, name="project_list"),
    path("healthz", views.healthz, name="healthz"),
]
