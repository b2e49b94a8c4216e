"""REST API for runs and imports: the same selectors and services as the pages."""

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view, parser_classes
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from core.selectors import MANAGE_ROLES, REVIEW_ROLES, check_role, project_get_for_user
from trajectories.models import Step
from trajectories.selectors.registries import registry_get_for_user, registry_list_for_user
from trajectories.selectors.runs import (
    TrajectoryFilters,
    import_job_get_for_user,
    import_jobs_for_user,
    trajectory_get_for_user,
    trajectory_list_for_user,
)
from trajectories.serializers import (
    ImportJobSerializer,
    ImportUploadSerializer,
    RegistrySerializer,
    RegistryUploadSerializer,
    TrajectoryDetailSerializer,
    TrajectorySerializer,
)
from trajectories.services.imports import import_job_create
from trajectories.services.registries import RegistryImportError, registry_freeze, registry_import

FILTERS = [OpenApiParameter(name, str, required=False) for name in TrajectoryFilters.__dataclass_fields__]


@extend_schema(parameters=FILTERS, responses=TrajectorySerializer(many=True))
@login_not_required
@api_view(["GET"])
def trajectory_list(request: Request, project_slug: str) -> Response:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=REVIEW_ROLES)
    filters = TrajectoryFilters(
        **{k: request.query_params.get(k, "")[:200] for k in TrajectoryFilters.__dataclass_fields__}
    )
    qs = trajectory_list_for_user(user=request.user, project=project, role=role, filters=filters)
    paginator = PageNumberPagination()
    page = paginator.paginate_queryset(qs, request)
    return paginator.get_paginated_response(TrajectorySerializer(page, many=True).data)


@extend_schema(responses=TrajectoryDetailSerializer)
@login_not_required
@api_view(["GET"])
def trajectory_detail(request: Request, project_slug: str, trajectory_id: int) -> Response:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    trajectory = trajectory_get_for_user(user=request.user, project=project, role=role, trajectory_id=trajectory_id)
    steps = Prefetch("steps", queryset=Step.objects.order_by("index"))
    trajectory = type(trajectory).objects.prefetch_related(steps).select_related("goal").get(pk=trajectory.pk)
    return Response(TrajectoryDetailSerializer(trajectory).data)


@extend_schema(
    methods=["POST"],
    request={"multipart/form-data": ImportUploadSerializer},
    responses={202: ImportJobSerializer(many=True)},
)
@extend_schema(methods=["GET"], responses=ImportJobSerializer(many=True))
@login_not_required
@api_view(["GET", "POST"])
@parser_classes([MultiPartParser])
def import_list(request: Request, project_slug: str) -> Response:
    """GET: the project's imports. POST: upload files; each is imported by a worker (202)."""
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    if request.method == "GET":
        check_role(role=role, allowed=REVIEW_ROLES)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(import_jobs_for_user(project=project, role=role), request)
        return paginator.get_paginated_response(ImportJobSerializer(page, many=True).data)
    check_role(role=role, allowed=MANAGE_ROLES)
    upload = ImportUploadSerializer(
        data={
            "file": request.FILES.getlist("file"),
            **{key: request.data.get(key, "") for key in ("format", "model", "scaffold")},
        }
    )
    upload.is_valid(raise_exception=True)
    jobs = []
    for file in upload.validated_data["file"]:
        try:
            jobs.append(
                import_job_create(
                    actor=request.user,
                    project=project,
                    name=file.name,
                    stream=file,
                    format_name=upload.validated_data["format"],
                    default_model=upload.validated_data["model"],
                    default_scaffold=upload.validated_data["scaffold"],
                )
            )
        except ValidationError as exc:
            raise ApiValidationError({"file": [f"{file.name}: {m}" for m in exc.messages]}) from exc
    return Response(ImportJobSerializer(jobs, many=True).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(responses=ImportJobSerializer)
@login_not_required
@api_view(["GET"])
def import_detail(request: Request, project_slug: str, job_id: int) -> Response:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    return Response(ImportJobSerializer(import_job_get_for_user(project=project, role=role, job_id=job_id)).data)


@extend_schema(
    methods=["POST"], request={"multipart/form-data": RegistryUploadSerializer}, responses={201: RegistrySerializer}
)
@extend_schema(methods=["GET"], responses=RegistrySerializer(many=True))
@login_not_required
@api_view(["GET", "POST"])
@parser_classes([MultiPartParser])
def registry_list(request: Request, project_slug: str) -> Response:
    """GET: the project's registry versions. POST: a tool spec file (OpenAI tools, OpenAPI, MCP
    tools/list, τ-bench) becomes a new draft version; `freeze=true` freezes it at once."""
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    if request.method == "GET":
        registries = registry_list_for_user(project=project, role=role).prefetch_related("tools")
        return Response(RegistrySerializer(registries, many=True).data)
    check_role(role=role, allowed=MANAGE_ROLES)
    upload = RegistryUploadSerializer(data=request.data)
    upload.is_valid(raise_exception=True)
    file = upload.validated_data["file"]
    try:
        with transaction.atomic():
            registry = registry_import(
                actor=request.user,
                project=project,
                name=file.name,
                stream=file,
                format_name=upload.validated_data["format"],
                registry_name=upload.validated_data["name"],
            )
            if upload.validated_data["freeze"]:
                registry = registry_freeze(actor=request.user, registry=registry)
    except RegistryImportError as exc:
        raise ApiValidationError({"file": [error.as_dict() for error in exc.located]}) from exc
    except ValidationError as exc:
        raise ApiValidationError({"file": exc.messages}) from exc
    registry = registry_get_for_user(project=project, role=role, version=registry.version)
    return Response(RegistrySerializer(registry).data, status=status.HTTP_201_CREATED)


@extend_schema(responses=RegistrySerializer)
@login_not_required
@api_view(["GET"])
def registry_detail(request: Request, project_slug: str, version: int) -> Response:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    return Response(RegistrySerializer(registry_get_for_user(project=project, role=role, version=version)).data)


@extend_schema(request=None, responses=RegistrySerializer)
@login_not_required
@api_view(["POST"])
def registry_freeze_view(request: Request, project_slug: str, version: int) -> Response:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=MANAGE_ROLES)
    registry = registry_get_for_user(project=project, role=role, version=version)
    try:
        registry_freeze(actor=request.user, registry=registry)
    except ValidationError as exc:
        raise ApiValidationError({"detail": exc.messages}) from exc
    return Response(RegistrySerializer(registry_get_for_user(project=project, role=role, version=version)).data)
