"""The sandbox environment interface: tools over a JSON state, replayable call by call.

Pure Python (no Django). An environment is stateless itself: `reset(seed)` builds a fresh
state, `call(state, tool, arguments)` mutates that state (for writes) and returns what the
agent would have seen. Replaying the same calls on `reset(seed)` gives the same
observations and the same `state_hash`, which is what sandbox replay and τ-bench-style
final-state rewards rely on.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson
from jsonschema import Draft202012Validator

SIDE_EFFECTS = ("none", "read", "write", "destructive")
ERROR_PREFIX = "Error: "

Handler = Callable[..., Any]


class ToolError(Exception):
    """A failure the agent sees as an observation (unknown id, policy violation, …)."""


def tool_spec(
    *,
    name: str,
    description: str,
    properties: dict[str, Any],
    required: list[str],
    side_effects: str,
    latency_p99_ms: int,
    returns: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An OpenAI function-tool spec plus the registry's per-tool metadata."""
    if side_effects not in SIDE_EFFECTS:
        raise ValueError(f"side_effects must be one of {SIDE_EFFECTS}, not {side_effects!r}")
    spec: dict[str, Any] = {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
        },
        "side_effects": side_effects,
        "latency_p99_ms": latency_p99_ms,
    }
    if returns is not None:
        spec["returns"] = returns
    return spec


def canonical_json(value: Any) -> bytes:
    """Compact UTF-8 JSON with sorted keys: what `state_hash` hashes."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def observation_json(value: Any) -> str:
    """A successful observation: JSON text, keys in the order the tool wrote them."""
    return json.dumps(value, ensure_ascii=False)


def is_error(observation: str) -> bool:
    return observation.startswith(ERROR_PREFIX)


class Environment(ABC):
    """A simulated tool environment. Subclasses declare specs and one handler per tool."""

    name: str

    @abstractmethod
    def tool_specs(self) -> list[dict[str, Any]]:
        """OpenAI function-tool specs with `side_effects` and `latency_p99_ms`."""

    @abstractmethod
    def reset(self, seed: int) -> dict[str, Any]:
        """A fresh, JSON-serialisable state; the same seed gives the same state."""

    @abstractmethod
    def handlers(self) -> Mapping[str, Handler]:
        """Tool name → handler(state, **arguments); raises ToolError for failures."""

    def call(self, state: dict[str, Any], tool: str, arguments: Any) -> str:
        """Run one call: validate the arguments against the tool's schema, then act on `state`."""
        handler = self.handlers().get(tool)
        if handler is None:
            return f"{ERROR_PREFIX}unknown tool {tool!r}"
        if not isinstance(arguments, dict):
            return f"{ERROR_PREFIX}arguments must be a JSON object"
        problem = self._argument_problem(tool, arguments)
        if problem:
            return f"{ERROR_PREFIX}{problem}"
        try:
            result = handler(state, **arguments)
        except ToolError as exc:
            return f"{ERROR_PREFIX}{exc}"
        return result if isinstance(result, str) else observation_json(result)

    def state_hash(self, state: dict[str, Any]) -> str:
        return hashlib.sha256(canonical_json(state)).hexdigest()

    @cached_property
    def _validators(self) -> dict[str, Draft202012Validator]:
        return {
            spec["function"]["name"]: Draft202012Validator(spec["function"]["parameters"]) for spec in self.tool_specs()
        }

    def _argument_problem(self, tool: str, arguments: dict[str, Any]) -> str:
        validator = self._validators.get(tool)
        if validator is None:
            return ""
        errors = sorted(validator.iter_errors(arguments), key=lambda e: (list(e.path), e.message))
        if not errors:
            return ""
        first = errors[0]
        pointer = "/" + "/".join(str(p) for p in first.path) if first.path else ""
        return f"invalid arguments for {tool}: {first.message}" + (f" (at {pointer})" if pointer else "")


@dataclass(slots=True)
class Replay:
    state: dict[str, Any]
    observations: list[str] = field(default_factory=list)
    state_hash: str = ""


def replay(env: Environment, *, seed: int, calls: Iterable[Mapping[str, Any]]) -> Replay:
    """Run `calls` ({name, arguments}) in order on a fresh `env.reset(seed)`."""
    state = env.reset(seed)
    result = Replay(state=state)
    for call in calls:
        result.observations.append(env.call(state, call["name"], call.get("arguments", {})))
    result.state_hash = env.state_hash(state)
    return result
