"""Reads of tool registries: who may see them, and the drift between two versions."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from django.db.models import Count, QuerySet, Subquery
from django.http import Http404

from core.models import Project
from core.selectors import REVIEW_ROLES, check_role
from trajectories.models import Tool, ToolRegistry

# Project managers edit; reviewers and QA leads may look; annotators get 403, outsiders 404.
REGISTRY_VIEW_ROLES = REVIEW_ROLES
MAX_DIFF_DEPTH = 12


def registry_list_for_user(*, project: Project, role: str) -> QuerySet[ToolRegistry]:
    check_role(role=role, allowed=REGISTRY_VIEW_ROLES)
    return ToolRegistry.objects.filter(project=project).annotate(tool_count=Count("tools")).order_by("-version")


def registry_get_for_user(*, project: Project, role: str, version: int) -> ToolRegistry:
    registry = registry_list_for_user(project=project, role=role).filter(version=version).first()
    if registry is None:
        raise Http404("No such registry version.")
    return registry


def registry_tools(*, registry: ToolRegistry) -> QuerySet[Tool]:
    return Tool.objects.filter(registry=registry).order_by("name")


def tool_get_for_user(*, project: Project, role: str, version: int, tool_id: int) -> Tool:
    check_role(role=role, allowed=REGISTRY_VIEW_ROLES)
    tool = (
        Tool.objects.filter(pk=tool_id, registry__project=project, registry__version=version)
        .select_related("registry")
        .first()
    )
    if tool is None:
        raise Http404("No such tool.")
    return tool


def frozen_registries(project: Project | int) -> QuerySet[ToolRegistry]:
    """The project's frozen registries, newest first: the first is the active one."""
    project_id = project if isinstance(project, int) else project.pk
    return ToolRegistry.objects.filter(project_id=project_id, frozen_at__isnull=False).order_by("-version")


def registry_active(project: Project | int) -> ToolRegistry | None:
    """The project's latest frozen registry (None while none is frozen)."""
    return frozen_registries(project).first()


def active_registry_id_subquery(project_ref: Any) -> Subquery:
    """The active registry's id as a subquery (None while none is frozen), for `project_ref` (an OuterRef)."""
    return Subquery(
        ToolRegistry.objects.filter(project_id=project_ref, frozen_at__isnull=False)
        .order_by("-version")
        .values("pk")[:1]
    )


def active_registry_tools_query(project: Project | int) -> QuerySet[Tool]:
    """The active registry's tools, in one query (a subquery picks the registry)."""
    return Tool.objects.filter(registry__in=frozen_registries(project).values("pk")[:1])


def project_can_hand_out_work(project: Project) -> bool:
    """Annotation work is handed out only once the project has a frozen tool registry."""
    return frozen_registries(project).exists()


# --- drift -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Retyped:
    path: str
    before: str
    after: str


@dataclass(slots=True)
class ToolDrift:
    name: str
    params_added: list[str] = field(default_factory=list)
    params_removed: list[str] = field(default_factory=list)
    params_retyped: list[Retyped] = field(default_factory=list)
    required_added: list[str] = field(default_factory=list)
    required_removed: list[str] = field(default_factory=list)
    description_changed: bool = False
    returns_changed: bool = False
    side_effects: tuple[str, str] | None = None
    latency_p99_ms: tuple[int | None, int | None] | None = None

    @property
    def breaking(self) -> bool:
        """A call valid against the old version may be invalid against the new one."""
        return bool(self.params_removed or self.params_retyped or self.required_added)

    def __bool__(self) -> bool:
        return bool(
            self.params_added
            or self.params_removed
            or self.params_retyped
            or self.required_added
            or self.required_removed
            or self.description_changed
            or self.returns_changed
            or self.side_effects
            or self.latency_p99_ms
        )


@dataclass(slots=True)
class RegistryDrift:
    before: int
    after: int
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[ToolDrift] = field(default_factory=list)
    unchanged: int = 0

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for tool, drift in zip(data["changed"], self.changed, strict=True):
            tool["breaking"] = drift.breaking
        return data

    def as_text(self) -> str:
        lines = [f"registry v{self.before} → v{self.after}"]
        if self.is_empty:
            lines.append("  no drift")
        lines += [f"+ tool {name}" for name in self.added]
        lines += [f"- tool {name}" for name in self.removed]
        for tool in self.changed:
            lines.append(f"~ tool {tool.name}{' (breaking)' if tool.breaking else ''}")
            lines += [f"    + parameter {p}" for p in tool.params_added]
            lines += [f"    - parameter {p}" for p in tool.params_removed]
            lines += [f"    ~ parameter {r.path}: {r.before} → {r.after}" for r in tool.params_retyped]
            lines += [f"    + required {p}" for p in tool.required_added]
            lines += [f"    - required {p}" for p in tool.required_removed]
            if tool.description_changed:
                lines.append("    ~ description")
            if tool.returns_changed:
                lines.append("    ~ returns schema")
            if tool.side_effects:
                lines.append(f"    ~ side effects: {tool.side_effects[0]} → {tool.side_effects[1]}")
            if tool.latency_p99_ms:
                lines.append(f"    ~ latency p99: {tool.latency_p99_ms[0]} → {tool.latency_p99_ms[1]} ms")
        if self.unchanged:
            lines.append(f"  {self.unchanged} tool{'s' if self.unchanged != 1 else ''} unchanged")
        return "\n".join(lines) + "\n"


