"""τ-bench / τ²-bench tool specs (FORMATS.md §1.2, §1.6).

τ-bench's tools describe themselves with `get_info()`, an OpenAI function-tool schema; τ²'s
`Tool.openai_schema` has the same shape, with `parameters` a pydantic `model_json_schema()`
(local `$defs` refs are kept as they are). A spec file is a dump of those schemas for one
environment:

    {"env": "retail", "tools": [get_info(), …], "terminate_tools": ["transfer_to_human_agents"],
     "tool_types": {"get_order_details": "READ", …}}

(`domain` may stand for `env`; a bare list of `get_info()` dicts is accepted when the format is
chosen explicitly.) Side effects come from τ²'s `@is_tool(ToolType…)` when given (`tool_types`,
or `tool_type` on a tool): READ → read, WRITE → write, THINK / GENERIC → none. Otherwise from
the tool name, the way τ-bench's tools are named: think / calculate / transfer_to_human_agents →
none, get_ / find_ / list_ / search_ → read, anything else → write. A PM can correct them until
the registry is frozen.
"""

from __future__ import annotations

from typing import Any

from trajectories.formats.tools.base import ToolSpec, located, metadata_of, pointer_join
from trajectories.formats.tools.openai_tools import spec_from_openai

TOOL_TYPES = {"read": "read", "write": "write", "think": "none", "generic": "none"}
NO_EFFECT_NAMES = frozenset({"think", "calculate", "transfer_to_human_agents"})
READ_PREFIXES = ("get_", "find_", "list_", "search_")
ENV_KEYS = ("env", "domain", "terminate_tools", "tool_types")


def side_effects_by_name(name: str) -> str:
    if name in NO_EFFECT_NAMES:
        return "none"
    if name.startswith(READ_PREFIXES):
        return "read"
    return "write"


class TauBenchToolsFormat:
    name = "tau_bench"
    label = "τ-bench / τ²-bench tool specs"

    def detect(self, document: Any) -> int:
        is_env = isinstance(document, dict) and isinstance(document.get("tools"), list)
        return 90 if is_env and any(key in document for key in ENV_KEYS) else 0

    def parse(self, document: Any) -> list[ToolSpec]:
        types: dict[str, Any] = {}
        if isinstance(document, list):
            items, base = document, ""
        elif isinstance(document, dict) and isinstance(document.get("tools"), list):
            items, base = document["tools"], "/tools"
            types = document.get("tool_types") or {}
            if not isinstance(types, dict):
                raise located(
                    "`tool_types` must be an object of tool name → READ / WRITE / THINK / GENERIC", "/tool_types"
                )
        else:
            raise located("expected {env, tools: [get_info() …]} or a list of get_info() schemas", "")
        specs = []
        for index, item in enumerate(items):
            pointer = pointer_join(base, index)
            spec = spec_from_openai(item, pointer)
            declared = item.get("tool_type") if isinstance(item, dict) else None
            where = pointer_join(pointer, "tool_type")
            if declared is None and spec.name in types:
                declared, where = types[spec.name], pointer_join("/tool_types", spec.name)
            explicit = isinstance(item, dict) and "side_effects" in metadata_of(item, item.get("function"))
            if declared is not None:
                mapped = TOOL_TYPES.get(str(declared).lower())
                if mapped is None:
                    raise located(f"unknown tool type {declared!r}; expected READ, WRITE, THINK or GENERIC", where)
                spec.side_effects = mapped
            elif not explicit:
                spec.side_effects = side_effects_by_name(spec.name)
            specs.append(spec)
        return specs
