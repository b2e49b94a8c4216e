from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.forms import MemberForm
from core.http import AuthenticatedHttpRequest, render_page
from core.models import Membership
from core.selectors import (
    MANAGE_ROLES,
    api_token_created,
    check_role,
    project_get_for_user,
    project_list_for_user,
    project_members,
)
from core.services import api_token_revoke, api_token_rotate, membership_remove, membership_set


@require_GET
def project_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    projects = project_list_for_user(user=request.user).order_by("name")
    return render_page(request, "core/project_list.html", {"projects": projects})


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


@login_not_required
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness and database reachability, for the container health check."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
