"""Batch pages (cut a batch from audited trajectories by filters, and see what it holds) and the reports."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.http import AuthenticatedHttpRequest, csv_response, render_page
from core.selectors import MANAGE_ROLES, REVIEW_ROLES, check_role, project_get_for_user
from exports.formats import FORMATS
from exports.forms import BatchForm
from exports.reports import REWARD_BINS, project_reports, report_csv_rows
from exports.selectors import batch_exports, batch_get, batch_open_escalations, batches_for_project, export_get
from exports.services.batches import batch_create
from exports.services.jobs import OPTIONS, export_dir, export_job_create
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
    context = {
        "project": project,
        "role": role,
        "batch": batch,
        "open": batch_open_escalations(batch=batch),
        "exports": batch_exports(batch=batch),
        "formats": [(cls.name, cls.label) for cls in FORMATS.values()],
        "can_manage": role in MANAGE_ROLES,
    }
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
        return csv_response(f"{project.slug}-{table}.csv", header, rows)
    context = {
        "project": project,
        "role": role,
        "r": report,
        "ks": list(range(1, report.max_k + 1)),
        "groupings": GROUPINGS,
        "bins": [f"{REWARD_BINS[i]:.1f}" for i in range(len(REWARD_BINS) - 1)],
    }
    return render_page(request, "exports/reports.html", context)


@require_POST
def export_create(request: AuthenticatedHttpRequest, project_slug: str, batch_id: int) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=MANAGE_ROLES)
    batch = batch_get(project=project, batch_id=batch_id)
    try:
        job = export_job_create(
            actor=request.user,
            batch=batch,
            format=request.POST.get("format", ""),
            options={
                **{name: request.POST.get(name) == "on" for name in OPTIONS},
                "licence": request.POST.get("licence", ""),
            },
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("exports:batch", project_slug=project.slug, batch_id=batch.pk)
    return redirect("exports:export", project_slug=project.slug, batch_id=batch.pk, job_id=job.pk)


@require_GET
def export_detail(request: AuthenticatedHttpRequest, project_slug: str, batch_id: int, job_id: int) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=REVIEW_ROLES)
    job = export_get(batch=batch_get(project=project, batch_id=batch_id), job_id=job_id)
    return render_page(request, "exports/export.html", {"project": project, "job": job}, partial="progress")


@require_GET
def export_download(
    request: AuthenticatedHttpRequest, project_slug: str, batch_id: int, job_id: int, name: str
) -> FileResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=REVIEW_ROLES)
    job = export_get(batch=batch_get(project=project, batch_id=batch_id), job_id=job_id)
    if name not in {f["name"] for f in job.files}:
        raise Http404("No such file.")
    path = export_dir(job) / name
    if not path.is_file():
        raise Http404("The file is gone from the server.")
    return FileResponse(path.open("rb"), as_attachment=True, filename=name)
