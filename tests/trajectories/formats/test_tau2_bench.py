"""τ²-bench results: the single-file form, the directory form (index + one file per simulation), fuzz."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from core.services import project_create
from tests.trajectories.fixtures_util import run_import
from trajectories.formats import importer_detect
from trajectories.formats.base import RawRecord, RecordError
from trajectories.formats.canonical import content_sha256, run_to_dict
from trajectories.formats.tau2_bench import Tau2BenchImporter
from trajectories.models import Goal, ImportStatus, Step, Trajectory
from trajectories.selectors.runs import trajectory_payload

FIXTURES = Path(__file__).parent / "fixtures" / "tau2_bench"
RESULTS = FIXTURES / "results.json"
SIMULATION = next((FIXTURES / "dir" / "simulations").glob("*.json"))
FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_slugs = itertools.count()


def import_file(project, path: Path, **kwargs: Any):
    job = run_import(project, path.read_bytes(), name=path.name, **kwargs)
    job.refresh_from_db()
    return job


@pytest.mark.smoke
def test_a_results_file_imports_each_simulation_with_its_task_and_model(project) -> None:
    job = import_file(project, RESULTS)
    assert job.status == ImportStatus.DONE, job.error
    assert job.format_detected == "tau2_bench"
    assert (job.records_seen, job.trajectories_imported, job.rejected) == (3, 3, 0), job.errors
    runs = {t.rollout_id[-1]: t for t in Trajectory.objects.filter(project=project)}
    good, failed, infra = runs["1"], runs["2"], runs["3"]
    assert {t.model_name for t in runs.values()} == {"claude-3-7-sonnet"}  # info.agent_info.llm
    assert {t.scaffold for t in runs.values()} == {"tau2-bench"}
    assert (good.trial, failed.trial) == (0, 1)
    assert good.goal_id == failed.goal_id
    goal = good.goal
    assert goal.external_id == "tau2-bench:airline:0"
    assert goal.tags == ["airline"]
    assert goal.expected_actions == [{"name": "cancel_reservation", "arguments": {"reservation_id": "EHGLP3"}}]
    assert goal.expected_outputs == ["refund"]
    assert goal.prompt == "I want to cancel reservation EHGLP3. My user id is emma_kim_9957."
    assert good.outcome_reward == 1.0
    assert good.outcome["details"]["termination_reason"] == "user_stop"
    assert good.outcome["details"]["reward_info"]["db_check"] == {"db_match": True, "db_reward": 1.0}
    assert good.metadata["run"]["agent"]["llm_args"]["api_key"] == "[scrubbed]"  # secrets never stored
    assert b"sk-test-DO-NOT-KEEP" not in trajectory_payload(good)
    assert good.final_answer.startswith("Your reservation EHGLP3 is cancelled")
    steps = list(good.steps.order_by("index"))
    assert [(s.kind, s.tool_name) for s in steps] == [
        ("respond", "respond"),
        ("tool_call", "get_reservation_details"),
        ("tool_call", "cancel_reservation"),
        ("respond", "respond"),
    ]
    lookup = steps[1]
    assert lookup.state == [{"role": "user", "content": goal.prompt}]
    assert (lookup.plan, lookup.tool_call_id, lookup.arguments) == (
        "Let me check the reservation.",
        "call_1",
        {"reservation_id": "EHGLP3"},
    )
    assert lookup.arguments_raw is None  # τ² writes arguments as an object
    assert lookup.observation == '{"reservation_id": "EHGLP3", "status": "active"}'
    assert lookup.success_flag is True
    assert (lookup.prompt_tokens, lookup.completion_tokens, lookup.cost_usd, lookup.latency_ms) == (
        2100,
        25,
        0.003,
        1250.0,
    )
    assert lookup.started_at is not None and lookup.ended_at is not None
    assert lookup.turn_id == "2"
    error_step = failed.steps.get(index=1)
    assert (error_step.observation, error_step.success_flag) == ("Error: Reservation EHGLP3 not found", False)
    assert failed.outcome_reward == 0.0
    # τ² leaves infrastructure errors out of its metrics: no reward, the reason kept
    assert infra.outcome_reward is None
    assert infra.outcome["details"]["termination_reason"] == "infrastructure_error"
    assert infra.goal.external_id == "tau2-bench:airline:1"
    assert infra.goal.expected_actions is None


@pytest.mark.smoke
def test_the_directory_form_imports_each_simulation_file_and_refuses_the_index(project) -> None:
    index = import_file(project, FIXTURES / "dir" / "results.json")
    assert index.trajectories_imported == 0
    [error] = index.errors
    assert "index" in error["message"] and "simulations/" in error["message"]
    assert error["where"] == "line 1"
    job = import_file(project, SIMULATION)
    assert (job.status, job.format_detected, job.trajectories_imported) == (ImportStatus.DONE, "tau2_bench", 1)
    run = Trajectory.objects.get(project=project)
    assert run.source_pointer == "document"
    assert run.goal.external_id == "tau2-bench:[mobile_data_issue]airplane_mode_on|data_mode_off[PERSONA:None]"
    assert run.model_name == ""  # it is in the directory's results.json, not in the simulation
    assert run.rollout_id == SIMULATION.stem
    assert run.outcome_reward == 1.0
    # the user's own tool calls (requestor "user") and their results are context, not agent steps
    steps = list(run.steps.order_by("index"))
    assert [s.kind for s in steps] == ["respond", "respond", "respond"]
    assert steps[2].state == [
        {"role": "user", "content": "[calls check_status_bar {}]"},
        {"role": "tool", "content": "Status bar: airplane mode ON"},
        {"role": "user", "content": "Yes, airplane mode is on."},
    ]
    assert run.goal_text == "My mobile data does not work."


@pytest.mark.smoke
def test_the_command_imports_each_file_of_a_directory(project, tmp_path: Path) -> None:
    from django.core.management import call_command

    files = [SIMULATION, RESULTS]
    with pytest.raises(SystemExit) as exit_info:  # the index among them: 1 rejected record
        call_command("import_trajectories", project.slug, *files, FIXTURES / "dir" / "results.json", "--no-progress")
    assert exit_info.value.code == 1
    assert Trajectory.objects.filter(project=project).count() == 4
    assert Goal.objects.filter(project=project).count() == 3


@pytest.mark.smoke
def test_a_json_array_of_simulations_imports_too(project) -> None:
    simulations = json.loads(RESULTS.read_bytes())["simulations"]
    job = run_import(project, json.dumps(simulations).encode(), name="sims.json")
    assert (job.format_detected, job.trajectories_imported) == ("tau2_bench", 3)
    assert set(Goal.objects.filter(project=project).values_list("external_id", flat=True)) == {
        "tau2-bench:0",
        "tau2-bench:1",
    }


@pytest.mark.smoke
def test_a_results_file_cut_short_keeps_the_whole_simulations_and_says_where_it_ends(project) -> None:
    data = RESULTS.read_bytes()
    cut = data[: data.index(b'"id": "5b1a0f0e-0000-4000-8000-000000000003"') + 10]
    job = run_import(project, cut, name="results.json")
    assert job.trajectories_imported == 2
    [error] = job.errors
    assert error["where"].startswith("simulation 2 (line ")
    assert "truncated" in error["message"]


@pytest.mark.smoke
def test_a_bad_simulation_costs_only_itself(project) -> None:
    results = json.loads(RESULTS.read_bytes())
    results["simulations"][1]["messages"][2]["tool_calls"][0]["name"] = ""
    results["simulations"][2]["messages"] = "not a list"
    job = run_import(project, json.dumps(results, indent=2).encode(), name="results.json")
    assert (job.trajectories_imported, job.rejected) == (1, 2)
    first, second = job.errors
    assert first["pointer"] == "/messages/2/tool_calls/0/name"
    assert first["where"].startswith("simulation 1 (line ")
    assert second["pointer"] == "/messages"


def test_detection_claims_its_files_and_no_other(samples_dir: Path) -> None:
    importer = Tau2BenchImporter()
    for path in (RESULTS, SIMULATION, FIXTURES / "dir" / "results.json"):
        head = path.read_bytes()[:65536]
        assert importer.detect(head) >= 70
        assert importer_detect(head).name == "tau2_bench"
    for path in sorted(samples_dir.iterdir()):
        if path.suffix in (".json", ".traj"):
            assert importer.detect(path.read_bytes()[:65536]) == 0, path.name
    chat = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
    assert importer.detect(chat) == 0
    assert importer.detect(b"[" + chat.strip() + b"]") == 0
    for path in (FIXTURES.parent / "tau_bench").glob("*.json"):
        assert importer.detect(path.read_bytes()[:65536]) == 0, path.name


# --- fuzz ---------------------------------------------------------------------------------------------

texts = st.one_of(st.text(max_size=12), st.sampled_from(["", "a\x00b", "Error: x", "2025-06-01T10:00:00"]))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False), texts)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=6
)
tool_call = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["c1", "c2", ""]),
        "name": st.one_of(st.sampled_from(["get_user_details", ""]), texts),
        "arguments": st.one_of(st.dictionaries(texts, scalars, max_size=2), st.sampled_from(['{"a": 1}', "{"])),
        "requestor": st.sampled_from(["assistant", "user"]),
    }
)
message = st.one_of(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["assistant", "user"]),
            "content": st.one_of(st.none(), texts),
            "tool_calls": st.one_of(st.none(), st.lists(tool_call, max_size=2)),
        },
        optional={
            "turn_idx": scalars,
            "timestamp": texts,
            "usage": st.one_of(json_values, st.fixed_dictionaries({"prompt_tokens": scalars})),
            "cost": scalars,
            "generation_time_seconds": scalars,
        },
    ),
    st.fixed_dictionaries(
        {
            "role": st.just("tool"),
            "id": st.sampled_from(["c1", "c2", "x"]),
            "content": st.one_of(st.none(), texts),
            "requestor": st.sampled_from(["assistant", "user"]),
            "error": scalars,
        },
        optional={"timestamp": texts},
    ),
    st.fixed_dictionaries({"role": st.sampled_from(["system", "robot"]), "content": texts}),
    json_values,
)
simulation = st.one_of(
    st.fixed_dictionaries(
        {
            "id": st.one_of(st.uuids().map(str), scalars),
            "task_id": st.one_of(st.sampled_from(["0", "1"]), scalars),
            "trial": st.one_of(st.integers(0, 3), scalars),
            "termination_reason": st.sampled_from(["user_stop", "agent_stop", "max_steps", "infrastructure_error"]),
            "reward_info": st.one_of(st.none(), st.fixed_dictionaries({"reward": scalars}), json_values),
            "messages": st.one_of(st.lists(message, max_size=6), json_values),
        }
    ),
    json_values,
)


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=1).encode()


def import_and_check(pm, data: bytes, format_name: str = "") -> None:
    project = project_create(actor=pm, name="Fuzz", kind="tool_use", slug=f"tau2-fuzz-{next(_slugs)}")
    job = run_import(project, data, name="results.json", format_name=format_name)  # must not raise
    job.refresh_from_db()
    assert job.status in (ImportStatus.DONE, ImportStatus.FAILED)
    if job.status == ImportStatus.FAILED:
        assert job.error.strip()
    assert "internal error" not in job.error, job.error
    for error in job.errors:
        assert error["where"].strip() and error["message"].strip(), error
        assert "could not be read" not in error["message"], error
    trajectories = Trajectory.objects.filter(project=project)
    assert trajectories.count() == job.trajectories_imported
    assert Step.objects.filter(trajectory__project=project).count() == job.steps_imported
    for trajectory in trajectories:
        assert list(trajectory.steps.order_by("index").values_list("index", flat=True)) == list(
            range(trajectory.step_count)
        )
    assert job.records_seen == job.trajectories_imported + job.duplicates + job.rejected


@FUZZ
@given(simulations=st.lists(simulation, max_size=4), form=st.sampled_from(["results", "array", "document"]))
def test_generated_simulations_import_without_surprises(db, pm, simulations: list[Any], form: str) -> None:
    results = json.loads(RESULTS.read_bytes())
    if form == "results":
        results["simulations"] = [results["simulations"][0], *simulations]
        data = dumps(results)
    elif form == "array":
        data = dumps([results["simulations"][0], *simulations])
    else:
        data = dumps(simulations[0] if simulations else results["simulations"][0])
    import_and_check(pm, data, "tau2_bench")


@FUZZ
@given(data=st.data())
def test_corrupted_results_files_import_without_surprises(db, pm, data: st.DataObject) -> None:
    raw = bytearray(data.draw(st.sampled_from([RESULTS, SIMULATION])).read_bytes())
    for _ in range(data.draw(st.integers(1, 3))):
        action = data.draw(st.sampled_from(["flip", "truncate", "delete"]))
        at = data.draw(st.integers(0, len(raw) - 1))
        if action == "flip":
            raw[at] = data.draw(st.integers(0, 255))
        elif action == "delete":
            del raw[at : at + data.draw(st.integers(1, 40))]
        else:
            del raw[at:]
        if not raw:
            raw = bytearray(b"{")
    import_and_check(pm, bytes(raw), data.draw(st.sampled_from(["", "tau2_bench"])))


@FUZZ
@given(value=simulation)
def test_parse_yields_a_hashable_run_or_a_located_record_error(value: Any) -> None:
    raw = dumps(value)
    try:
        run = Tau2BenchImporter().parse(RawRecord(raw=raw, where="document", line=1, index=0))
        digest = content_sha256(run_to_dict(run))
    except RecordError as exc:
        assert exc.message and (exc.pointer == "" or exc.pointer.startswith("/"))
        return
    assert len(digest) == 64 and run.steps