def _type_of(schema: Any) -> str:
    if not isinstance(schema, dict):
        return "any" if schema is True or schema is None else "never" if schema is False else "?"
    kind = schema.get("type")
    if isinstance(kind, list):
        return "|".join(sorted(str(k) for k in kind))
    if isinstance(kind, str):
        return kind
    if isinstance(schema.get("$ref"), str):
        return "ref " + schema["$ref"].rsplit("/", 1)[-1]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list):
            return f"{key}({', '.join(_type_of(s) for s in schema[key])})"
    if "enum" in schema:
        return "enum"
    if "const" in schema:
        return "const"
    return "any"


def _flatten(schema: Any, prefix: str = "", depth: int = 0) -> tuple[dict[str, str], set[str]]:
    """(parameter path → type, required paths) of an object schema, nested objects and array items included."""
    types: dict[str, str] = {}
    required: set[str] = set()
    if not isinstance(schema, dict) or depth > MAX_DIFF_DEPTH:
        return types, required
    properties = schema.get("properties")
    if isinstance(properties, dict):
        listed = schema.get("required")
        names = set(listed) if isinstance(listed, list) else set()
        for name, sub in properties.items():
            path = f"{prefix}.{name}" if prefix else str(name)
            types[path] = _type_of(sub)
            if name in names:
                required.add(path)
            inner_types, inner_required = _flatten(sub, path, depth + 1)
            types.update(inner_types)
            required |= inner_required
    items = schema.get("items")
    if isinstance(items, dict) and prefix:
        inner_types, inner_required = _flatten(items, prefix + "[]", depth + 1)
        types.update(inner_types)
        required |= inner_required
    return types, required


def _tool_drift(old: Tool, new: Tool) -> ToolDrift:
    old_types, old_required = _flatten(old.parameters)
    new_types, new_required = _flatten(new.parameters)
    drift = ToolDrift(name=new.name)
    drift.params_added = sorted(set(new_types) - set(old_types))
    drift.params_removed = sorted(set(old_types) - set(new_types))
    drift.params_retyped = [
        Retyped(path, old_types[path], new_types[path])
        for path in sorted(set(old_types) & set(new_types))
        if old_types[path] != new_types[path]
    ]
    drift.required_added = sorted(new_required - old_required)
    drift.required_removed = sorted(old_required - new_required)
    drift.description_changed = old.description != new.description
    drift.returns_changed = old.returns != new.returns
    if old.side_effects != new.side_effects:
        drift.side_effects = (old.side_effects, new.side_effects)
    if old.latency_p99_ms != new.latency_p99_ms:
        drift.latency_p99_ms = (old.latency_p99_ms, new.latency_p99_ms)
    return drift


def registry_diff(a: ToolRegistry, b: ToolRegistry) -> RegistryDrift:
    """What changed from registry `a` to registry `b`: tools added / removed, and per tool what drifted."""
    old = {tool.name: tool for tool in registry_tools(registry=a)}
    new = {tool.name: tool for tool in registry_tools(registry=b)}
    result = RegistryDrift(before=a.version, after=b.version)
    result.added = sorted(set(new) - set(old))
    result.removed = sorted(set(old) - set(new))
    for name in sorted(set(old) & set(new)):
        drift = _tool_drift(old[name], new[name])
        if drift:
            result.changed.append(drift)
        else:
            result.unchanged += 1
    return result


# --- display ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParamRow:
    name: str
    type: str
    required: bool


@dataclass(frozen=True, slots=True)
class ToolRow:
    tool: Tool
    params: list[ParamRow]
    returns_type: str


def tool_row(tool: Tool) -> ToolRow:
    schema = tool.parameters if isinstance(tool.parameters, dict) else {}
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    listed = schema.get("required")
    required = set(listed) if isinstance(listed, list) else set()
    params = [ParamRow(str(name), _type_of(sub), name in required) for name, sub in (properties or {}).items()]
    return ToolRow(tool=tool, params=params, returns_type=_type_of(tool.returns) if tool.returns is not None else "")


def registry_tool_rows(*, registry: ToolRegistry) -> list[ToolRow]:
    return [tool_row(tool) for tool in registry_tools(registry=registry)]
