from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from core.http import AuthenticatedHttpRequest, render_page
from core.selectors import project_list_for_user


@require_GET
def project_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    projects = project_list_for_user(user=request.user).order_by("name")
    return render_page(request, "core/project_list.html", {"projects": projects})


@login_not_required
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness and database reachability, for the container health check."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
