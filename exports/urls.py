from django.urls import path

from exports import views

app_name = "exports"
urlpatterns = [
    path("", views.batch_list, name="batches"),
    path("<int:batch_id>/", views.batch_detail, name="batch"),
    path("<int:batch_id>/exports/", views.export_create, name="export_create"),
    path("<int:batch_id>/exports/<int:job_id>/", views.export_detail, name="export"),
    path("<int:batch_id>/exports/<int:job_id>/files/<str:name>", views.export_download, name="export_file"),
]
