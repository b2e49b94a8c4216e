"""REST API for batches and exports: the same selectors and services as the pages."""

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from core.http import api_validation_error, paginated, paginated_response
from core.selectors import MANAGE_ROLES, REVIEW_ROLES, check_role, project_get_for_user
from exports.selectors import batch_exports, batch_get, batches_for_project, export_get
from exports.serializers import BatchCreateSerializer, BatchSerializer, ExportCreateSerializer, ExportJobSerializer
from exports.services.batches import batch_create
from exports.services.jobs import export_job_create


@extend_schema(
    methods=["GET"],
    parameters=[OpenApiParameter("page", int, required=False)],
    responses=paginated(BatchSerializer),
    operation_id="projects_batches_list",
)
@extend_schema(methods=["POST"], request=BatchCreateSerializer, responses={201: BatchSerializer})
@login_not_required
@api_view(["GET", "POST"])
def batch_list(request: Request, project_slug: str) -> Response:
    """GET: the project's batches. POST: cut and freeze one from audited trajectories by filters."""
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=REVIEW_ROLES)
    if request.method == "GET":
        return paginated_response(request, batches_for_project(project=project), BatchSerializer)
    check_role(role=role, allowed=MANAGE_ROLES)
    body = BatchCreateSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    if not isinstance(body.validated_data["filters"], dict):
        raise ApiValidationError({"filters": ["must be an object"]})
    try:
        batch = batch_create(actor=request.user, project=project, **body.validated_data)
    except ValidationError as exc:
        raise api_validation_error(exc) from exc
    return Response(BatchSerializer(batch).data, status=status.HTTP_201_CREATED)


@extend_schema(responses=BatchSerializer)
@login_not_required
@api_view(["GET"])
def batch_detail(request: Request, project_slug: str, batch_id: int) -> Response:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=REVIEW_ROLES)
    return Response(BatchSerializer(batch_get(project=project, batch_id=batch_id)).data)


@extend_schema(
    methods=["GET"],
    parameters=[OpenApiParameter("page", int, required=False)],
    responses=paginated(ExportJobSerializer),
    operation_id="projects_batches_exports_list",
)
@extend_schema(methods=["POST"], request=ExportCreateSerializer, responses={202: ExportJobSerializer})
@login_not_required
@api_view(["GET", "POST"])
def export_list(request: Request, project_slug: str, batch_id: int) -> Response:
    """GET: the batch's exports. POST: queue one (a worker writes it; poll the job for progress)."""
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=REVIEW_ROLES)
    batch = batch_get(project=project, batch_id=batch_id)
    if request.method == "GET":
        return paginated_response(request, batch_exports(batch=batch), ExportJobSerializer)
    check_role(role=role, allowed=MANAGE_ROLES)
    body = ExportCreateSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    options = body.validated_data["options"]
    if not isinstance(options, dict):
        raise ApiValidationError({"options": ["must be an object"]})
    try:
        job = export_job_create(actor=request.user, batch=batch, format=body.validated_data["format"], options=options)
    except ValidationError as exc:
        raise api_validation_error(exc) from exc
    return Response(ExportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(responses=ExportJobSerializer)
@login_not_required
@api_view(["GET"])
def export_detail(request: Request, project_slug: str, batch_id: int, job_id: int) -> Response:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=REVIEW_ROLES)
    job = export_get(batch=batch_get(project=project, batch_id=batch_id), job_id=job_id)
    return Response(ExportJobSerializer(job).data)
