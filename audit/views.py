"""Audit pages: the escalation queue and decisions, reviews, the guideline backlog, an annotator's
feedback, and (in quality.py) agreement and calibration."""

from __future__ import annotations

from typing import Any

import orjson
from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.models import Consensus, EscalationStatus, ReviewStatus
from audit.selectors import (
    LEAD_ROLES,
    REVIEWER_ROLES,
    QueueFilters,
    consensus_by_step,
    escalation_detail,
    escalation_get_for_user,
    escalation_queue,
    feedback_for_annotator,
    guideline_backlog,
    review_get,
    reviews_for_project,
)
from audit.services.escalations import OWN, escalation_reassign, escalation_resolve, review_confirm, review_send
from core.http import AuthenticatedHttpRequest, render_page
from core.selectors import check_role, project_get_for_user


def _page(raw: str | None) -> int:
    return int(raw) if raw and raw.isdigit() and len(raw) < 7 else 1


@require_GET
def escalation_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    filters = QueueFilters.from_query(request.GET)
    page = escalation_queue(user=request.user, filters=filters, page=_page(request.GET.get("page")))
    if not page.projects:
        raise Http404("You lead no project.")
    query = request.GET.copy()
    query.pop("page", None)
    return render_page(
        request,
        "audit/escalations.html",
        {"page": page, "query": query.urlencode(), "statuses": [*EscalationStatus.choices, ("all", "All")]},
        partial="queue",
    )


def parse_decision_value(raw: str, kind: str, key: str) -> Any:
    """The lead's own value from the form: JSON for corrected values, else the field's type."""
    raw = raw.strip()
    if kind == "corrected":
        try:
            return orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError as exc:
            raise ValidationError({"value": f"not JSON: {exc}"}) from None
    if kind == "rubric" or key in ("efficiency", "error_handling", "process_reward"):
        try:
            return int(raw)
        except ValueError:
            raise ValidationError({"value": "a whole number"}) from None
    if key in ("goal_completed", "overall_success"):
        if raw not in ("True", "False"):
            raise ValidationError({"value": "yes or no"})
        return raw == "True"
    if key == "first_failing_step":
        if raw == "none":
            return raw
        try:
            return int(raw) - 1  # shown 1-based
        except ValueError:
            raise ValidationError({"value": 'a step number, or "none"'}) from None
    return raw


@require_http_methods(["GET", "POST"])
def escalation_view(request: AuthenticatedHttpRequest, escalation_id: int) -> HttpResponse:
    escalation = escalation_get_for_user(user=request.user, escalation_id=escalation_id)
    errors: list[str] = []
    status = 200
    if request.method == "POST":
        choice = request.POST.get("choice", "")
        kind = escalation.field.partition(":")[0]
        try:
            value: Any = None
            if choice == OWN:
                if escalation.field == "failure_modes":
                    value = request.POST.getlist("value")
                else:
                    value = parse_decision_value(request.POST.get("value", ""), kind, escalation.field)
            escalation_resolve(
                actor=request.user,
                escalation=escalation,
                choice=choice,
                value=value,
                kind=request.POST.get("kind", ""),
                reason=request.POST.get("reason", ""),
            )
        except ValidationError as exc:
            errors = exc.messages
            status = 422
        else:
            messages.success(request, f"Escalation {escalation.pk} resolved.")
            detail = escalation_detail(escalation=escalation)
            if detail.next_id and request.POST.get("then") == "next":
                return redirect("audit:escalation", escalation_id=detail.next_id)
            return redirect("audit:escalation", escalation_id=escalation.pk)
    detail = escalation_detail(escalation=escalation)
    return render_page(
        request,
        "audit/escalation.html",
        {
            "detail": detail,
            "e": detail.escalation,
            "project": escalation.project,
            "errors": errors,
            "post": request.POST,
        },
        status=status,
    )


@require_POST
def escalation_reassign_view(request: AuthenticatedHttpRequest, escalation_id: int) -> HttpResponse:
    escalation = escalation_get_for_user(user=request.user, escalation_id=escalation_id)
    raw = request.POST.get("lead", "")
    lead = User.objects.filter(pk=int(raw)).first() if raw.isdigit() and len(raw) < 12 else None
    try:
        if lead is None:
            raise ValidationError("Choose a QA lead.")
        escalation_reassign(actor=request.user, escalation=escalation, lead=lead)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Escalation {escalation.pk} reassigned to {lead.username}.")
    return redirect("audit:escalation", escalation_id=escalation.pk)


# --- project pages ------------------------------------------------------------------------------------


@require_GET
def backlog(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=LEAD_ROLES)
    return render_page(
        request, "audit/backlog.html", {"project": project, "items": guideline_backlog(project=project)[:500]}
    )


@require_GET
def review_list(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=REVIEWER_ROLES)
    status = request.GET.get("status", ReviewStatus.PENDING)
    if status not in (*ReviewStatus.values, "all"):
        status = ReviewStatus.PENDING
    reviews = reviews_for_project(project=project, status=status)[:500]
    return render_page(
        request,
        "audit/reviews.html",
        {"project": project, "reviews": reviews, "status": status, "statuses": [*ReviewStatus.choices, ("all", "All")]},
    )


@require_http_methods(["GET", "POST"])
def review_view(request: AuthenticatedHttpRequest, project_slug: str, review_id: int) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=REVIEWER_ROLES)
    review = review_get(project=project, review_id=review_id)
    errors: list[str] = []
    if request.method == "POST":
        try:
            if request.POST.get("action") == "confirm":
                review_confirm(actor=request.user, review=review, note=request.POST.get("note", ""))
                messages.success(request, "Consensus confirmed.")
            elif request.POST.get("action") == "send":
                raw = request.POST.get("consensus", "")
                value = Consensus.objects.filter(
                    pk=int(raw) if raw.isdigit() else 0, trajectory=review.trajectory
                ).first()
                if value is None:
                    raise ValidationError("Choose the value that looks wrong.")
                review_send(actor=request.user, review=review, consensus=value, note=request.POST.get("note", ""))
                messages.success(request, "Sent to the QA lead.")
            else:
                raise ValidationError("Confirm, or send a value to the QA lead.")
        except ValidationError as exc:
            errors = exc.messages
        else:
            return redirect("audit:reviews", project_slug=project.slug)
    context = {
        "project": project,
        "review": review,
        "groups": consensus_by_step(trajectory_id=review.trajectory_id),
        "errors": errors,
    }
    return render_page(request, "audit/review.html", context, status=422 if errors else 200)


@require_GET
def feedback(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    if not isinstance(request.user, User):
        raise PermissionDenied
    rows = feedback_for_annotator(user=request.user, project=project)
    return render_page(request, "audit/feedback.html", {"project": project, "rows": rows, "role": role})
