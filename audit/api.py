"""REST API for escalations, agreement and a trajectory's labels: the same selectors and services as the pages."""

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from audit.models import AgreementSnapshot
from audit.selectors import (
    LEAD_ROLES,
    REVIEWER_ROLES,
    QueueFilters,
    escalation_detail,
    escalation_get_for_user,
    escalation_queue,
    latest_run,
    trajectory_labels_for_lead,
)
from audit.serializers import (
    AgreementSnapshotSerializer,
    EscalationDetailSerializer,
    EscalationSerializer,
    ResolveSerializer,
    TrajectoryLabelsSerializer,
)
from audit.services.escalations import escalation_resolve
from core.http import api_validation_error
from core.selectors import check_role, project_get_for_user
from trajectories.selectors.runs import trajectory_get_for_user

QUEUE_PARAMS = [
    OpenApiParameter(name, str, required=False)
    for name in ("project", "status", "reason", "kind", "tool", "band", "model", "older_than", "mine", "page")
]


ESCALATION_PAGE = inline_serializer(
    "EscalationPage",
    {
        "count": serializers.IntegerField(),
        "page": serializers.IntegerField(),
        "pages": serializers.IntegerField(),
        "results": EscalationSerializer(many=True),
    },
)
AGREEMENT = inline_serializer(
    "AgreementFigures",
    {
        "definition": serializers.JSONField(
            allow_null=True, help_text="What the target measures; null before any run."
        ),
        "computed_at": serializers.DateTimeField(allow_null=True),
        "results": AgreementSnapshotSerializer(many=True),
    },
)


@extend_schema(parameters=QUEUE_PARAMS, responses=ESCALATION_PAGE, operation_id="escalations_list")
@login_not_required
@api_view(["GET"])
def escalation_list(request: Request) -> Response:
    """The escalations of the projects the user leads (QA lead or manager), oldest first, 50 a page."""
    filters = QueueFilters.from_query(request.query_params)
    raw = request.query_params.get("page", "1")
    page = escalation_queue(user=request.user, filters=filters, page=int(raw) if raw.isdigit() and len(raw) < 7 else 1)
    if not page.projects:
        raise NotFound("You lead no project.")
    return Response(
        {
            "count": page.total,
            "page": page.page,
            "pages": page.pages,
            "results": EscalationSerializer([r.escalation for r in page.rows], many=True).data,
        }
    )


def _detail(escalation_id: int, request: Request) -> Response:
    escalation = escalation_get_for_user(user=request.user, escalation_id=escalation_id)
    detail = escalation_detail(escalation=escalation)
    return Response(EscalationDetailSerializer(detail.escalation, context={"columns": detail.columns}).data)


@extend_schema(responses=EscalationDetailSerializer)
@login_not_required
@api_view(["GET"])
def escalation_get(request: Request, escalation_id: int) -> Response:
    """One escalation with the labels behind it as A, B, C (names only once it is resolved)."""
    return _detail(escalation_id, request)


@extend_schema(request=ResolveSerializer, responses=EscalationDetailSerializer)
@login_not_required
@api_view(["POST"])
def escalation_resolve_view(request: Request, escalation_id: int) -> Response:
    """Resolve: accept a label's value (choice A, B, C …) or give your own (choice "own" and value)."""
    escalation = escalation_get_for_user(user=request.user, escalation_id=escalation_id)
    body = ResolveSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    try:
        escalation_resolve(actor=request.user, escalation=escalation, **body.validated_data)
    except ValidationError as exc:
        raise api_validation_error(exc) from exc
    return _detail(escalation_id, request)


@extend_schema(
    parameters=[OpenApiParameter("scope", str, required=False), OpenApiParameter("measure", str, required=False)],
    responses=AGREEMENT,
)
@login_not_required
@api_view(["GET"])
def agreement(request: Request, project_slug: str) -> Response:
    """The latest agreement figures of the project, with what the target means."""
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=REVIEWER_ROLES)
    run = latest_run(project)
    if run is None:
        return Response({"definition": None, "computed_at": None, "results": []})
    qs = (
        AgreementSnapshot.objects.filter(run=run)
        .select_related("annotator", "other")
        .order_by("scope", "slice_key", "id")
    )
    for key in ("scope", "measure"):
        if request.query_params.get(key):
            qs = qs.filter(**{key: request.query_params[key][:80]})
    return Response(
        {
            "definition": run.definition,
            "computed_at": run.started_at,
            "results": AgreementSnapshotSerializer(qs[:5000], many=True).data,
        }
    )


@extend_schema(responses=TrajectoryLabelsSerializer)
@login_not_required
@api_view(["GET"])
def trajectory_labels(request: Request, project_slug: str, trajectory_id: int) -> Response:
    """QA leads and project managers: the submitted labels of a trajectory (steps and verdict), one column per
    annotator lettered A, B, C as its escalations are; names only once it is audited with nothing open."""
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=LEAD_ROLES)
    trajectory = trajectory_get_for_user(user=request.user, project=project, role=role, trajectory_id=trajectory_id)
    labels = trajectory_labels_for_lead(project=project, role=role, trajectory=trajectory)
    return Response(TrajectoryLabelsSerializer(labels).data)
