"""Tool registries: build a draft from tool specs or a spec file, edit it, freeze it (hashed, immutable).

A frozen registry never changes again; a change means a new version (`registry_new_version`
copies a frozen registry into a new draft). Every parameters and returns schema is checked
against its JSON Schema meta-schema (the dialect its `$schema` names, 2020-12 by default), and
a bad one is refused with the JSON pointer of the fault.

For the API: `registry_import(actor=…, project=…, name=<file name>, data=<bytes>)` returns the
draft, or raises `RegistryImportError` (a ValidationError) whose `.located` lists every fault as
{file, tool, pointer, message}.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import PurePath
from typing import IO, Any

import orjson
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for

from core.models import Project
from core.services import UserLike, audit_record
from trajectories.formats.base import RecordError
from trajectories.formats.tools import MAX_DOCUMENT_BYTES, ToolSpec, parse_tools
from trajectories.formats.tools.base import pointer_join
from trajectories.models import SideEffects, Tool, ToolRegistry

CANONICAL_KEYS = ("name", "description", "parameters", "returns", "side_effects", "latency_p99_ms")
EDITABLE_FIELDS = ("description", "parameters", "returns", "side_effects", "latency_p99_ms")
MAX_SCHEMA_DEPTH = 64
MAX_ERRORS = 50
MAX_LATENCY_MS = 86_400_000  # a day; the column is a 32-bit integer
_DATA_KEYS = frozenset({"example", "examples", "default", "enum", "const"})


# --- checks ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocatedError:
    """One fault of an uploaded registry: in which file, which tool, where (JSON pointer), and why."""

    message: str
    file: str = ""
    tool: str = ""
    pointer: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        head = " ".join(p for p in (self.tool and f"tool {self.tool!r}", self.pointer and f"at {self.pointer}") if p)
        return ": ".join(p for p in (self.file, head, self.message) if p)


class RegistryImportError(ValidationError):
    """A spec file that cannot become a registry; `.located` holds every fault found."""

    def __init__(self, located: list[LocatedError]) -> None:
        self.located = located
        super().__init__([str(error) for error in located])


def _depth(schema: Any) -> int:
    deepest, todo = 0, [(schema, 1)]
    while todo:
        node, depth = todo.pop()
        deepest = max(deepest, depth)
        if depth > MAX_SCHEMA_DEPTH:
            break
        if isinstance(node, dict):
            todo.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            todo.extend((v, depth + 1) for v in node)
    return deepest


def _refs(node: Any, pointer: str = "") -> Iterator[tuple[str, str]]:
    """(pointer, ref) of every `$ref` in schema positions (data keywords are skipped)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield pointer_join(pointer, "$ref"), ref
        for key, value in node.items():
            if key not in _DATA_KEYS:
                yield from _refs(value, pointer_join(pointer, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _refs(value, pointer_join(pointer, index))


def _resolves(schema: dict[str, Any], ref: str) -> bool:
    node: Any = schema
    for raw in ref[1:].split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def schema_fault(schema: Any) -> tuple[str, str] | None:
    """(JSON pointer inside the schema, why) for the schema's first fault against its meta-schema, else None."""
    if not isinstance(schema, dict):
        return "", f"a schema must be a JSON object, not {type(schema).__name__}"
    if _depth(schema) > MAX_SCHEMA_DEPTH:
        return "", f"the schema nests deeper than {MAX_SCHEMA_DEPTH} levels"
    dialect = schema.get("$schema")
    if dialect is not None and (not isinstance(dialect, str) or validator_for(schema, default=None) is None):
        return "/$schema", f"unknown JSON Schema dialect {dialect!r}; use draft 4, 6, 7, 2019-09 or 2020-12"
    cls = validator_for(schema, default=Draft202012Validator)
    error = best_match(cls(cls.META_SCHEMA, format_checker=cls.FORMAT_CHECKER).iter_errors(schema))
    if error is not None:
        message = error.message if len(error.message) <= 300 else error.message[:297] + "…"
        return pointer_join("", *error.absolute_path) or "/", message
    for at, ref in _refs(schema):
        if ref.startswith("#/") or ref == "#":
            if not _resolves(schema, ref):
                return at, f"$ref {ref!r} points at nothing in the schema"
        elif not ref.startswith("#"):
            return at, f"$ref {ref!r} points outside the schema; a registry holds self-contained schemas"
    return None


def _tool_faults(tool: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(field, pointer inside the field, why) for every fault of a tool's editable fields."""
    faults: list[tuple[str, str, str]] = []
    if tool["side_effects"] not in SideEffects.values:
        faults.append(("side_effects", "", f"must be one of {', '.join(SideEffects.values)}"))
    latency = tool["latency_p99_ms"]
    if latency is not None and (
        isinstance(latency, bool) or not isinstance(latency, int) or not 0 <= latency <= MAX_LATENCY_MS
    ):
        faults.append(("latency_p99_ms", "", f"must be a whole number of milliseconds, 0 to {MAX_LATENCY_MS}"))
    if not isinstance(tool["description"], str):
        faults.append(("description", "", "must be text"))
    for field in ("parameters", "returns"):
        if tool[field] is None and field == "returns":
            continue
        fault = schema_fault(tool[field])
        if fault is not None:
            faults.append((field, fault[0], f"invalid {field} schema at {fault[0] or '/'}: {fault[1]}"))
    return faults


def _spec_errors(specs: list[ToolSpec], *, file: str) -> list[LocatedError]:
    errors: list[LocatedError] = []
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.name in seen:
            errors.append(
                LocatedError(f"the name is used twice (first at {seen[spec.name]})", file, spec.name, spec.pointer)
            )
        seen.setdefault(spec.name, spec.pointer or "/")
        if len(spec.name) > 200:
            errors.append(LocatedError("the name is longer than 200 characters", file, spec.name[:60], spec.pointer))
        for field, inner, message in _tool_faults(spec.as_dict()):
            base = {"parameters": spec.parameters_pointer, "returns": spec.returns_pointer}.get(field, "")
            pointer = base + (inner if inner != "/" else "") if base else spec.pointer
            errors.append(LocatedError(message, file, spec.name, pointer))
    return errors


# --- hashing ---------------------------------------------------------------------------------------


def registry_canonical_json(tools: list[dict[str, Any]]) -> bytes:
    """The canonical JSON of a registry: its tools' canonical keys, tools sorted by name, keys sorted."""
    canonical = sorted(({key: tool.get(key) for key in CANONICAL_KEYS} for tool in tools), key=lambda t: str(t["name"]))
    return orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)


def registry_sha256(tools: list[dict[str, Any]]) -> str:
    """sha256 of the canonical JSON (sorted keys) of the tools, sorted by name."""
    return hashlib.sha256(registry_canonical_json(tools)).hexdigest()


# --- writes ----------------------------------------------------------------------------------------


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


def _registry_store(*, project: Project, name: str, source_format: str, tools: list[dict[str, Any]]) -> ToolRegistry:
    Project.objects.select_for_update().filter(pk=project.pk).first()  # serialise version numbers per project
    latest = ToolRegistry.objects.filter(project=project).aggregate(v=Max("version"))["v"] or 0
    registry = ToolRegistry.objects.create(
        project=project, version=latest + 1, name=name[:200], source_format=source_format[:40]
    )
    Tool.objects.bulk_create([Tool(registry=registry, **{k: tool[k] for k in CANONICAL_KEYS}) for tool in tools])
    return registry


@transaction.atomic
def registry_create(
    *,
    actor: UserLike,
    project: Project,
    tools: list[dict[str, Any]],
    name: str = "",
    source_format: str = "openai_tools",
) -> ToolRegistry:
    """A new, unfrozen registry version (previous max + 1) holding `tools` (OpenAI-style specs)."""
    flat = [tool_from_spec(spec) for spec in tools]
    seen: set[str] = set()
    problems: list[str] = []
    for index, tool in enumerate(flat):
        tool_name = tool["name"]
        if not isinstance(tool_name, str) or not tool_name.strip():
            problems.append(f"tool #{index}: a tool needs a name")
            continue
        if tool_name in seen:
            problems.append(f"tool {tool_name!r}: the name appears twice")
        seen.add(tool_name)
        problems.extend(f"tool {tool_name!r}: {message}" for _, _, message in _tool_faults(tool))
    if problems:
        raise ValidationError({"tools": problems[:MAX_ERRORS]})
    registry = _registry_store(project=project, name=name, source_format=source_format, tools=flat)
    audit_record(
        actor=actor,
        verb="registry.create",
        target=registry,
        project=project,
        after={"version": registry.version, "name": name, "tools": sorted(seen)},
    )
    return registry


@transaction.atomic
def registry_import(
    *,
    actor: UserLike,
    project: Project,
    name: str,
    stream: IO[bytes] | None = None,
    data: bytes | None = None,
    format_name: str = "",
    registry_name: str = "",
) -> ToolRegistry:
    """A new draft registry from a tool-spec file (OpenAI tools, OpenAPI 3.0/3.1, MCP tools/list, τ-bench).

    `name` is the file's name (used in error messages, and as the registry's name unless
    `registry_name` is given); pass the content as `stream` or `data`. Nothing is written unless
    every tool is valid; otherwise RegistryImportError lists each fault with its location.
    """
    if (stream is None) == (data is None):
        raise TypeError("pass exactly one of stream or data")
    content = data if data is not None else stream.read(MAX_DOCUMENT_BYTES + 1)  # type: ignore[union-attr]
    try:
        fmt, specs = parse_tools(content, format_name)
    except RecordError as exc:
        raise RegistryImportError([LocatedError(exc.message, file=name, pointer=exc.pointer)]) from None
    if not specs:
        raise RegistryImportError([LocatedError("the file holds no tools", file=name)])
    errors = _spec_errors(specs, file=name)
    if errors:
        raise RegistryImportError(errors[:MAX_ERRORS])
    registry = _registry_store(
        project=project,
        name=registry_name.strip() or PurePath(name).stem,
        source_format=fmt.name,
        tools=[spec.as_dict() for spec in specs],
    )
    audit_record(
        actor=actor,
        verb="registry.import",
        target=registry,
        project=project,
        after={"version": registry.version, "file": name, "format": fmt.name, "tools": [s.name for s in specs]},
    )
    return registry


@transaction.atomic
def tool_update(
    *,
    actor: UserLike,
    tool: Tool,
    description: str,
    parameters: Any,
    returns: Any,
    side_effects: str,
    latency_p99_ms: int | None,
) -> Tool:
    """Change a tool of a draft registry. Refused once the registry is frozen, or with the fault's pointer."""
    registry = ToolRegistry.objects.select_for_update().get(pk=tool.registry_id)
    if registry.is_frozen:
        raise ValidationError(
            f"registry v{registry.version} is frozen and cannot change; start a new version to edit its tools"
        )
    tool = Tool.objects.get(pk=tool.pk)
    after = {
        "description": description,
        "parameters": parameters,
        "returns": returns,
        "side_effects": side_effects,
        "latency_p99_ms": latency_p99_ms,
    }
    faults = _tool_faults(after)
    if faults:
        raise ValidationError({field: message for field, _, message in faults})
    changed = [field for field in EDITABLE_FIELDS if getattr(tool, field) != after[field]]
    if not changed:
        return tool
    before = {field: getattr(tool, field) for field in changed}
    for field in changed:
        setattr(tool, field, after[field])
    tool.save(update_fields=changed)
    audit_record(
        actor=actor,
        verb="tool.update",
        target=tool,
        project=registry.project,
        before={"registry_version": registry.version, "name": tool.name, **before},
        after={field: after[field] for field in changed},
    )
    return tool


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


@transaction.atomic
def registry_new_version(*, actor: UserLike, registry: ToolRegistry) -> ToolRegistry:
    """A new draft (next version number) holding a copy of a frozen registry's tools."""
    source = ToolRegistry.objects.select_related("project").get(pk=registry.pk)
    if not source.is_frozen:
        raise ValidationError(f"registry v{source.version} is still a draft: edit it rather than copy it")
    tools = list(source.tools.values(*CANONICAL_KEYS))
    draft = _registry_store(project=source.project, name=source.name, source_format=source.source_format, tools=tools)
    audit_record(
        actor=actor,
        verb="registry.new_version",
        target=draft,
        project=source.project,
        after={"version": draft.version, "from_version": source.version, "from_sha256": source.sha256},
    )
    return draft
