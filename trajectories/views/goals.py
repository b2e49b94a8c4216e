"""Goal seeding pages: goals (list, create, edit, bulk import), balance, SWE tasks and contamination."""

from __future__ import annotations

from typing import Any

import orjson
from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from core.http import AuthenticatedHttpRequest, form_add_service_errors, render_page
from core.selectors import MANAGE_ROLES, check_role, project_get_for_user
from trajectories.models import Band, Goal
from trajectories.selectors.goals import (
    GoalFilters,
    SweTaskFilters,
    goal_balance,
    goal_get_for_user,
    goal_list_for_user,
    goal_tag_choices,
    leak_lists_for_user,
    swe_task_counts,
    swe_task_get_for_user,
    swe_task_list_for_user,
)
from trajectories.services import goals as goal_services
from trajectories.services import swe_tasks as swe_services

PAGE_SIZE = 50


# ---------------------------------------------------------------- forms


def _json_field(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(
        label=label, required=False, help_text=help_text, widget=forms.Textarea(attrs={"rows": 4, "class": "mono"})
    )


class GoalForm(forms.Form):
    external_id = forms.CharField(label="External id", required=False, max_length=200)
    prompt = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), strip=False)
    band = forms.ChoiceField(choices=[("", "No band"), *Band.choices], required=False)
    tags = forms.CharField(required=False, help_text="Capability tags, separated by commas.")
    expected_actions = _json_field("Expected actions", 'JSON list, e.g. [{"name": "cancel_reservation", "kwargs": {}}]')
    expected_outputs = _json_field("Expected outputs", 'JSON list of strings, e.g. ["327", "1000"]')

    def _json(self, name: str) -> Any:
        text = self.cleaned_data[name].strip()
        if not text:
            return None
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ValidationError(f"not valid JSON: {exc.msg.split(':')[0]} (character {exc.pos + 1})") from None

    def clean_expected_actions(self) -> Any:
        return self._json("expected_actions")

    def clean_expected_outputs(self) -> Any:
        return self._json("expected_outputs")

    def clean_prompt(self) -> str:
        # Browsers send CRLF; runs' goal texts use LF, and a goal is found by its prompt's hash.
        return self.cleaned_data["prompt"].replace("\r\n", "\n")

    def clean_tags(self) -> list[str]:
        return [t for t in self.cleaned_data["tags"].replace(";", ",").split(",") if t.strip()]

    @classmethod
    def for_goal(cls, goal: Goal) -> GoalForm:
        def dump(value: Any) -> str:
            return "" if value is None else orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()

        return cls(
            initial={
                "external_id": goal.external_id,
                "prompt": goal.prompt,
                "band": goal.band,
                "tags": ", ".join(goal.tags),
                "expected_actions": dump(goal.expected_actions),
                "expected_outputs": dump(goal.expected_outputs),
            }
        )


class ImportForm(forms.Form):
    format = forms.ChoiceField(choices=list(goal_services.FORMATS.items()))
    upload = forms.FileField(label="File")
    env = forms.CharField(
        required=False,
        max_length=40,
        help_text="τ-bench only: the environment (airline, retail), part of each goal's id.",
    )
    band = forms.ChoiceField(choices=[("", "No band"), *Band.choices], required=False, help_text="τ-bench only.")
    tags = forms.CharField(required=False, help_text="τ-bench only: tags for every goal, separated by commas.")


class LeakListForm(forms.Form):
    name = forms.CharField(max_length=200)
    upload = forms.FileField(label="File")


class OverrideForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=swe_services.MAX_REASON,
        error_messages={"required": "Say why this task may be annotated despite the match."},
    )


def _done(request: AuthenticatedHttpRequest, name: str, project_slug: str) -> HttpResponse:
    """After a successful write: a redirect, or for HTMX a client-side one (never a page swapped into a form)."""
    url = reverse(name, kwargs={"project_slug": project_slug})
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


# ---------------------------------------------------------------- goals


