from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.forms import MemberForm, ProjectCreateForm, ProjectSettingsForm
from core.http import AuthenticatedHttpRequest, form_add_service_errors, render_page
from core.markdown import render_markdown
from core.models import Membership
from core.selectors import (
    MANAGE_ROLES,
    api_token_created,
    check_project_create,
    check_role,
    project_create_allowed,
    project_get_for_user,
    project_list_for_user,
    project_members,
)
from core.services import (
    api_token_revoke,
    api_token_rotate,
    membership_remove,
    membership_set,
    project_create_managed,
    project_update,
)


@require_GET
def project_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    projects = project_list_for_user(user=request.user).order_by("name")
    context = {"projects": projects, "can_create": project_create_allowed(user=request.user)}
    return render_page(request, "core/project_list.html", context)


@require_http_methods(["GET", "POST"])
def project_new(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Staff, or holders of `core.add_project`, start a project and become its project manager."""
    check_project_create(user=request.user)
    form = ProjectCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = project_create_managed(actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form_add_service_errors(form, exc)
        else:
            messages.success(request, f"Project “{project.name}” created; you are its project manager.")
            return redirect("core:project_settings", project_slug=project.slug)
    return render_page(request, "core/project_new.html", {"form": form}, status=422 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def project_settings(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    """Project managers change the settings the workspace, audit and exports read."""
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=MANAGE_ROLES)
    form = ProjectSettingsForm(request.POST or None, initial=ProjectSettingsForm.initial_for(project))
    if request.method == "POST" and form.is_valid():
        version = project.guideline_version
        try:
            project_update(actor=request.user, project=project, changes=form.changes(project))
        except ValidationError as exc:
            form_add_service_errors(form, exc)
        else:
            bumped = (
                f" Guidelines are now version {project.guideline_version}."
                if project.guideline_version > version
                else ""
            )
            messages.success(request, f"Settings saved.{bumped}")
            return redirect("core:project_settings", project_slug=project.slug)
    context = {"project": project, "role": role, "form": form}
    return render_page(request, "core/project_settings.html", context, status=422 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def member_list(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    """Project managers add people, change their role, or remove them."""
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=MANAGE_ROLES)
    form = MemberForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        membership_set(
            actor=request.user, project=project, user=form.cleaned_data["username"], role=form.cleaned_data["role"]
        )
        messages.success(
            request, f"{form.cleaned_data['username'].username} is now {form.cleaned_data['role'].replace('_', ' ')}."
        )
        return redirect("core:member_list", project_slug=project.slug)
    context = {"project": project, "role": role, "form": form, "members": project_members(project=project)}
    return render_page(request, "core/member_list.html", context, status=422 if form.errors else 200)


@require_POST
def member_remove(request: AuthenticatedHttpRequest, project_slug: str, membership_id: int) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=MANAGE_ROLES)
    membership = get_object_or_404(Membership, pk=membership_id, project=project)
    if membership.user_id == request.user.pk:
        messages.error(request, "You cannot remove yourself; ask another project manager.")
    else:
        membership_remove(actor=request.user, membership=membership)
        messages.success(request, f"{membership.user.username} was removed from the project.")
    return redirect("core:member_list", project_slug=project.slug)


@never_cache
@require_http_methods(["GET", "POST"])
def api_token(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The signed-in person's token for scripts (`Authorization: Token <key>`): made or replaced, shown once
    in the answer to that POST and never again; or revoked."""
    key = ""
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "rotate":
            key = api_token_rotate(user=request.user).key
        elif action == "revoke":
            if api_token_revoke(user=request.user):
                messages.success(request, "Your API token was revoked; scripts that used it are refused from now on.")
            return redirect("core:api_token")
        else:
            messages.error(request, "Choose “Make a new token” or “Revoke”.")
            return redirect("core:api_token")
    context = {"key": key, "created": api_token_created(user=request.user)}
    return render_page(request, "core/api_token.html", context)


@require_GET
def project_guidelines(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    """The project's annotation guidelines (sanitised Markdown), for every member."""
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    context = {"project": project, "role": role, "guidelines": render_markdown(project.guidelines)}
    return render_page(request, "core/guidelines.html", context)


@login_not_required
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness and database reachability, for the container health check."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
