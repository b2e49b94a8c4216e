from django.urls import path

from exports import views

app_name = "exports"
urlpatterns = [
    path("", views.batch_list, name="batches"),
    path("<int:batch_id>/", views.batch_detail, name="batch"),
]
