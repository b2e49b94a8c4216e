"""Verification pages: the project's machine evidence, the replay configuration, one run's evidence."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from core.http import AuthenticatedHttpRequest, render_page
from core.selectors import MANAGE_ROLES, check_role
from trajectories.selectors.runs import trajectory_get_for_user
from verification.forms import ReplayConfigForm
from verification.selectors import (
    evidence_project_get_for_user,
    replay_config_view,
    trajectory_evidence,
    verification_summary,
)
from verification.services import project_verify_request, registry_active, replay_config_set


@require_GET
def overview(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    project, role = evidence_project_get_for_user(user=request.user, slug=project_slug)
    context = {
        "project": project,
        "role": role,
        "summary": verification_summary(project=project),
        "can_manage": role in MANAGE_ROLES,
    }
    return render_page(request, "verification/overview.html", context)


@require_POST
def verify_request(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    project, role = evidence_project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=MANAGE_ROLES)
    try:
        queued = project_verify_request(actor=request.user, project=project)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{queued} run{'s' if queued != 1 else ''} queued for verification.")
    return redirect("verification:overview", project_slug=project.slug)


@require_http_methods(["GET", "POST"])
def config(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    project, role = evidence_project_get_for_user(user=request.user, slug=project_slug)
    can_manage = role in MANAGE_ROLES
    if request.method == "POST":
        check_role(role=role, allowed=MANAGE_ROLES)
    registry = registry_active(project)
    current = replay_config_view(registry=registry)
    context = {"project": project, "role": role, "registry": registry, "current": current, "can_manage": can_manage}
    if registry is None:
        status = 409 if request.method == "POST" else 200
        return render_page(request, "verification/config.html", context, partial="config-form", status=status)
    if request.method == "GET":
        form = ReplayConfigForm(initial=ReplayConfigForm.initial_for(current.config), read_only=not can_manage)
        return render_page(request, "verification/config.html", {**context, "form": form})
    form = ReplayConfigForm(request.POST, initial=ReplayConfigForm.initial_for(current.config))
    if form.is_valid():
        try:
            replay_config_set(actor=request.user, registry=registry, **form.values())
        except ValidationError as exc:
            _attach_errors(form, exc)
        else:
            messages.success(request, f"Replay configuration of registry v{registry.version} saved.")
            target = reverse("verification:overview", kwargs={"project_slug": project.slug})
            return HttpResponseClientRedirect(target) if request.htmx else redirect(target)
    context["form"] = form
    return render_page(request, "verification/config.html", context, partial="config-form", status=422)


def _attach_errors(form: forms.Form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for name, errors in exc.message_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


@require_GET
def trajectory_evidence_view(request: AuthenticatedHttpRequest, project_slug: str, trajectory_id: int) -> HttpResponse:
    project, role = evidence_project_get_for_user(user=request.user, slug=project_slug)
    trajectory = trajectory_get_for_user(user=request.user, project=project, role=role, trajectory_id=trajectory_id)
    context = {
        "project": project,
        "role": role,
        "trajectory": trajectory,
        "evidence": trajectory_evidence(trajectory=trajectory, project=project),
    }
    return render_page(request, "verification/trajectory_evidence.html", context)
