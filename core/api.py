"""REST API for projects. The same selectors and services as the pages: an outsider gets 404."""

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from core.http import api_validation_error
from core.selectors import (
    MANAGE_ROLES,
    check_project_create,
    check_role,
    project_get_for_user,
    project_list_for_user,
    project_role_for_user,
)
from core.serializers import ProjectCreateSerializer, ProjectSerializer, ProjectUpdateSerializer
from core.services import project_create_managed, project_update


@extend_schema(methods=["GET"], responses=ProjectSerializer(many=True))
@extend_schema(
    methods=["POST"],
    request=ProjectCreateSerializer,
    responses={201: ProjectSerializer},
    description="Staff, or holders of the core.add_project permission; the creator becomes project manager.",
)
@login_not_required
@api_view(["GET", "POST"])
def project_list(request: Request) -> Response:
    if request.method == "POST":
        check_project_create(user=request.user)
        serializer = ProjectCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            project = project_create_managed(actor=request.user, **serializer.validated_data)
        except ValidationError as exc:
            raise api_validation_error(exc) from exc
        return Response(ProjectSerializer(project, context={"roles": {project.pk: "project_manager"}}).data, 201)
    projects = list(project_list_for_user(user=request.user).order_by("name"))
    roles = {p.pk: project_role_for_user(user=request.user, project=p) for p in projects}
    return Response(ProjectSerializer(projects, many=True, context={"roles": roles}).data)


@extend_schema(methods=["GET"], responses=ProjectSerializer)
@extend_schema(
    methods=["PATCH"],
    request=ProjectUpdateSerializer,
    responses=ProjectSerializer,
    description="Project managers change settings; changed guidelines bump guideline_version.",
)
@login_not_required
@api_view(["GET", "PATCH"])
def project_detail(request: Request, project_slug: str) -> Response:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    if request.method == "PATCH":
        check_role(role=role, allowed=MANAGE_ROLES)
        serializer = ProjectUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        try:
            project_update(actor=request.user, project=project, changes=dict(serializer.validated_data))
        except ValidationError as exc:
            raise api_validation_error(exc) from exc
    return Response(ProjectSerializer(project, context={"roles": {project.pk: role}}).data)
