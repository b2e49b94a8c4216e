"""Tool registry pages: versions, upload, tools (edit until frozen), freeze, new version, drift."""

from __future__ import annotations

from typing import Any

import orjson
from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from core.http import AuthenticatedHttpRequest, render_page
from core.models import Project
from core.selectors import MANAGE_ROLES, check_role, project_get_for_user
from trajectories.formats.tools import TOOL_FORMATS
from trajectories.models import SideEffects, Tool, ToolRegistry
from trajectories.selectors.registries import (
    registry_diff,
    registry_get_for_user,
    registry_list_for_user,
    registry_tool_rows,
    tool_get_for_user,
    tool_row,
)
from trajectories.services.registries import (
    CANONICAL_KEYS,
    RegistryImportError,
    registry_canonical_json,
    registry_freeze,
    registry_import,
    registry_new_version,
    registry_sha256,
    tool_update,
)


class RegistryUploadForm(forms.Form):
    upload = forms.FileField(label="Spec file")
    name = forms.CharField(max_length=200, required=False)
    format = forms.ChoiceField(
        choices=[("", "Detect the format"), *((name, fmt.label) for name, fmt in TOOL_FORMATS.items())],
        required=False,
    )


def _json_field(text: str, *, required: bool) -> Any:
    if not text.strip():
        if required:
            raise ValidationError("a JSON Schema is required")
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None


class ToolEditForm(forms.Form):
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, strip=False)
    parameters = forms.CharField(widget=forms.Textarea(attrs={"rows": 14, "class": "mono"}), strip=False)
    returns = forms.CharField(widget=forms.Textarea(attrs={"rows": 6, "class": "mono"}), required=False, strip=False)
    side_effects = forms.ChoiceField(choices=SideEffects.choices)
    latency_p99_ms = forms.IntegerField(min_value=0, required=False, label="Latency p99 (ms)")

    def clean_parameters(self) -> Any:
        return _json_field(self.cleaned_data["parameters"], required=True)

    def clean_returns(self) -> Any:
        return _json_field(self.cleaned_data["returns"], required=False)

    @classmethod
    def for_tool(cls, tool: Tool) -> ToolEditForm:
        def pretty(value: Any) -> str:
            return "" if value is None else orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()

        return cls(
            initial={
                "description": tool.description,
                "parameters": pretty(tool.parameters),
                "returns": pretty(tool.returns),
                "side_effects": tool.side_effects,
                "latency_p99_ms": tool.latency_p99_ms,
            }
        )


def _detail_url(project: Project, registry: ToolRegistry) -> str:
    return reverse("trajectories:registry_detail", kwargs={"project_slug": project.slug, "version": registry.version})


