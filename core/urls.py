from django.urls import path

from core import views

app_name = "core"
urlpatterns = [
    path("", views.project_list, name="project_list"),
    path("healthz", views.healthz, name="healthz"),
    path("account/api-token/", views.api_token, name="api_token"),
    path("projects/new/", views.project_new, name="project_new"),
    path("p/<slug:project_slug>/settings/", views.project_settings, name="project_settings"),
    path("p/<slug:project_slug>/guidelines/", views.project_guidelines, name="guidelines"),
    path("p/<slug:project_slug>/members/", views.member_list, name="member_list"),
    path("p/<slug:project_slug>/members/<int:membership_id>/remove", views.member_remove, name="member_remove"),
]
