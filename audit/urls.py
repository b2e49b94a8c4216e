from django.urls import path

from audit import quality, views

app_name = "audit"
urlpatterns = [
    path("escalations/", views.escalation_list, name="escalations"),
    path("escalations/<int:escalation_id>/", views.escalation_view, name="escalation"),
    path("escalations/<int:escalation_id>/reassign/", views.escalation_reassign_view, name="escalation_reassign"),
    path("p/<slug:project_slug>/audit/", quality.quality, name="quality"),
    path("p/<slug:project_slug>/audit/agreement.csv", quality.quality_csv, name="quality_csv"),
    path("p/<slug:project_slug>/audit/recompute/", quality.recompute, name="recompute"),
    path("p/<slug:project_slug>/audit/calibration/", quality.calibration, name="calibration"),
    path(
        "p/<slug:project_slug>/audit/calibration/<int:flag_id>/clear/",
        quality.calibration_clear,
        name="calibration_clear",
    ),
    path("p/<slug:project_slug>/audit/rules/", quality.rules_edit, name="rules"),
    path("p/<slug:project_slug>/audit/backlog/", views.backlog, name="backlog"),
    path("p/<slug:project_slug>/audit/reviews/", views.review_list, name="reviews"),
    path("p/<slug:project_slug>/audit/reviews/<int:review_id>/", views.review_view, name="review"),
    path("p/<slug:project_slug>/audit/feedback/", views.feedback, name="feedback"),
]
