"""Tool registries: create a version from tool specs, then freeze it (hashed, immutable)."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from core.models import Project
from core.services import UserLike, audit_record
from trajectories.models import SideEffects, Tool, ToolRegistry

CANONICAL_KEYS = ("name", "description", "parameters", "returns", "side_effects", "latency_p99_ms")


def tool_from_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A flat tool dict from an OpenAI function-tool spec ({type, function, …metadata}) or a flat one."""
    nested = spec.get("function")
    function: dict[str, Any] = nested if isinstance(nested, dict) else spec
    return {
        "name": function.get("name", ""),
        "description": function.get("description", ""),
        "parameters": function.get("parameters") or {"type": "object", "properties": {}},
        "returns": spec.get("returns", function.get("returns")),
        "side_effects": spec.get("side_effects", SideEffects.READ),
        "latency_p99_ms": spec.get("latency_p99_ms"),
    }


def _check_tool(tool: dict[str, Any], index: int, seen: set[str]) -> None:
    name = tool["name"]
    if not isinstance(name, str) or not name.strip():
        raise ValidationError({"tools": f"tool #{index}: a tool needs a name"})
    if name in seen:
        raise ValidationError({"tools": f"tool {name!r}: the name appears twice"})
    seen.add(name)
    if tool["side_effects"] not in SideEffects.values:
        raise ValidationError({"tools": f"tool {name!r}: side_effects must be one of {', '.join(SideEffects.values)}"})
    latency = tool["latency_p99_ms"]
    if latency is not None and (isinstance(latency, bool) or not isinstance(latency, int) or latency < 0):
        raise ValidationError({"tools": f"tool {name!r}: latency_p99_ms must be a non-negative integer"})
    for field in ("parameters", "returns"):
        schema = tool[field]
        if schema is None:
            continue
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            pointer = "/" + "/".join(str(p) for p in exc.path) if exc.path else "/"
            raise ValidationError(
                {"tools": f"tool {name!r}: invalid {field} schema at {pointer}: {exc.message}"}
            ) from None


def registry_sha256(tools: list[dict[str, Any]]) -> str:
    """sha256 of the canonical JSON (sorted keys) of the tools, sorted by name."""
    canonical = sorted(({key: tool.get(key) for key in CANONICAL_KEYS} for tool in tools), key=lambda t: str(t["name"]))
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


@transaction.atomic
def registry_create(
    *,
    actor: UserLike,
    project: Project,
    tools: list[dict[str, Any]],
    name: str = "",
    source_format: str = "openai_tools",
) -> ToolRegistry:
    """A new, unfrozen registry version (previous max + 1) holding `tools`."""
    flat = [tool_from_spec(spec) for spec in tools]
    seen: set[str] = set()
    for index, tool in enumerate(flat):
        _check_tool(tool, index, seen)
    Project.objects.select_for_update().filter(pk=project.pk).first()  # serialise version numbers per project
    latest = ToolRegistry.objects.filter(project=project).aggregate(v=Max("version"))["v"] or 0
    registry = ToolRegistry.objects.create(project=project, version=latest + 1, name=name, source_format=source_format)
    Tool.objects.bulk_create([Tool(registry=registry, **tool) for tool in flat])
    audit_record(
        actor=actor,
        verb="registry.create",
        target=registry,
        project=project,
        after={"version": registry.version, "name": name, "tools": sorted(seen)},
    )
    return registry


@transaction.atomic
def registry_freeze(*, actor: UserLike, registry: ToolRegistry) -> ToolRegistry:
    """Freeze a registry: stamp it and hash its tools. A frozen registry never changes again."""
    registry = ToolRegistry.objects.select_for_update().get(pk=registry.pk)
    if registry.is_frozen:
        raise ValidationError(f"registry v{registry.version} is already frozen")
    tools = list(registry.tools.values(*CANONICAL_KEYS))
    if not tools:
        raise ValidationError(f"registry v{registry.version} has no tools to freeze")
    registry.sha256 = registry_sha256(tools)
    registry.frozen_at = timezone.now()
    registry.save(update_fields=["sha256", "frozen_at"])
    audit_record(
        actor=actor,
        verb="registry.freeze",
        target=registry,
        project=registry.project,
        after={"version": registry.version, "sha256": registry.sha256, "tools": len(tools)},
    )
    return registry
