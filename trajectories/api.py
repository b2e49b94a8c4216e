"""REST API for runs, imports, registries, goals and SWE tasks: the same selectors and services as the pages."""

from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Prefetch
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view, parser_classes
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer

from core.http import api_validation_error, download_response, paginated, paginated_response
from core.selectors import MANAGE_ROLES, REVIEW_ROLES, check_role, project_get_for_user
from trajectories.models import Step
from trajectories.selectors.goals import (
    GoalFilters,
    SweTaskFilters,
    goal_get_for_user,
    goal_list_for_user,
    swe_task_get_for_user,
    swe_task_list_for_user,
)
from trajectories.selectors.registries import registry_get_for_user, registry_list_for_user
from trajectories.selectors.runs import (
    TrajectoryFilters,
    import_job_get_for_user,
    import_jobs_for_user,
    trajectory_get_for_user,
    trajectory_list_for_user,
    trajectory_record_for_user,
)
from trajectories.serializers import (
    GoalFiltersSerializer,
    GoalImportSerializer,
    GoalSerializer,
    GoalWriteSerializer,
    ImportJobSerializer,
    ImportReportSerializer,
    ImportUploadSerializer,
    OverrideSerializer,
    RegistrySerializer,
    RegistryUploadSerializer,
    SweTaskDetailSerializer,
    SweTaskFiltersSerializer,
    SweTaskImportSerializer,
    SweTaskSerializer,
    TrajectoryDetailSerializer,
    TrajectorySerializer,
)
from trajectories.services._rows import ImportReport
from trajectories.services.goals import (
    goal_create,
    goal_update,
    goals_file_import,
)
from trajectories.services.imports import import_job_create
from trajectories.services.registries import RegistryImportError, registry_freeze, registry_import
from trajectories.services.swe_tasks import swe_task_override, swe_tasks_import

FILTERS = [OpenApiParameter(name, str, required=False) for name in TrajectoryFilters.__dataclass_fields__]
PAGE = OpenApiParameter("page", int, required=False)


@extend_schema(
    description="The run's record as imported, byte for byte (secrets in its metadata scrubbed), for those who "
    "browse the project: its sha256 is the trajectory's payload_sha256.",
    responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
)
@login_not_required
@api_view(["GET"])
def trajectory_record(request: Request, project_slug: str, trajectory_id: int) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    trajectory, record = trajectory_record_for_user(project=project, role=role, trajectory_id=trajectory_id)
    return download_response(record, f"{project.slug}-trajectory-{trajectory.pk}.record", "application/octet-stream")


@extend_schema(
    operation_id="projects_trajectories_list", parameters=[*FILTERS, PAGE], responses=paginated(TrajectorySerializer)
)
@login_not_required
@api_view(["GET"])
def trajectory_list(request: Request, project_slug: str) -> Response:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=REVIEW_ROLES)
    filters = TrajectoryFilters(
        **{k: request.query_params.get(k, "")[:200] for k in TrajectoryFilters.__dataclass_fields__}
    )
    qs = trajectory_list_for_user(user=request.user, project=project, role=role, filters=filters)
    return paginated_response(request, qs, TrajectorySerializer)


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
@extend_schema(
    methods=["GET"], operation_id="projects_imports_list", parameters=[PAGE], responses=paginated(ImportJobSerializer)
)
@login_not_required
@api_view(["GET", "POST"])
@parser_classes([MultiPartParser])
def import_list(request: Request, project_slug: str) -> Response:
    """GET: the project's imports. POST: upload files; each is imported by a worker (202)."""
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    if request.method == "GET":
        check_role(role=role, allowed=REVIEW_ROLES)
        return paginated_response(request, import_jobs_for_user(project=project, role=role), ImportJobSerializer)
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


# ---------------------------------------------------------------- goals


def _query(serializer_class: type[Serializer[dict[str, Any]]], request: Request) -> dict[str, Any]:
    """Validated query parameters (400 naming the parameter when one is wrong)."""
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return dict(query.validated_data)


def _import_report(report: ImportReport) -> Response:
    return Response(ImportReportSerializer(report).data)


def _file_error(exc: ValidationError) -> ApiValidationError:
    """A bulk import's file-level error: under the field it names, else under "file"."""
    return api_validation_error(exc) if hasattr(exc, "error_dict") else ApiValidationError({"file": exc.messages})


@extend_schema(
    methods=["GET"],
    operation_id="projects_goals_list",
    parameters=[GoalFiltersSerializer, PAGE],
    responses=paginated(GoalSerializer),
)
@extend_schema(methods=["POST"], request=GoalWriteSerializer, responses={201: GoalSerializer})
@login_not_required
@api_view(["GET", "POST"])
def goal_list(request: Request, project_slug: str) -> Response:
    """GET: the project's goals (filters: band, tag, search), 50 a page. POST (project managers): a new goal."""
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    if request.method == "GET":
        query = _query(GoalFiltersSerializer, request)
        filters = GoalFilters(band=query["band"], tag=query["tag"], q=query["search"])
        return paginated_response(
            request, goal_list_for_user(project=project, role=role, filters=filters), GoalSerializer
        )
    check_role(role=role, allowed=MANAGE_ROLES)
    body = GoalWriteSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    try:
        goal = goal_create(actor=request.user, project=project, **body.validated_data)
    except ValidationError as exc:
        raise api_validation_error(exc) from exc
    return Response(GoalSerializer(goal).data, status=status.HTTP_201_CREATED)


