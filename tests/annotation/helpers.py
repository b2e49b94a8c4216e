"""Building annotation fixtures through the real services."""

from __future__ import annotations

import orjson

from core.models import Project
from tests.trajectories.fixtures_util import run_import
from trajectories.models import Trajectory
from trajectories.services.registries import registry_create, registry_freeze

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_reservation",
            "description": "Look up a reservation.",
            "parameters": {
                "type": "object",
                "properties": {
                    "reservation_id": {"type": "string", "pattern": "^[A-Z0-9]{6}$"},
                    "cabin": {"type": "string", "enum": ["economy", "business"]},
                },
                "required": ["reservation_id"],
                "additionalProperties": False,
            },
        },
        "side_effects": "read",
    }
]


def run_record(n: int, *, observation: str = '{"status": "confirmed"}') -> bytes:
    call = {
        "id": f"c{n}",
        "type": "function",
        "function": {"name": "get_reservation", "arguments": orjson.dumps({"reservation_id": f"ZFA{n:03d}"}).decode()},
    }
    return (
        orjson.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"Where is my reservation ZFA{n:03d}?"},
                    {"role": "assistant", "content": "Looking it up.", "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": f"c{n}", "content": observation},
                    {"role": "assistant", "content": "It is confirmed."},
                ],
                "metadata": {"model": "gpt-4o", "rollout_id": f"run-{n}"},
            }
        )
        + b"\n"
    )


def freeze_registry(project: Project, actor) -> None:
    registry_freeze(actor=actor, registry=registry_create(actor=actor, project=project, tools=TOOLS))


def import_runs(project: Project, count: int, **kw) -> list[Trajectory]:
    run_import(project, b"".join(run_record(n, **kw) for n in range(count)))
    return list(Trajectory.objects.filter(project=project).order_by("id"))