@require_GET
def registry_list(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    registries = registry_list_for_user(project=project, role=role)
    context = {"project": project, "role": role, "registries": registries, "can_manage": role in MANAGE_ROLES}
    context["active"] = next((r.version for r in registries if r.is_frozen), None)
    return render_page(request, "trajectories/registries/list.html", {**context, "form": RegistryUploadForm()})


@require_POST
def registry_upload(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=MANAGE_ROLES)
    form = RegistryUploadForm(request.POST, request.FILES)
    errors: list[Any] = []
    if form.is_valid():
        upload = form.cleaned_data["upload"]
        try:
            registry = registry_import(
                actor=request.user,
                project=project,
                name=upload.name,
                stream=upload,
                format_name=form.cleaned_data["format"],
                registry_name=form.cleaned_data["name"],
            )
        except RegistryImportError as exc:
            errors = exc.located
        else:
            messages.success(request, f"Registry v{registry.version} created as a draft from {upload.name}.")
            return redirect(_detail_url(project, registry))
    registries = registry_list_for_user(project=project, role=role)
    context = {"project": project, "role": role, "registries": registries, "can_manage": True}
    context |= {"form": form, "errors": errors, "active": next((r.version for r in registries if r.is_frozen), None)}
    return render_page(request, "trajectories/registries/list.html", context, status=422)


@require_GET
def registry_detail(request: AuthenticatedHttpRequest, project_slug: str, version: int) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    registry = registry_get_for_user(project=project, role=role, version=version)
    context = {
        "project": project,
        "role": role,
        "registry": registry,
        "rows": registry_tool_rows(registry=registry),
        "can_manage": role in MANAGE_ROLES,
        "can_edit": role in MANAGE_ROLES and not registry.is_frozen,
    }
    return render_page(request, "trajectories/registries/detail.html", context)


@require_http_methods(["GET", "POST"])
def tool_edit(request: AuthenticatedHttpRequest, project_slug: str, version: int, tool_id: int) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=MANAGE_ROLES)
    tool = tool_get_for_user(project=project, role=role, version=version, tool_id=tool_id)
    status = 200
    if request.method == "GET":
        if tool.registry.is_frozen:
            messages.error(request, f"Registry v{version} is frozen; start a new version to change its tools.")
            url = _detail_url(project, tool.registry)
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
        form = ToolEditForm.for_tool(tool)
    else:
        form = ToolEditForm(request.POST)
        if form.is_valid():
            try:
                tool = tool_update(actor=request.user, tool=tool, **form.cleaned_data)
            except ValidationError as exc:
                _attach_errors(form, exc)
            else:
                if request.htmx:
                    context = {"project": project, "registry": tool.registry, "row": tool_row(tool), "can_edit": True}
                    return render_page(request, "trajectories/registries/detail.html#tool-row", context)
                messages.success(request, f"Tool {tool.name} saved.")
                return redirect(_detail_url(project, tool.registry))
        status = 422
    context = {"project": project, "role": role, "registry": tool.registry, "tool": tool, "form": form}
    return render_page(request, "trajectories/registries/tool_edit.html", context, partial="tool-form", status=status)


def _attach_errors(form: forms.Form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


@require_http_methods(["GET", "POST"])
def registry_freeze_view(request: AuthenticatedHttpRequest, project_slug: str, version: int) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=MANAGE_ROLES)
    registry = registry_get_for_user(project=project, role=role, version=version)
    if request.method == "POST":
        try:
            registry = registry_freeze(actor=request.user, registry=registry)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"Registry v{registry.version} frozen · sha256 {registry.sha256}.")
        return redirect(_detail_url(project, registry))
    tools = list(registry.tools.values(*CANONICAL_KEYS))
    context = {"project": project, "role": role, "registry": registry, "tool_count": len(tools)}
    context["sha256"] = registry_sha256(tools) if tools else ""
    return render_page(request, "trajectories/registries/freeze.html", context)


@require_POST
def registry_new_version_view(request: AuthenticatedHttpRequest, project_slug: str, version: int) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=MANAGE_ROLES)
    registry = registry_get_for_user(project=project, role=role, version=version)
    try:
        draft = registry_new_version(actor=request.user, registry=registry)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(_detail_url(project, registry))
    messages.success(request, f"Registry v{draft.version} started as a draft copy of v{registry.version}.")
    return redirect(_detail_url(project, draft))


@require_GET
def registry_canonical(request: AuthenticatedHttpRequest, project_slug: str, version: int) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    registry = registry_get_for_user(project=project, role=role, version=version)
    body = registry_canonical_json(list(registry.tools.values(*CANONICAL_KEYS)))
    response = HttpResponse(body, content_type="application/json")
    response["Content-Disposition"] = f'inline; filename="{project.slug}-registry-v{version}.json"'
    return response


def _version_param(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 10 else None


@require_GET
def registry_drift(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    versions = list(registry_list_for_user(project=project, role=role).values_list("version", flat=True))
    after = _version_param(request.GET.get("b")) or (versions[0] if versions else None)
    before = _version_param(request.GET.get("a")) or next((v for v in versions if after and v < after), None)
    drift = None
    if before is not None and after is not None:
        a = registry_get_for_user(project=project, role=role, version=before)
        b = registry_get_for_user(project=project, role=role, version=after)
        drift = registry_diff(a, b)
        if request.GET.get("format") == "json":
            return JsonResponse(drift.as_dict(), json_dumps_params={"ensure_ascii": False})
        if request.GET.get("format") == "text":
            return HttpResponse(drift.as_text(), content_type="text/plain; charset=utf-8")
    context = {"project": project, "role": role, "versions": versions, "a": before, "b": after, "drift": drift}
    return render_page(request, "trajectories/registries/drift.html", context)
