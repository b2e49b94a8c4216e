"""REST API for projects. The same selectors as the pages: an outsider gets 404."""

from django.contrib.auth.decorators import login_not_required
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from core.selectors import project_get_for_user, project_list_for_user, project_role_for_user
from core.serializers import ProjectSerializer


@extend_schema(responses=ProjectSerializer(many=True))
@login_not_required
@api_view(["GET"])
def project_list(request: Request) -> Response:
    projects = list(project_list_for_user(user=request.user).order_by("name"))
    roles = {p.pk: project_role_for_user(user=request.user, project=p) for p in projects}
    return Response(ProjectSerializer(projects, many=True, context={"roles": roles}).data)


@extend_schema(responses=ProjectSerializer)
@login_not_required
@api_view(["GET"])
def project_detail(request: Request, project_slug: str) -> Response:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    return Response(ProjectSerializer(project, context={"roles": {project.pk: role}}).data)
