from django.urls import path

from trajectories.views import goals, registries, runs

app_name = "trajectories"
urlpatterns = [
    path("", runs.project_overview, name="project_overview"),
    path("trajectories/", runs.trajectory_list, name="trajectory_list"),
    path("trajectories/<int:trajectory_id>/", runs.trajectory_detail, name="trajectory_detail"),
    path("trajectories/<int:trajectory_id>/record/", runs.trajectory_record, name="trajectory_record"),
    path("imports/", runs.import_upload, name="import_upload"),
    path("imports/<int:job_id>/", runs.import_detail, name="import_detail"),
    path("registries/", registries.registry_list, name="registry_list"),
    path("registries/upload/", registries.registry_upload, name="registry_upload"),
    path("registries/drift/", registries.registry_drift, name="registry_drift"),
    path("registries/<int:version>/", registries.registry_detail, name="registry_detail"),
    path("registries/<int:version>/tools.json", registries.registry_canonical, name="registry_canonical"),
    path("registries/<int:version>/freeze/", registries.registry_freeze_view, name="registry_freeze"),
    path("registries/<int:version>/new-version/", registries.registry_new_version_view, name="registry_new_version"),
    path("registries/<int:version>/tools/<int:tool_id>/edit/", registries.tool_edit, name="tool_edit"),
    path("goals/", goals.goal_list, name="goal_list"),
    path("goals/new/", goals.goal_create, name="goal_create"),
    path("goals/import/", goals.goal_import, name="goal_import"),
    path("goals/<int:goal_id>/edit/", goals.goal_edit, name="goal_edit"),
    path("balance/", goals.goal_balance_page, name="goal_balance"),
    path("swe-tasks/", goals.swe_task_list, name="swe_task_list"),
    path("swe-tasks/leak-lists/", goals.leak_list_upload, name="leak_list_upload"),
    path("swe-tasks/<int:task_id>/override/", goals.swe_task_override, name="swe_task_override"),
]