@extend_schema(methods=["GET"], responses=GoalSerializer)
@extend_schema(methods=["PUT", "PATCH"], request=GoalWriteSerializer, responses=GoalSerializer)
@login_not_required
@api_view(["GET", "PUT", "PATCH"])
def goal_detail(request: Request, project_slug: str, goal_id: int) -> Response:
    """GET: one goal. PUT (project managers): replace its fields; PATCH: change only the fields given."""
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    goal = goal_get_for_user(project=project, role=role, goal_id=goal_id)
    if request.method == "GET":
        return Response(GoalSerializer(goal).data)
    check_role(role=role, allowed=MANAGE_ROLES)
    partial = request.method == "PATCH"
    current = {name: getattr(goal, name) for name in GoalWriteSerializer().fields} if partial else {}
    body = GoalWriteSerializer(data=request.data, partial=partial)
    body.is_valid(raise_exception=True)
    try:
        goal = goal_update(actor=request.user, goal=goal, **(current | dict(body.validated_data)))
    except ValidationError as exc:
        raise api_validation_error(exc) from exc
    return Response(GoalSerializer(goal).data)


@extend_schema(request={"multipart/form-data": GoalImportSerializer}, responses=ImportReportSerializer)
@login_not_required
@api_view(["POST"])
@parser_classes([MultiPartParser])
def goal_import(request: Request, project_slug: str) -> Response:
    """Goals in bulk (CSV, JSONL or τ-bench tasks), as on the import page: valid rows are written, each
    rejected row comes back in `errors` with where it is (line, column, field) and why."""
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=MANAGE_ROLES)
    upload = GoalImportSerializer(data=request.data)
    upload.is_valid(raise_exception=True)
    data = upload.validated_data
    try:
        report = goals_file_import(
            actor=request.user,
            project=project,
            stream=data["file"],
            name=data["file"].name,
            format=data["format"],
            env=data["env"],
            band=data["band"],
            tags=data["tags"],
        )
    except ValidationError as exc:
        raise _file_error(exc) from exc
    return _import_report(report)


# ---------------------------------------------------------------- SWE tasks


@extend_schema(
    operation_id="projects_swe_tasks_list",
    parameters=[SweTaskFiltersSerializer, PAGE],
    responses=paginated(SweTaskSerializer),
)
@login_not_required
@api_view(["GET"])
def swe_task_list(request: Request, project_slug: str) -> Response:
    """The project's SWE tasks (filters: status flagged / overridden / available, repo, search), 50 a page."""
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    query = _query(SweTaskFiltersSerializer, request)
    filters = SweTaskFilters(status=query["status"], repo=query["repo"], q=query["search"])
    return paginated_response(
        request, swe_task_list_for_user(project=project, role=role, filters=filters), SweTaskSerializer
    )


@extend_schema(responses=SweTaskDetailSerializer)
@login_not_required
@api_view(["GET"])
def swe_task_detail(request: Request, project_slug: str, task_id: int) -> Response:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    return Response(SweTaskDetailSerializer(swe_task_get_for_user(project=project, role=role, task_id=task_id)).data)


@extend_schema(request={"multipart/form-data": SweTaskImportSerializer}, responses=ImportReportSerializer)
@login_not_required
@api_view(["POST"])
@parser_classes([MultiPartParser])
def swe_task_import(request: Request, project_slug: str) -> Response:
    """SWE-bench instances in bulk, matched by instance_id and checked against the project's leak lists."""
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=MANAGE_ROLES)
    upload = SweTaskImportSerializer(data=request.data)
    upload.is_valid(raise_exception=True)
    file = upload.validated_data["file"]
    try:
        report = swe_tasks_import(actor=request.user, project=project, stream=file, name=file.name)
    except ValidationError as exc:
        raise _file_error(exc) from exc
    return _import_report(report)


@extend_schema(request=OverrideSerializer, responses=SweTaskDetailSerializer)
@login_not_required
@api_view(["POST"])
def swe_task_override_view(request: Request, project_slug: str, task_id: int) -> Response:
    """Let a task that matches a leak list into annotation anyway; the reason is kept and audited."""
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    task = swe_task_get_for_user(project=project, role=role, task_id=task_id)
    check_role(role=role, allowed=MANAGE_ROLES)
    body = OverrideSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    try:
        task = swe_task_override(actor=request.user, task=task, reason=body.validated_data["reason"])
    except ValidationError as exc:
        raise api_validation_error(exc) from exc
    return Response(SweTaskDetailSerializer(swe_task_get_for_user(project=project, role=role, task_id=task.pk)).data)
