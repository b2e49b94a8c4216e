"""REST API for assignments: the same selectors and services as the queue and the workspace.

QA leads and project managers list every assignment of a project (its facts, never its labels); an
annotator lists, claims, reads and submits only their own — anyone else's is a 404, as in the workspace.
"""

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from annotation.selectors import (
    AssignmentFilters,
    assignment_get_for_lead_or_owner,
    assignment_get_for_user_by_slug,
    assignment_labels,
    assignment_list_for_user,
)
from annotation.serializers import (
    AssignmentFiltersSerializer,
    AssignmentLabelsSerializer,
    AssignmentSerializer,
    MissingSerializer,
)
from annotation.services import Incomplete, LeaseLost, NoWork, assignment_claim_next, assignment_submit
from core.http import api_validation_error, paginated, paginated_response
from core.models import Role
from core.selectors import check_role, project_get_for_user

DETAIL = inline_serializer("Detail", {"detail": serializers.CharField()})
INCOMPLETE = inline_serializer(
    "Incomplete", {"detail": serializers.CharField(), "missing": MissingSerializer(many=True)}
)


@extend_schema(
    parameters=[AssignmentFiltersSerializer, OpenApiParameter("page", int, required=False)],
    operation_id="projects_assignments_list",
    responses=paginated(AssignmentSerializer),
)
@login_not_required
@api_view(["GET"])
def assignment_list(request: Request, project_slug: str) -> Response:
    """Leads: every assignment of the project (filters: status, annotator, trajectory, gold). An annotator: their
    own. Newest first, 50 a page."""
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    query = AssignmentFiltersSerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    filters = AssignmentFilters(**query.validated_data)
    qs = assignment_list_for_user(user=request.user, project=project, role=role, filters=filters)
    return paginated_response(request, qs, AssignmentSerializer)


@extend_schema(
    request=None,
    responses={200: AssignmentSerializer, 409: OpenApiResponse(DETAIL, description="No work: says why.")},
)
@login_not_required
@api_view(["POST"])
def assignment_claim(request: Request, project_slug: str) -> Response:
    """An annotator's next work: the assignment in progress, or a newly claimed trajectory (a lease that each
    save renews). 409 with the reason when there is nothing to hand out."""
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=frozenset({Role.ANNOTATOR}))
    try:
        assignment = assignment_claim_next(annotator=request.user, project=project)
    except NoWork as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    return Response(AssignmentSerializer(assignment).data)


@extend_schema(responses=AssignmentSerializer)
@login_not_required
@api_view(["GET"])
def assignment_detail(request: Request, project_slug: str, assignment_id: int) -> Response:
    """One assignment's facts: an annotator's own, or any of the project's for leads (404 otherwise)."""
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    assignment = assignment_get_for_lead_or_owner(
        user=request.user, project=project, role=role, assignment_id=assignment_id
    )
    return Response(AssignmentSerializer(assignment).data)


@extend_schema(responses=AssignmentLabelsSerializer)
@login_not_required
@api_view(["GET"])
def assignment_labels_view(request: Request, project_slug: str, assignment_id: int) -> Response:
    """The annotator's own labels on their assignment, drafts included. Anyone else's assignment is a 404, for
    leads too (they read submitted labels, lettered, under the trajectory's labels)."""
    _project, _role, assignment = assignment_get_for_user_by_slug(
        user=request.user, slug=project_slug, assignment_id=assignment_id
    )
    return Response(AssignmentLabelsSerializer(assignment_labels(assignment=assignment)).data)


@extend_schema(
    request=None,
    responses={
        200: AssignmentSerializer,
        400: OpenApiResponse(INCOMPLETE, description="What still needs a label, step by step."),
        409: OpenApiResponse(DETAIL, description="The lease expired and the place went to someone else."),
    },
)
@login_not_required
@api_view(["POST"])
def assignment_submit_view(request: Request, project_slug: str, assignment_id: int) -> Response:
    """Submit the annotator's own assignment once every step and the verdict are labelled."""
    _project, _role, assignment = assignment_get_for_user_by_slug(
        user=request.user, slug=project_slug, assignment_id=assignment_id
    )
    try:
        assignment = assignment_submit(annotator=request.user, assignment=assignment)
    except Incomplete as exc:
        missing = MissingSerializer(exc.missing, many=True).data
        return Response({"detail": exc.messages[0], "missing": missing}, status=status.HTTP_400_BAD_REQUEST)
    except LeaseLost as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    except ValidationError as exc:
        raise api_validation_error(exc) from exc
    return Response(AssignmentSerializer(assignment).data)
