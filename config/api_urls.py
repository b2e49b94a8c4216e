"""Everything under /api/. Each app keeps its API views in its own api.py."""

from django.contrib.auth.decorators import login_not_required
from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from core import api as core_api
from trajectories import api as trajectories_api

urlpatterns = [
    path("schema/", login_not_required(SpectacularAPIView.as_view()), name="api-schema"),
    path("projects/", core_api.project_list, name="api-project-list"),
    path("projects/<slug:project_slug>/", core_api.project_detail, name="api-project-detail"),
    path("projects/<slug:project_slug>/trajectories/", trajectories_api.trajectory_list, name="api-trajectory-list"),
    path(
        "projects/<slug:project_slug>/trajectories/<int:trajectory_id>/",
        trajectories_api.trajectory_detail,
        name="api-trajectory-detail",
    ),
    path("projects/<slug:project_slug>/imports/", trajectories_api.import_list, name="api-import-list"),
    path(
        "projects/<slug:project_slug>/imports/<int:job_id>/", trajectories_api.import_detail, name="api-import-detail"
    ),
    path("projects/<slug:project_slug>/registries/", trajectories_api.registry_list, name="api-registry-list"),
    path(
        "projects/<slug:project_slug>/registries/<int:version>/",
        trajectories_api.registry_detail,
        name="api-registry-detail",
    ),
    path(
        "projects/<slug:project_slug>/registries/<int:version>/freeze/",
        trajectories_api.registry_freeze_view,
        name="api-registry-freeze",
    ),
]
