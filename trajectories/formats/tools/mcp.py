"""MCP `tools/list` results: `{"tools": [{name, description, inputSchema, outputSchema?, annotations?}]}`.

The JSON-RPC response around it (`{"jsonrpc": "2.0", "id": …, "result": {"tools": […]}}`) and a
bare list of tools are accepted too; `nextCursor` is ignored (concatenate pages before upload).

Side effects follow the MCP tool annotations and their spec defaults (readOnlyHint false,
destructiveHint true): readOnlyHint → read; otherwise destructiveHint → destructive; a tool that
declares `destructiveHint: false` → write. A tool without annotations is therefore destructive,
as the MCP spec tells clients to assume. The registry's own `side_effects` / `x-side-effects`
key on a tool (or in its `_meta`) wins over the hints.
"""

from __future__ import annotations

from typing import Any

from trajectories.formats.tools.base import ToolSpec, located, metadata_of, pointer_join, text_of


def _tool_list(document: Any) -> tuple[list[Any], str] | None:
    if isinstance(document, list):
        return document, ""
    if isinstance(document, dict):
        result = document.get("result")
        if isinstance(result, dict) and isinstance(result.get("tools"), list):
            return result["tools"], "/result/tools"
        if isinstance(document.get("tools"), list):
            return document["tools"], "/tools"
    return None


def side_effects_from_annotations(annotations: Any) -> str:
    if not isinstance(annotations, dict):
        annotations = {}
    if annotations.get("readOnlyHint") is True:
        return "read"
    if annotations.get("destructiveHint", True) is False:
        return "write"
    return "destructive"


class McpToolsFormat:
    name = "mcp"
    label = "MCP tools/list result"

    def detect(self, document: Any) -> int:
        found = _tool_list(document)
        if found is None or not found[0]:
            return 0
        items = found[0][:20]
        if all(isinstance(item, dict) and "inputSchema" in item for item in items):
            return 95
        return 0

    def parse(self, document: Any) -> list[ToolSpec]:
        found = _tool_list(document)
        if found is None:
            if isinstance(document, dict) and isinstance(document.get("error"), dict):
                raise located(f"the JSON-RPC response is an error: {document['error'].get('message', '')}", "/error")
            raise located("expected a tools/list result: an object with a `tools` list", "")
        items, base = found
        specs = []
        for index, item in enumerate(items):
            pointer = pointer_join(base, index)
            if not isinstance(item, dict):
                raise located(f"a tool must be a JSON object, not {type(item).__name__}", pointer)
            name = item.get("name")
            if not isinstance(name, str) or not name.strip():
                raise located("a tool needs a name (a non-empty string)", pointer_join(pointer, "name"))
            if "inputSchema" not in item:
                raise located("an MCP tool needs an inputSchema", pointer)
            meta = metadata_of(item, item.get("_meta"))
            specs.append(
                ToolSpec(
                    name=name.strip(),
                    description=text_of(item.get("description")),
                    parameters=item["inputSchema"],
                    returns=item.get("outputSchema", meta.get("returns")),
                    side_effects=meta.get("side_effects", side_effects_from_annotations(item.get("annotations"))),
                    latency_p99_ms=meta.get("latency_p99_ms"),
                    pointer=pointer,
                    parameters_pointer=pointer_join(pointer, "inputSchema"),
                    returns_pointer=pointer_join(pointer, "outputSchema"),
                )
            )
        return specs
