from django.urls import path

from trajectories import views

app_name = "trajectories"
urlpatterns = [
    path("", views.project_overview, name="project_overview"),
    path("trajectories/", views.trajectory_list, name="trajectory_list"),
    path("trajectories/<int:trajectory_id>/", views.trajectory_detail, name="trajectory_detail"),
    path("imports/", views.import_upload, name="import_upload"),
    path("imports/<int:job_id>/", views.import_detail, name="import_detail"),
]
