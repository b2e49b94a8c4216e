"""The environment plugin interface: a second, tiny environment registered by a test and replayed for real."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tests.trajectories.fixtures_util import run_import
from trajectories.models import ImportStatus, Step, Trajectory
from trajectories.services.registries import registry_create, registry_freeze
from verification import services
from verification.environments import ENVIRONMENTS, Environment, ToolError, register_environment, tool_spec
from verification.environments.base import Handler, replay
from verification.models import CheckRun, Finding
from verification.services import replay_config_set, trajectory_verify

SEED = 7


class KvEnvironment(Environment):
    """A key-value store: kv_get reads, kv_put writes, reset(seed) seeds three keys."""

    name = "kv-test"

    def tool_specs(self) -> list[dict[str, Any]]:
        key = {"type": "string", "minLength": 1}
        return [
            tool_spec(
                name="kv_get",
                description="Read one key.",
                properties={"key": key},
                required=["key"],
                side_effects="read",
                latency_p99_ms=100,
            ),
            tool_spec(
                name="kv_put",
                description="Write one key.",
                properties={"key": key, "value": {"type": "string"}},
                required=["key", "value"],
                side_effects="write",
                latency_p99_ms=100,
            ),
        ]

    def reset(self, seed: int) -> dict[str, Any]:
        rng = random.Random(seed)
        return {"store": {f"k{n}": f"v{rng.randrange(10**6)}" for n in range(3)}, "writes": 0}

    def handlers(self) -> Mapping[str, Handler]:
        return {"kv_get": self._get, "kv_put": self._put}

    @staticmethod
    def _get(state: dict[str, Any], *, key: str) -> dict[str, Any]:
        if key not in state["store"]:
            raise ToolError(f"no key {key!r}")
        return {"key": key, "value": state["store"][key]}

    @staticmethod
    def _put(state: dict[str, Any], *, key: str, value: str) -> dict[str, Any]:
        state["store"][key] = value
        state["writes"] += 1
        return {"key": key, "value": value, "writes": state["writes"]}


class RaisingKv(KvEnvironment):
    """Its read handler has a plain Python bug (not a ToolError)."""

    name = "kv-raise"

    def handlers(self) -> Mapping[str, Handler]:
        return {**super().handlers(), "kv_get": lambda state, *, key: state["inventory"][key]}


class LoopingKv(KvEnvironment):
    """Its read handler never returns."""

    name = "kv-loop"

    def handlers(self) -> Mapping[str, Handler]:
        def spin(state: dict[str, Any], *, key: str) -> None:
            while True:
                pass

        return {**super().handlers(), "kv_get": spin}


@pytest.fixture
def register() -> Iterator[Any]:
    """register(env): add an environment for this test only."""
    added: list[str] = []

    def add(env: Environment) -> Environment:
        assert env.name not in ENVIRONMENTS
        added.append(env.name)
        return register_environment(env)

    yield add
    for name in added:
        ENVIRONMENTS.pop(name, None)


CALLS = [
    {"name": "kv_get", "arguments": {"key": "k0"}},
    {"name": "kv_put", "arguments": {"key": "k0", "value": "fresh"}},
    {"name": "kv_get", "arguments": {"key": "k0"}},
    {"name": "kv_get", "arguments": {"key": "nope"}},
]


def test_replay_on_the_same_seed_gives_the_same_observations_and_state_hash(register) -> None:
    env = register(KvEnvironment())
    assert ENVIRONMENTS["kv-test"] is env

    first, second = replay(env, seed=SEED, calls=CALLS), replay(env, seed=SEED, calls=CALLS)
    assert first.state_hash == second.state_hash
    assert first.observations == second.observations
    assert json.loads(first.observations[0])["value"] == env.reset(SEED)["store"]["k0"]
    assert json.loads(first.observations[2]) == {"key": "k0", "value": "fresh"}
    assert first.observations[3] == "Error: no key 'nope'"
    assert first.state["store"]["k0"] == "fresh"

    assert replay(env, seed=SEED, calls=[]).state_hash != first.state_hash  # the write changed the state
    assert replay(env, seed=SEED + 1, calls=CALLS).state_hash != first.state_hash
    bad = replay(env, seed=SEED, calls=[{"name": "kv_put", "arguments": {"key": "k0"}}])
    assert bad.observations[0].startswith("Error: invalid arguments for kv_put")
    assert bad.state_hash == replay(env, seed=SEED, calls=[]).state_hash  # rejected before it acted


def test_environment_names_are_required() -> None:
    class Nameless(KvEnvironment):
        name = ""

    with pytest.raises(ValueError, match="needs a name"):
        register_environment(Nameless())
    assert "" not in ENVIRONMENTS


# --- end to end through the database --------------------------------------------------------------


def _record(rollout_id: str, seed: int, calls: list[dict[str, Any]], observations: list[str]) -> bytes:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Refresh k0 and read it back."}]
    for n, (call, observation) in enumerate(zip(calls, observations, strict=True)):
        function = {"name": call["name"], "arguments": json.dumps(call["arguments"])}
        messages.append(
            {
                "role": "assistant",
                "content": f"Step {n}.",
                "tool_calls": [{"id": f"c{n}", "type": "function", "function": function}],
            }
        )
        messages.append({"role": "tool", "tool_call_id": f"c{n}", "content": observation})
    messages.append({"role": "assistant", "content": "Done."})
    metadata = {"model": "gpt-4o", "trial": 0, "rollout_id": rollout_id, "env_seed": seed}
    return json.dumps({"messages": messages, "metadata": metadata}).encode() + b"\n"


def _recorded(env: Environment, seed: int, calls: list[dict[str, Any]]) -> list[str]:
    """What the environment answers to `calls` on a fresh state: the observations a faithful run records."""
    state = env.reset(seed)
    return [env.call(state, call["name"], call["arguments"]) for call in calls]


def _configure(project, pm, env: Environment, **config: Any):
    registry = registry_create(actor=pm, project=project, tools=env.tool_specs(), name=env.name)
    registry = registry_freeze(actor=pm, registry=registry)
    replay_config_set(actor=pm, registry=registry, environment=env.name, seed_key="env_seed", **config)
    return registry


def _replay_run(trajectory: Trajectory) -> CheckRun:
    return CheckRun.objects.get(trajectory=trajectory, kind="replay")


def test_environment_replay_through_trajectory_verify_finds_the_tampered_step(project, pm, register) -> None:
    env = register(KvEnvironment())
    _configure(project, pm, env)
    calls = CALLS[:3]
    faithful = _recorded(env, SEED, calls)
    tampered = [*faithful[:2], json.dumps({"key": "k0", "value": "stale"})]
    job = run_import(project, _record("clean", SEED, calls, faithful) + _record("tampered", SEED, calls, tampered))
    assert job.status == ImportStatus.DONE, job.errors
    clean_run = Trajectory.objects.get(project=project, rollout_id="clean")
    bad_run = Trajectory.objects.get(project=project, rollout_id="tampered")
    assert clean_run.metadata["env_seed"] == SEED

    assert trajectory_verify(trajectory_id=clean_run.pk, kinds=["replay"]) == {"replay": "created"}
    assert trajectory_verify(trajectory_id=bad_run.pk, kinds=["replay"]) == {"replay": "created"}

    clean = _replay_run(clean_run)
    assert clean.status == "passed"
    assert clean.findings.count() == 0
    assert (clean.result["environment"], clean.result["seed"], clean.result["modes"][0]) == (
        "kv-test",
        SEED,
        "environment",
    )
    environment_calls = [c for c in clean.result["calls"] if c["mode"] == "environment"]
    assert [c["same"] for c in environment_calls] == [True, True, True]

    bad = _replay_run(bad_run)
    assert bad.status == "flagged"
    third = Step.objects.filter(trajectory=bad_run, kind="tool_call").order_by("index")[2]
    [finding] = Finding.objects.filter(trajectory=bad_run)
    assert (finding.check_run_id, finding.code, finding.step_id) == (bad.pk, "replay_mismatch", third.pk)
    assert finding.evidence["mode"] == "environment"
    assert finding.evidence["diff"] == [{"pointer": "/value", "recorded": "stale", "replayed": "fresh"}]

    assert trajectory_verify(trajectory_id=bad_run.pk, kinds=["replay"]) == {"replay": "unchanged"}
    assert CheckRun.objects.filter(trajectory=bad_run, kind="replay").count() == 1


@pytest.mark.parametrize(
    ("environment", "timeout_s", "explanation"),
    [(RaisingKv, None, "KeyError: 'inventory'"), (LoopingKv, 0.5, "took longer than 0.5 s")],
)
def test_a_broken_environment_is_a_check_error_not_a_crash(
    project, pm, register, monkeypatch, environment: type[KvEnvironment], timeout_s: float | None, explanation: str
) -> None:
    if timeout_s is not None:
        monkeypatch.setattr(services, "SANDBOX_TIMEOUT_S", timeout_s)
    env = register(environment())
    _configure(project, pm, env, use_mock_store=False)
    calls = CALLS[:1]
    observations = _recorded(KvEnvironment(), SEED, calls)  # what a working store would have said
    job = run_import(project, _record("broken", SEED, calls, observations))
    assert job.status == ImportStatus.DONE, job.errors
    trajectory = Trajectory.objects.get(project=project)

    assert trajectory_verify(trajectory_id=trajectory.pk, kinds=["replay"]) == {"replay": "created"}

    run = _replay_run(trajectory)
    assert run.status == "error"
    assert run.logs == f"environment replay stopped: {explanation}"
    assert run.result["calls"] == []
    assert run.findings.count() == 0
