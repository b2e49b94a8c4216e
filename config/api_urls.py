"""Everything under /api/. Each app keeps its API views in its own api.py."""

from django.contrib.auth.decorators import login_not_required
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from annotation import api as annotation_api
from audit import api as audit_api
from core import api as core_api
from exports import api as exports_api
from trajectories import api as trajectories_api

urlpatterns = [
    path("escalations/", audit_api.escalation_list, name="api-escalation-list"),
    path("escalations/<int:escalation_id>/", audit_api.escalation_get, name="api-escalation-detail"),
    path("escalations/<int:escalation_id>/resolve/", audit_api.escalation_resolve_view, name="api-escalation-resolve"),
    path("projects/<slug:project_slug>/agreement/", audit_api.agreement, name="api-agreement"),
    path("projects/<slug:project_slug>/batches/", exports_api.batch_list, name="api-batch-list"),
    path("projects/<slug:project_slug>/batches/<int:batch_id>/", exports_api.batch_detail, name="api-batch-detail"),
    path(
        "projects/<slug:project_slug>/batches/<int:batch_id>/exports/", exports_api.export_list, name="api-export-list"
    ),
    path(
        "projects/<slug:project_slug>/batches/<int:batch_id>/exports/<int:job_id>/",
        exports_api.export_detail,
        name="api-export-detail",
    ),
    path("schema/", login_not_required(SpectacularAPIView.as_view()), name="api-schema"),
    # interactive docs, public like the schema; the split view keeps its script out of the page (strict CSP)
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("projects/", core_api.project_list, name="api-project-list"),
    path("projects/<slug:project_slug>/", core_api.project_detail, name="api-project-detail"),
    path("projects/<slug:project_slug>/trajectories/", trajectories_api.trajectory_list, name="api-trajectory-list"),
    path(
        "projects/<slug:project_slug>/trajectories/<int:trajectory_id>/",
        trajectories_api.trajectory_detail,
        name="api-trajectory-detail",
    ),
    path(
        "projects/<slug:project_slug>/trajectories/<int:trajectory_id>/record/",
        trajectories_api.trajectory_record,
        name="api-trajectory-record",
    ),
    path(
        "projects/<slug:project_slug>/trajectories/<int:trajectory_id>/labels/",
        audit_api.trajectory_labels,
        name="api-trajectory-labels",
    ),
    path("projects/<slug:project_slug>/assignments/", annotation_api.assignment_list, name="api-assignment-list"),
    path(
        "projects/<slug:project_slug>/assignments/claim/", annotation_api.assignment_claim, name="api-assignment-claim"
    ),
    path(
        "projects/<slug:project_slug>/assignments/<int:assignment_id>/",
        annotation_api.assignment_detail,
        name="api-assignment-detail",
    ),
    path(
        "projects/<slug:project_slug>/assignments/<int:assignment_id>/labels/",
        annotation_api.assignment_labels_view,
        name="api-assignment-labels",
    ),
    path(
        "projects/<slug:project_slug>/assignments/<int:assignment_id>/submit/",
        annotation_api.assignment_submit_view,
        name="api-assignment-submit",
    ),
    path("projects/<slug:project_slug>/imports/", trajectories_api.import_list, name="api-import-list"),
    path(
        "projects/<slug:project_slug>/imports/<int:job_id>/", trajectories_api.import_detail, name="api-import-detail"
    ),
    path("projects/<slug:project_slug>/goals/", trajectories_api.goal_list, name="api-goal-list"),
    path("projects/<slug:project_slug>/goals/import/", trajectories_api.goal_import, name="api-goal-import"),
    path("projects/<slug:project_slug>/goals/<int:goal_id>/", trajectories_api.goal_detail, name="api-goal-detail"),
    path("projects/<slug:project_slug>/swe-tasks/", trajectories_api.swe_task_list, name="api-swe-task-list"),
    path(
        "projects/<slug:project_slug>/swe-tasks/import/", trajectories_api.swe_task_import, name="api-swe-task-import"
    ),
    path(
        "projects/<slug:project_slug>/swe-tasks/<int:task_id>/",
        trajectories_api.swe_task_detail,
        name="api-swe-task-detail",
    ),
    path(
        "projects/<slug:project_slug>/swe-tasks/<int:task_id>/override/",
        trajectories_api.swe_task_override_view,
        name="api-swe-task-override",
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
