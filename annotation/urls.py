from django.urls import path

from annotation import views

app_name = "annotation"
urlpatterns = [
    path("", views.queue, name="queue"),
    path("next/", views.start_next, name="start_next"),
    path("<int:assignment_id>/", views.assignment_open, name="assignment"),
    path("<int:assignment_id>/steps/<int:index>/", views.step_view, name="step"),
    path("<int:assignment_id>/steps/<int:index>/save/", views.step_save, name="step_save"),
    path("<int:assignment_id>/steps/<int:index>/accept/<int:finding_id>/", views.suggestion_accept, name="accept"),
    path("<int:assignment_id>/verdict/", views.verdict_view, name="verdict"),
    path("<int:assignment_id>/verdict/save/", views.verdict_save, name="verdict_save"),
    path("<int:assignment_id>/submit/", views.submit, name="submit"),
    path("<int:assignment_id>/skip/", views.skip, name="skip"),
    path("gold/<int:trajectory_id>/", views.gold_create, name="gold_create"),
]
