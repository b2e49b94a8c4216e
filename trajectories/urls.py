from django.urls import path

app_name = "trajectories"
urlpatterns: list = []
