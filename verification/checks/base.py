"""What the checks read (a run's calls, a registry's tools) and what they return (findings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

# Failure-mode keys of the default tool-use taxonomy (core.defaults) that findings suggest.
HALLUCINATED_ARGUMENT = "hallucinated_argument"
WRONG_TOOL = "wrong_tool"
SCHEMA_DRIFT = "schema_drift"
LATENCY_TIMEOUT = "latency_timeout"
READ_ONLY = frozenset({"none", "read"})


@dataclass(slots=True)
class ToolView:
    name: str
    parameters: dict[str, Any]
    side_effects: str = "read"
    latency_p99_ms: int | None = None
    description: str = ""


@dataclass(slots=True)
class CallView:
    """One step of a run as the checks see it."""

    index: int
    kind: str  # "tool_call" | "respond"
    tool_name: str = ""
    arguments: Any = None
    arguments_raw: str | None = None
    arguments_error: str = ""
    observation: str | None = None
    state: list[dict[str, Any]] = field(default_factory=list)
    plan: str = ""
    latency_ms: float | None = None
    step_id: int | None = None


@dataclass(slots=True)
class FindingData:
    code: str
    message: str
    step_index: int | None = None  # None: about the whole run
    failure_mode: str = ""
    argument: str = ""
    pointer: str = ""
    rule: str = ""
    value: Any = None
    evidence: dict[str, Any] = field(default_factory=dict)


def pointer_of(path: Any) -> str:
    """An RFC 6901 JSON pointer from a sequence of keys and indexes."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"
