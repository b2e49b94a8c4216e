"""Tool-spec parsers (formats in, for tool registries), one module per format, in one table.

Each parser takes the parsed document and returns ToolSpecs (`base.ToolSpec`), raising a
RecordError with a JSON pointer into the document when it cannot. To add a format: write a
module with a class that satisfies `base.ToolFormat` and add an instance to `_ALL`.
Detection asks each parser how sure it is about the document.

Documents are JSON; YAML (common for OpenAPI) is read too when PyYAML is installed, without
anchors/aliases (so a small file cannot expand into a huge one).
"""

from __future__ import annotations

import codecs
from typing import Any

import orjson

from trajectories.formats.base import RecordError
from trajectories.formats.reading import loads_located
from trajectories.formats.tools.base import ToolFormat, ToolSpec, pointer_join
from trajectories.formats.tools.mcp import McpToolsFormat
from trajectories.formats.tools.openai_tools import OpenAIToolsFormat
from trajectories.formats.tools.openapi import OpenAPIFormat
from trajectories.formats.tools.tau_bench import TauBenchToolsFormat

_ALL: tuple[ToolFormat, ...] = (OpenAIToolsFormat(), OpenAPIFormat(), McpToolsFormat(), TauBenchToolsFormat())
TOOL_FORMATS: dict[str, ToolFormat] = {fmt.name: fmt for fmt in _ALL}
MAX_DOCUMENT_BYTES = 16 << 20


def tool_format_get(name: str) -> ToolFormat:
    try:
        return TOOL_FORMATS[name]
    except KeyError:
        raise RecordError(f"unknown tool format {name!r}; known: {', '.join(sorted(TOOL_FORMATS))}") from None


def tool_format_detect(document: Any) -> ToolFormat:
    """The parser most sure of the document's format; RecordError when none is."""
    score, name = max((fmt.detect(document), fmt.name) for fmt in _ALL)
    if score <= 0:
        raise RecordError(
            f"could not tell the tool format; choose one of: {', '.join(sorted(TOOL_FORMATS))}", where="document"
        )
    return TOOL_FORMATS[name]


def _load_yaml(data: bytes) -> Any:
    try:
        import yaml  # PyYAML: optional; only YAML documents need it
    except ImportError:
        raise RecordError("the file is not JSON (YAML needs PyYAML installed)", where="document", line=1) from None

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise yaml.MarkedYAMLError(problem="YAML aliases (*name) are not supported", problem_mark=mark)
            return super().compose_node(parent, index)

    try:
        document = yaml.load(data, Loader=NoAliasLoader)  # noqa: S506 — a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        where = f" (line {line}, column {mark.column + 1})" if mark is not None else ""
        raise RecordError(f"malformed YAML: {exc.problem}{where}", where="document", line=line) from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise RecordError(f"malformed YAML: {exc}", where="document", line=1) from None
    try:  # YAML allows non-string keys and dates: keep only what JSON can say
        return orjson.loads(orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise RecordError(f"the YAML holds values JSON cannot: {exc}", where="document", line=1) from None


def load_document(data: bytes) -> Any:
    """The parsed JSON (or YAML) document; RecordError naming line and column when it is malformed."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise RecordError(f"the file is larger than {MAX_DOCUMENT_BYTES >> 20} MB", where="document", line=1)
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    stripped = data.lstrip()
    if not stripped:
        raise RecordError("the file is empty", where="document", line=1)
    if stripped[:1] in (b"{", b"["):
        return loads_located(data, "document", 1)
    return _load_yaml(data)


def parse_tools(data: bytes, format_name: str = "") -> tuple[ToolFormat, list[ToolSpec]]:
    """The format and the tools of a tool-spec file; RecordError with a pointer when it cannot be read."""
    document = load_document(data)
    fmt = tool_format_get(format_name) if format_name else tool_format_detect(document)
    return fmt, fmt.parse(document)


__all__ = [
    "TOOL_FORMATS",
    "ToolFormat",
    "ToolSpec",
    "load_document",
    "parse_tools",
    "pointer_join",
    "tool_format_detect",
    "tool_format_get",
]
