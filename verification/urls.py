from django.urls import path

from verification import views

app_name = "verification"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("verify/", views.verify_request, name="verify_request"),
    path("config/", views.config, name="config"),
    path("trajectories/<int:trajectory_id>/", views.trajectory_evidence_view, name="trajectory_evidence"),
]
