from django.urls import path

from trajectories.views import runs

app_name = "trajectories"
urlpatterns = [
    path("", runs.project_overview, name="project_overview"),
    path("trajectories/", runs.trajectory_list, name="trajectory_list"),
    path("trajectories/<int:trajectory_id>/", runs.trajectory_detail, name="trajectory_detail"),
    path("imports/", runs.import_upload, name="import_upload"),
    path("imports/<int:job_id>/", runs.import_detail, name="import_detail"),
]
