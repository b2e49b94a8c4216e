"""A batch's sandbox work runs in one child; a run that hangs costs only itself."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson
import pytest

from tests.trajectories.fixtures_util import run_import
from trajectories.models import Trajectory
from trajectories.services.registries import registry_create, registry_freeze
from verification import services
from verification.environments import ENVIRONMENTS, Environment, register_environment, tool_spec
from verification.models import CheckRun, CheckStatus
from verification.services import replay_config_set, trajectories_verify


class Stubborn(Environment):
    """get(key) answers the key's value, except "forever", which never answers."""

    name = "stubborn-test"

    def tool_specs(self) -> list[dict[str, Any]]:
        return [
            tool_spec(
                name="get",
                description="Read a key.",
                properties={"key": {"type": "string"}},
                required=["key"],
                side_effects="read",
                latency_p99_ms=100,
            )
        ]

    def reset(self, seed: int) -> dict[str, Any]:
        return {"a": seed, "b": seed + 1}

    def handlers(self) -> Mapping[str, Any]:
        def get(state: dict[str, Any], key: str) -> Any:
            while key == "forever":
                pass
            return {"key": key, "value": state.get(key)}

        return {"get": get}


@pytest.fixture
def stubborn() -> Iterator[Stubborn]:
    env = register_environment(Stubborn())
    services._seed_states.clear()
    yield env
    ENVIRONMENTS.pop(env.name, None)
    services._seed_states.clear()


def _run(name: str, key: str, observation: str) -> bytes:
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "get", "arguments": orjson.dumps({"key": key}).decode()},
    }
    return (
        orjson.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"read {key}"},
                    {"role": "assistant", "content": "", "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": "c1", "content": observation},
                ],
                "metadata": {"rollout_id": name, "env_seed": 5},
            }
        )
        + b"\n"
    )


def test_a_hanging_run_is_isolated_and_the_rest_of_the_batch_is_replayed(project, pm, stubborn, monkeypatch) -> None:
    registry = registry_freeze(
        actor=pm, registry=registry_create(actor=pm, project=project, tools=stubborn.tool_specs())
    )
    replay_config_set(actor=pm, registry=registry, environment=stubborn.name, seed_key="env_seed")
    good = stubborn.call(stubborn.reset(5), "get", {"key": "a"})
    run_import(
        project,
        _run("good", "a", good) + _run("tampered", "b", '{"key": "b", "value": 0}') + _run("hangs", "forever", "{}"),
    )
    monkeypatch.setattr(services, "SANDBOX_TIMEOUT_S", 1.0)
    runs = {t.rollout_id: t for t in Trajectory.objects.filter(project=project)}
    counts = trajectories_verify(trajectory_ids=[t.pk for t in runs.values()], kinds=["replay"])
    assert counts == {"replay:created": 3}
    checks = {c.trajectory.rollout_id: c for c in CheckRun.objects.filter(kind="replay").select_related("trajectory")}
    assert checks["good"].status == CheckStatus.PASSED
    assert checks["tampered"].status == CheckStatus.FLAGGED
    assert [f.code for f in checks["tampered"].findings.all()] == ["replay_mismatch"]
    assert checks["hangs"].status == CheckStatus.ERROR
    assert "took longer than 1 s" in checks["hangs"].logs
