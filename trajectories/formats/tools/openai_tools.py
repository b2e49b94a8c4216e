"""OpenAI function tools: the `tools` list of a Chat Completions request, or the older `functions` list.

Accepted documents: a list of tools; `{"tools": [...]}`; `{"functions": [...]}`. A tool is
`{"type": "function", "function": {name, description, parameters}}` or the flat form
`{name, description, parameters}` (legacy functions, Responses API). The registry's own keys
(`side_effects`, `latency_p99_ms`, `returns`, or `x-` spellings) may sit beside `function` or in it.
"""

from __future__ import annotations

from typing import Any

from trajectories.formats.tools.base import (
    ToolSpec,
    empty_object_schema,
    located,
    metadata_of,
    pointer_join,
    text_of,
)


def _is_openai_item(item: Any) -> bool:
    if not isinstance(item, dict) or "inputSchema" in item:
        return False
    if isinstance(item.get("function"), dict):
        return True
    return isinstance(item.get("name"), str) and ("parameters" in item or item.get("type") == "function")


def tool_list(document: Any) -> tuple[list[Any], str] | None:
    """The list of tools and its pointer, for the shapes this format accepts."""
    if isinstance(document, list):
        return document, ""
    if isinstance(document, dict):
        for key in ("tools", "functions"):
            if isinstance(document.get(key), list):
                return document[key], pointer_join("", key)
    return None


def spec_from_openai(item: Any, pointer: str, *, default_side_effects: str = "read") -> ToolSpec:
    """One OpenAI function tool (nested or flat) as a ToolSpec."""
    if not isinstance(item, dict):
        raise located(f"a tool must be a JSON object, not {type(item).__name__}", pointer)
    nested = item.get("function")
    if nested is not None and not isinstance(nested, dict):
        raise located("`function` must be a JSON object", pointer_join(pointer, "function"))
    kind = item.get("type", "function")
    if kind != "function":
        raise located(f"only function tools can be registered, not type {kind!r}", pointer_join(pointer, "type"))
    function: dict[str, Any] = nested if nested is not None else item
    base = pointer_join(pointer, "function") if nested is not None else pointer
    name = function.get("name")
    if not isinstance(name, str) or not name.strip():
        raise located("a tool needs a name (a non-empty string)", pointer_join(base, "name"))
    parameters = function.get("parameters")
    parameters_pointer = pointer_join(base, "parameters")
    if parameters is None:
        parameters, parameters_pointer = empty_object_schema(), ""
    meta = metadata_of(item, function)
    return ToolSpec(
        name=name.strip(),
        description=text_of(function.get("description")),
        parameters=parameters,
        returns=meta.get("returns"),
        side_effects=meta.get("side_effects", default_side_effects),
        latency_p99_ms=meta.get("latency_p99_ms"),
        pointer=pointer,
        parameters_pointer=parameters_pointer,
        returns_pointer=pointer_join(pointer, "returns") if "returns" in item else pointer_join(base, "returns"),
    )


class OpenAIToolsFormat:
    name = "openai_tools"
    label = "OpenAI tools / functions list"

    def detect(self, document: Any) -> int:
        found = tool_list(document)
        if found is None:
            return 0
        items = found[0]
        if not items:
            return 5
        if all(_is_openai_item(item) for item in items[:20]):
            return 80
        return 0

    def parse(self, document: Any) -> list[ToolSpec]:
        found = tool_list(document)
        if found is None:
            raise located("expected a list of tools, or an object with a `tools` or `functions` list", "")
        items, base = found
        return [spec_from_openai(item, pointer_join(base, i)) for i, item in enumerate(items)]
