"""Quality pages: agreement per scope with its definition, the pair heat map, charts, CSV, calibration
flags and the project's consensus rules."""

from __future__ import annotations

import orjson
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.models import CalibrationFlag
from audit.rules import SCHEMA, rules_errors, rules_for
from audit.selectors import LEAD_ROLES, REVIEWER_ROLES, calibration_flags, quality_view, snapshot_rows
from audit.services.agreement import calibration_flag_clear
from audit.services.enqueue import agreement_enqueue
from audit.services.settings import consensus_rules_set
from core.http import AuthenticatedHttpRequest, csv_response, render_page
from core.models import Role
from core.selectors import check_role, project_get_for_user

CSV_TABLES = ("project", "slices", "annotators", "pairs", "annotator_slices", "all")


@require_GET
def quality(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=REVIEWER_ROLES)
    view = quality_view(project=project, slice_key=request.GET.get("slice", "")[:200])
    context = {
        "project": project,
        "role": role,
        "q": view,
        "rules": rules_for(project),
        "can_recompute": role in LEAD_ROLES,
        "tables": CSV_TABLES,
    }
    return render_page(request, "audit/quality.html", context)


@require_GET
def quality_csv(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=REVIEWER_ROLES)
    table = request.GET.get("table", "all")
    if table not in CSV_TABLES:
        table = "all"
    header, rows = snapshot_rows(project=project, table=table)
    return csv_response(f"{project.slug}-agreement-{table}.csv", header, rows)


@require_POST
def recompute(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=LEAD_ROLES)
    agreement_enqueue(project.pk)
    messages.success(request, "Agreement is being recomputed by the workers; reload in a moment.")
    return redirect("audit:quality", project_slug=project.slug)


@require_GET
def calibration(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=LEAD_ROLES)
    flags = calibration_flags(project=project, include_cleared=request.GET.get("all") == "1")[:500]
    return render_page(
        request, "audit/calibration.html", {"project": project, "flags": flags, "rules": rules_for(project)}
    )


@require_POST
def calibration_clear(request: AuthenticatedHttpRequest, project_slug: str, flag_id: int) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=frozenset({Role.QA_LEAD, Role.PROJECT_MANAGER}))
    flag = CalibrationFlag.objects.filter(project=project, pk=flag_id).first()
    if flag is None:
        messages.error(request, "No such flag.")
    else:
        calibration_flag_clear(actor=request.user, flag=flag)
        messages.success(request, f"Calibration flag of {flag.annotator.username} on {flag.slice_key} cleared.")
    return redirect("audit:calibration", project_slug=project.slug)


@require_http_methods(["GET", "POST"])
def rules_edit(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=LEAD_ROLES)
    text = orjson.dumps(project.consensus_rules, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    errors: list[str] = []
    if request.method == "POST":
        check_role(role=role, allowed=frozenset({Role.PROJECT_MANAGER}))
        text = request.POST.get("rules", "")
        try:
            value = orjson.loads(text or "{}")
        except orjson.JSONDecodeError as exc:
            errors = [f"line {exc.lineno}, column {exc.colno}: {exc.msg}"]
        else:
            errors = rules_errors(value)
            if not errors:
                try:
                    consensus_rules_set(actor=request.user, project=project, rules=value)
                except ValidationError as exc:
                    errors = exc.messages
                else:
                    messages.success(request, "Consensus rules saved; they apply to consensus computed from now on.")
                    return redirect("audit:rules", project_slug=project.slug)
    context = {
        "project": project,
        "text": text,
        "errors": errors,
        "schema": orjson.dumps(SCHEMA, option=orjson.OPT_INDENT_2).decode(),
        "effective": rules_for(project) if not errors else None,
        "can_edit": role == Role.PROJECT_MANAGER,
    }
    return render_page(request, "audit/rules.html", context, status=422 if errors else 200)
