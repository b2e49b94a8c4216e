from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from core.http import AuthenticatedHttpRequest, download_response, render_page
from core.selectors import MANAGE_ROLES, REVIEW_ROLES, check_role, project_get_for_user
from trajectories.forms import UploadForm
from trajectories.models import Band, TrajectoryStatus
from trajectories.selectors.runs import (
    TrajectoryFilters,
    can_browse,
    goal_band_counts,
    import_job_get_for_user,
    import_jobs_for_user,
    project_registry,
    project_status_counts,
    trajectory_filter_choices,
    trajectory_get_for_user,
    trajectory_list_for_user,
    trajectory_record_for_user,
    trajectory_steps,
)
from trajectories.services.imports import import_job_create

PAGE_SIZE = 50


@require_GET
def project_overview(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    counts = project_status_counts(project=project)
    context = {
        "registry": project_registry(project=project),
        "bands": goal_band_counts(project=project),
        "project": project,
        "role": role,
        "counts": counts,
        "total": sum(n for _, _, n in counts),
        "can_browse": can_browse(role),
        "imports": import_jobs_for_user(project=project, role=role)[:5],
    }
    return render_page(request, "trajectories/project_overview.html", context)


@require_GET
def trajectory_list(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=frozenset({*MANAGE_ROLES, "qa_lead", "reviewer"}))
    filters = TrajectoryFilters(**{k: request.GET.get(k, "")[:200] for k in TrajectoryFilters.__dataclass_fields__})
    qs = trajectory_list_for_user(user=request.user, project=project, role=role, filters=filters)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "project": project,
        "role": role,
        "page": page,
        "filters": filters,
        "choices": trajectory_filter_choices(project=project),
        "statuses": TrajectoryStatus.choices,
        "bands": Band.choices,
        "query": request.GET.copy(),
        "can_import": role in MANAGE_ROLES,
        "form": UploadForm(),
        "imports": import_jobs_for_user(project=project, role=role)[:5],
    }
    return render_page(request, "trajectories/trajectory_list.html", context, partial="results")


@require_http_methods(["GET", "POST"])
def import_upload(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    """GET: the project's imports (refreshing while any runs). POST: upload files to import."""
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    if request.method == "GET":
        check_role(role=role, allowed=REVIEW_ROLES)
        page = Paginator(import_jobs_for_user(project=project, role=role), PAGE_SIZE).get_page(request.GET.get("page"))
        context = {
            "project": project,
            "role": role,
            "imports": page.object_list,
            "page": page,
            "running": any(not job.is_finished for job in page.object_list),
        }
        return render_page(request, "trajectories/imports.html", context, partial="jobs")
    check_role(role=role, allowed=MANAGE_ROLES)
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "; ".join(str(e) for errors in form.errors.values() for e in errors))
        return redirect("trajectories:trajectory_list", project_slug=project.slug)
    jobs = []
    for upload in form.cleaned_data["upload"]:
        try:
            jobs.append(
                import_job_create(
                    actor=request.user,
                    project=project,
                    name=upload.name,
                    stream=upload,
                    format_name=form.cleaned_data["format"],
                    default_model=form.cleaned_data["model"],
                    default_scaffold=form.cleaned_data["scaffold"],
                )
            )
        except ValidationError as exc:
            messages.error(request, f"{upload.name}: {' '.join(exc.messages)}")
    if len(jobs) == 1:
        target = reverse("trajectories:import_detail", kwargs={"project_slug": project.slug, "job_id": jobs[0].pk})
    else:
        if jobs:
            messages.success(request, f"{len(jobs)} files queued for import.")
        target = reverse("trajectories:import_upload", kwargs={"project_slug": project.slug})
    return HttpResponseClientRedirect(target) if request.htmx else redirect(target)


@require_GET
def import_detail(request: AuthenticatedHttpRequest, project_slug: str, job_id: int) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    job = import_job_get_for_user(project=project, role=role, job_id=job_id)
    context = {"project": project, "role": role, "job": job}
    return render_page(request, "trajectories/import_detail.html", context, partial="progress")


@require_GET
def trajectory_record(request: AuthenticatedHttpRequest, project_slug: str, trajectory_id: int) -> HttpResponse:
    """The run's record as imported, byte for byte (secrets in its metadata scrubbed): a download, never
    shown in the page, as its content is the agent's and untrusted."""
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    trajectory, record = trajectory_record_for_user(project=project, role=role, trajectory_id=trajectory_id)
    return download_response(record, f"{project.slug}-trajectory-{trajectory.pk}.record", "application/octet-stream")


@require_GET
def trajectory_detail(request: AuthenticatedHttpRequest, project_slug: str, trajectory_id: int) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    trajectory = trajectory_get_for_user(user=request.user, project=project, role=role, trajectory_id=trajectory_id)
    context = {
        "project": project,
        "role": role,
        "trajectory": trajectory,
        "steps": trajectory_steps(trajectory=trajectory),
        "can_download_record": can_browse(role),
    }
    return render_page(request, "trajectories/trajectory_detail.html", context)
