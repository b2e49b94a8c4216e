"""Sandbox environments: simulated tools over a JSON state, for rollouts and replay.

Pure Python; no Django. `ENVIRONMENTS` is the one table of known environments.
"""

from __future__ import annotations

from verification.environments.airline import AirlineEnvironment
from verification.environments.base import ERROR_PREFIX, Environment, Replay, ToolError, is_error, replay, tool_spec
from verification.environments.sql import SqlEnvironment

ENVIRONMENTS: dict[str, Environment] = {}


def register_environment(env: Environment) -> Environment:
    """Add `env` to ENVIRONMENTS under its name (replacing one of the same name)."""
    if not getattr(env, "name", ""):
        raise ValueError("an environment needs a name")
    ENVIRONMENTS[env.name] = env
    return env


def environment_get(name: str) -> Environment:
    try:
        return ENVIRONMENTS[name]
    except KeyError:
        raise KeyError(f"unknown environment {name!r}; known: {', '.join(sorted(ENVIRONMENTS))}") from None


register_environment(AirlineEnvironment())
register_environment(SqlEnvironment())

__all__ = [
    "ENVIRONMENTS",
    "ERROR_PREFIX",
    "AirlineEnvironment",
    "Environment",
    "Replay",
    "SqlEnvironment",
    "ToolError",
    "environment_get",
    "is_error",
    "register_environment",
    "replay",
    "tool_spec",
]
