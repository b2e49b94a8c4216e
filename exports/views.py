"""Batch pages (cut a batch from audited trajectories by filters, and see what it holds) and the reports."""

from __future__ import annotations

import csv
import io

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_http_methods

from core.http import AuthenticatedHttpRequest, render_page
from core.selectors import MANAGE_ROLES, REVIEW_ROLES, check_role, project_get_for_user
from exports.forms import BatchForm
from exports.reports import REWARD_BINS, project_reports, report_csv_rows
from exports.selectors import batch_get, batch_open_escalations, batches_for_project
from exports.services.batches import batch_create
from trajectories.selectors.reliability import GROUPINGS


@require_http_methods(["GET", "POST"])
def batch_list(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=REVIEW_ROLES)
    form = BatchForm(request.POST or None)
    status = 200
    if request.method == "POST":
        check_role(role=role, allowed=MANAGE_ROLES)
        if form.is_valid():
            try:
                batch = batch_create(
                    actor=request.user, project=project, name=form.cleaned_data["name"], filters=form.filters()
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                messages.success(request, f"Batch {batch.name!r} cut: {batch.summary['trajectories']} trajectories.")
                return redirect("exports:batch", project_slug=project.slug, batch_id=batch.pk)
        status = 422
    context = {
        "project": project,
        "role": role,
        "form": form,
        "batches": batches_for_project(project=project)[:200],
        "can_manage": role in MANAGE_ROLES,
    }
    return render_page(request, "exports/batches.html", context, status=status)


@require_GET
def batch_detail(request: AuthenticatedHttpRequest, project_slug: str, batch_id: int) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=REVIEW_ROLES)
    batch = batch_get(project=project, batch_id=batch_id)
    context = {"project": project, "role": role, "batch": batch, "open": batch_open_escalations(batch=batch)}
    return render_page(request, "exports/batch.html", context)


REPORT_TABLES = ("reliability", "failures", "rewards", "costs")


@require_GET
def reports(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=REVIEW_ROLES)
    by = request.GET.get("by", "model")
    if by not in GROUPINGS:
        by = "model"
    report = project_reports(project=project, by=by)
    if request.GET.get("csv") in REPORT_TABLES:
        table = request.GET["csv"]
        header, rows = report_csv_rows(report, table)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        writer.writerows(rows)
        response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{project.slug}-{table}.csv"'
        return response
    context = {
        "project": project,
        "role": role,
        "r": report,
        "ks": list(range(1, report.max_k + 1)),
        "groupings": GROUPINGS,
        "bins": [f"{REWARD_BINS[i]:.1f}" for i in range(len(REWARD_BINS) - 1)],
    }
    return render_page(request, "exports/reports.html", context)