@require_GET
def goal_list(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    filters = GoalFilters(**{k: request.GET.get(k, "")[:200] for k in GoalFilters.__dataclass_fields__})
    qs = goal_list_for_user(project=project, role=role, filters=filters)
    context = {
        "project": project,
        "role": role,
        "page": Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page")),
        "filters": filters,
        "bands": Band.choices,
        "tags": goal_tag_choices(project=project),
        "query": request.GET.copy(),
        "can_manage": role in MANAGE_ROLES,
    }
    return render_page(request, "trajectories/goals/goal_list.html", context, partial="results")


def _goal_form_page(request: AuthenticatedHttpRequest, project_slug: str, goal_id: int | None) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    goal = goal_get_for_user(project=project, role=role, goal_id=goal_id) if goal_id else None
    check_role(role=role, allowed=MANAGE_ROLES)
    form = GoalForm(request.POST) if request.method == "POST" else GoalForm.for_goal(goal) if goal else GoalForm()
    if request.method == "POST" and form.is_valid():
        try:
            if goal is None:
                goal = goal_services.goal_create(actor=request.user, project=project, **form.cleaned_data)
                messages.success(request, f"Goal #{goal.pk} created.")
            else:
                goal_services.goal_update(actor=request.user, goal=goal, **form.cleaned_data)
                messages.success(request, f"Goal #{goal.pk} saved.")
            return _done(request, "trajectories:goal_list", project.slug)
        except ValidationError as exc:
            form_add_service_errors(form, exc)
    status = 422 if request.method == "POST" else 200
    context = {"project": project, "role": role, "form": form, "goal": goal}
    return render_page(request, "trajectories/goals/goal_form.html", context, partial="form", status=status)


@require_http_methods(["GET", "POST"])
def goal_create(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    return _goal_form_page(request, project_slug, None)


@require_http_methods(["GET", "POST"])
def goal_edit(request: AuthenticatedHttpRequest, project_slug: str, goal_id: int) -> HttpResponse:
    return _goal_form_page(request, project_slug, goal_id)


@require_http_methods(["GET", "POST"])
def goal_import(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=MANAGE_ROLES)
    form = ImportForm(request.POST, request.FILES) if request.method == "POST" else ImportForm()
    report = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            report = goal_services.goals_file_import(
                actor=request.user,
                project=project,
                stream=data["upload"],
                name=data["upload"].name,
                format=data["format"],
                env=data["env"],
                band=data["band"],
                tags=[t for t in data["tags"].replace(";", ",").split(",") if t.strip()],
            )
        except ValidationError as exc:
            form_add_service_errors(form, exc)
    status = 422 if request.method == "POST" and report is None else 200
    context = {"project": project, "role": role, "form": form, "report": report}
    return render_page(request, "trajectories/goals/goal_import.html", context, status=status)


@require_GET
def goal_balance_page(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    context = {"project": project, "role": role, "balance": goal_balance(project=project, role=role)}
    return render_page(request, "trajectories/goals/balance.html", context)


# ---------------------------------------------------------------- SWE tasks and contamination


def _swe_context(request: AuthenticatedHttpRequest, project_slug: str) -> dict[str, Any]:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    filters = SweTaskFilters(**{k: request.GET.get(k, "")[:200] for k in SweTaskFilters.__dataclass_fields__})
    qs = swe_task_list_for_user(project=project, role=role, filters=filters)
    return {
        "project": project,
        "role": role,
        "filters": filters,
        "page": Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page")),
        "query": request.GET.copy(),
        "counts": swe_task_counts(project=project),
        "leak_lists": leak_lists_for_user(project=project, role=role),
        "can_manage": role in MANAGE_ROLES,
        "leak_form": LeakListForm(),
    }


@require_GET
def swe_task_list(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    context = _swe_context(request, project_slug)
    return render_page(request, "trajectories/goals/swe_task_list.html", context, partial="results")


@require_POST
def leak_list_upload(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    context = _swe_context(request, project_slug)
    project = context["project"]
    check_role(role=context["role"], allowed=MANAGE_ROLES)
    form = LeakListForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            leak_list, scan = swe_services.leak_list_upload(
                actor=request.user, project=project, name=form.cleaned_data["name"], stream=form.cleaned_data["upload"]
            )
        except ValidationError as exc:
            form_add_service_errors(form, exc)
        else:
            messages.success(
                request,
                f"Leak list {leak_list.name!r} saved ({leak_list.entry_count} entries). {scan.scanned} SWE tasks"
                f" scanned: {scan.flagged} match a leak list, {len(scan.changed)} changed.",
            )
            return redirect("trajectories:swe_task_list", project_slug=project.slug)
    context["leak_form"] = form
    return render_page(request, "trajectories/goals/swe_task_list.html", context, status=422)


@require_http_methods(["GET", "POST"])
def swe_task_override(request: AuthenticatedHttpRequest, project_slug: str, task_id: int) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    task = swe_task_get_for_user(project=project, role=role, task_id=task_id)
    check_role(role=role, allowed=MANAGE_ROLES)
    form = OverrideForm(request.POST or None, initial={"reason": task.contamination_override})
    if request.method == "POST" and form.is_valid():
        try:
            swe_services.swe_task_override(actor=request.user, task=task, reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            form_add_service_errors(form, exc)
        else:
            messages.success(request, f"{task.instance_id} may be annotated: override recorded.")
            return _done(request, "trajectories:swe_task_list", project.slug)
    status = 422 if request.method == "POST" else 200
    context = {"project": project, "role": role, "task": task, "form": form}
    return render_page(request, "trajectories/goals/swe_task_override.html", context, partial="form", status=status)
