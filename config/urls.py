from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from exports import views as exports_views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", include("config.api_urls")),
    path("", include("core.urls")),
    path("", include("audit.urls")),
    path("p/<slug:project_slug>/verification/", include("verification.urls")),
    path("p/<slug:project_slug>/work/", include("annotation.urls")),
    path("p/<slug:project_slug>/batches/", include("exports.urls")),
    path("p/<slug:project_slug>/reports/", exports_views.reports, name="reports"),
    path("p/<slug:project_slug>/", include("trajectories.urls")),
]
