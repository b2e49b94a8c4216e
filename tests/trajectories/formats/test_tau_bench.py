"""τ-bench results JSON: the real sample, the variants of FORMATS.md §1.3 and §10, and fuzz."""

from __future__ import annotations

import itertools
import json
from collections import Counter
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
from trajectories.formats.tau_bench import TauBenchImporter
from trajectories.models import Goal, ImportStatus, Step, Trajectory

FIXTURES = Path(__file__).parent / "fixtures" / "tau_bench"
SAMPLE = "tau-bench_gpt-4o-airline_excerpt.json"
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


# --- the real sample -----------------------------------------------------------------------------


@pytest.mark.smoke
def test_the_real_sample_imports_with_its_known_facts(project, samples_dir: Path) -> None:
    job = import_file(project, samples_dir / SAMPLE)
    assert job.status == ImportStatus.DONE, job.error
    assert job.format_detected == "tau_bench"
    assert (job.records_seen, job.trajectories_imported, job.rejected, job.duplicates) == (16, 16, 0, 0)
    assert job.steps_imported == 106
    steps = Step.objects.filter(trajectory__project=project)
    assert Counter(steps.values_list("kind", flat=True)) == {"tool_call": 39, "respond": 67}
    # never more than one tool call per assistant message: no two calls share a turn
    turns = Counter(steps.filter(kind="tool_call").values_list("trajectory_id", "turn_id"))
    assert max(turns.values()) == 1
    trajectories = Trajectory.objects.filter(project=project)
    per_task: dict[str, list[tuple[int, float]]] = {}
    for external_id, trial, reward in trajectories.values_list("goal__external_id", "trial", "outcome_reward"):
        per_task.setdefault(external_id, []).append((trial, reward))
    assert set(per_task) == {f"tau-bench:airline:{t}" for t in (8, 41, 44, 48)}
    assert {k: sorted(t for t, _ in v) for k, v in per_task.items()} == {key: [0, 1, 2, 3] for key in per_task}
    successes = {k.rsplit(":", 1)[1]: sum(r == 1.0 for _, r in v) for k, v in per_task.items()}
    assert successes == {"8": 0, "41": 2, "44": 2, "48": 4}
    assert sum(r for v in per_task.values() for _, r in v) / 16 == 0.5
    assert set(trajectories.values_list("model_name", flat=True)) == {""}  # not in the records
    assert set(trajectories.values_list("scaffold", flat=True)) == {"tau-bench"}
    for trajectory in trajectories:
        assert trajectory.steps.count() == trajectory.step_count


@pytest.mark.smoke
def test_the_sample_goal_carries_the_tasks_gold_actions_and_outputs(project, samples_dir: Path) -> None:
    import_file(project, samples_dir / SAMPLE)
    goal = Goal.objects.get(project=project, external_id="tau-bench:airline:8")
    assert [a["name"] for a in goal.expected_actions] == ["cancel_reservation", "book_reservation"]
    assert goal.expected_actions[0] == {"name": "cancel_reservation", "arguments": {"reservation_id": "K1NW8N"}}
    assert goal.expected_outputs == ["327", "1000", "1786"]
    assert goal.tags == ["airline"]
    assert goal.prompt.startswith("Hello! Could you please tell me the sum of my gift card balances")
    run = Trajectory.objects.get(project=project, goal=goal, trial=0)
    assert run.goal_text == goal.prompt  # the first user message
    assert run.outcome["details"]["info"] == {"r_outputs": 0.0, "outputs": {"327": False, "1000": False, "1786": False}}
    assert run.metadata["instruction"].startswith("You are mohamed_silva_9265.")
    assert run.metadata["user_id"] == "mohamed_silva_9265"
    first = run.steps.get(index=0)
    assert first.kind == "respond" and first.arguments["content"].startswith("I'm unable to access")
    assert [m["role"] for m in first.state] == ["system", "user"]


@pytest.mark.smoke
def test_a_tool_call_step_pairs_with_its_observation(project, samples_dir: Path) -> None:
    import_file(project, samples_dir / SAMPLE)
    step = Step.objects.filter(trajectory__project=project, kind="tool_call").order_by("trajectory_id", "index")[0]
    assert step.tool_call_id and step.observation is not None
    assert isinstance(step.arguments, dict) and step.arguments_raw is not None
    assert step.success_flag is not None


# --- variants ---------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_an_errored_run_is_rejected_with_its_error_and_a_step_limit_run_has_no_details(project) -> None:
    job = import_file(project, FIXTURES / "retail_variants.json")
    assert job.status == ImportStatus.DONE
    assert (job.records_seen, job.trajectories_imported, job.rejected) == (3, 2, 1)
    [error] = job.errors
    assert error["where"].startswith("element 1 (line ")
    assert error["pointer"] == "/info/error"
    assert "errored" in error["message"]
    assert "litellm.RateLimitError: rate limit reached for gpt-4o" in error["message"]
    assert "please retry" not in error["message"]  # the first line only
    done = Trajectory.objects.get(project=project, goal__external_id="tau-bench:retail:3")
    assert done.outcome_reward == 1.0
    assert done.outcome["details"]["info"] == {"r_actions": 1.0, "gt_data_hash": "3f1c0a"}
    assert done.goal.expected_actions == [
        {"name": "cancel_pending_order", "arguments": {"order_id": "#W2378156", "reason": "ordered by mistake"}}
    ]
    assert done.final_answer == "Done: the order is cancelled and the refund is on its way."
    assert list(done.steps.values_list("kind", "tool_name", "success_flag")) == [
        ("tool_call", "get_order_details", True),
        ("respond", "respond", None),
        ("tool_call", "cancel_pending_order", True),
        ("respond", "respond", None),
    ]
    limited = Trajectory.objects.get(project=project, goal__external_id="tau-bench:retail:5")
    assert limited.outcome == {"reward": 0.0}  # reward_info null: the step limit was hit
    assert limited.trial == 1
    [step] = limited.steps.all()
    assert (step.plan, step.observation, step.success_flag) == ("Let me look.", "Error: user not found", False)
    assert limited.goal.expected_outputs == ["42"]


@pytest.mark.smoke
def test_react_actions_and_several_calls_in_one_message(project) -> None:
    job = import_file(project, FIXTURES / "react_and_parallel.json")
    assert (job.status, job.trajectories_imported, job.rejected) == (ImportStatus.DONE, 2, 0), job.errors
    react, parallel = Trajectory.objects.filter(project=project).order_by("trial")
    assert react.goal.external_id == "tau-bench:7"  # neither the policy nor the gold actions tell the env
    assert react.goal_id == parallel.goal_id
    call, reply = react.steps.order_by("index")
    assert (call.kind, call.tool_name, call.arguments, call.plan) == (
        "tool_call",
        "get_time",
        {"city": "Paris"},
        "I should look the time up.",
    )
    assert call.observation == "14:05"
    assert (reply.kind, reply.arguments, reply.plan) == (
        "respond",
        {"content": "It is 14:05 in Paris."},
        "I know it now.",
    )
    first, second, answer = parallel.steps.order_by("index")
    assert first.turn_id == second.turn_id
    assert (first.tool_call_id, first.observation, first.success_flag) == ("c1", "14:05", True)
    assert (second.tool_call_id, second.arguments, second.arguments_raw) == ("c2", None, '{"city": ')
    assert second.arguments_error.startswith("arguments are not valid JSON")
    assert (second.observation, second.success_flag) == ("Error: arguments are not valid JSON", False)
    assert answer.kind == "respond"


@pytest.mark.smoke
def test_importing_the_same_file_twice_adds_nothing(project, samples_dir: Path) -> None:
    import_file(project, samples_dir / SAMPLE)
    again = run_import(project, (samples_dir / SAMPLE).read_bytes() + b"\n", name="again.json")
    assert (again.trajectories_imported, again.duplicates) == (0, 16)
    assert Goal.objects.filter(project=project).count() == 4


# --- detection -------------------------------------------------------------------------------------


def test_detection_picks_the_sample_and_claims_no_other_file(samples_dir: Path) -> None:
    importer = TauBenchImporter()
    for path in sorted(samples_dir.iterdir()):
        if path.suffix not in (".json", ".traj"):
            continue
        score = importer.detect(path.read_bytes()[:65536])
        if path.name == SAMPLE:
            assert score >= 70
            assert importer_detect(path.read_bytes()[:65536]).name == "tau_bench"
        else:
            assert score == 0, path.name
    chat = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
    assert importer.detect(chat) == 0
    assert importer.detect(b"[" + chat.strip() + b"]") == 0
    for path in (FIXTURES.parent / "tau2_bench").rglob("*.json"):
        assert importer.detect(path.read_bytes()[:65536]) == 0, path.name


# --- fuzz ---------------------------------------------------------------------------------------------

texts = st.one_of(st.text(max_size=12), st.sampled_from(["", "a\x00b", "Error: no", "# Retail agent policy"]))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False), texts)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=6
)
arguments = st.one_of(
    st.sampled_from(['{"order_id": "#W1"}', "{", "[1]", "", "null"]), st.dictionaries(texts, scalars, max_size=2)
)
tool_call = st.fixed_dictionaries(
    {
        "id": st.one_of(st.sampled_from(["c1", "c2", ""]), st.none()),
        "type": st.just("function"),
        "function": st.fixed_dictionaries(
            {"name": st.one_of(st.sampled_from(["get_user_details", ""]), texts)}
        ).flatmap(lambda f: st.fixed_dictionaries({"arguments": arguments}).map(lambda a: {**f, **a})),
    }
)
message = st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["system", "user"]), "content": texts}),
    st.fixed_dictionaries({"role": st.just("assistant"), "content": st.one_of(st.none(), texts)}),
    st.fixed_dictionaries(
        {"role": st.just("assistant"), "content": st.none(), "tool_calls": st.lists(tool_call, max_size=3)}
    ),
    st.fixed_dictionaries(
        {"role": st.just("assistant"), "content": st.just('Thought:\nx\nAction:\n{"name": "think", "arguments": {}}')}
    ),
    st.fixed_dictionaries(
        {"role": st.just("tool"), "tool_call_id": st.sampled_from(["c1", "c2", "x"]), "name": texts, "content": texts}
    ),
    json_values,
)
task = st.fixed_dictionaries(
    {},
    optional={
        "user_id": texts,
        "actions": st.one_of(
            st.lists(
                st.fixed_dictionaries({"name": st.sampled_from(["book_reservation", "x"]), "kwargs": json_values}),
                max_size=2,
            ),
            json_values,
        ),
        "instruction": texts,
        "outputs": st.one_of(st.lists(texts, max_size=2), json_values),
    },
)
info = st.one_of(
    st.fixed_dictionaries(
        {"task": task},
        optional={
            "source": texts,
            "user_cost": scalars,
            "reward_info": st.one_of(st.none(), st.fixed_dictionaries({"reward": scalars, "info": json_values})),
        },
    ),
    st.fixed_dictionaries({"error": texts, "traceback": texts}),
    json_values,
)
record = st.one_of(
    st.fixed_dictionaries(
        {
            "task_id": st.one_of(st.integers(0, 200), st.integers(0, 200), json_values),
            "reward": st.one_of(st.sampled_from([0.0, 1.0]), scalars),
            "info": info,
            "traj": st.one_of(st.lists(message, max_size=6), json_values),
            "trial": st.one_of(st.integers(0, 3), scalars),
        }
    ),
    json_values,
)


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def import_and_check(pm, data: bytes, format_name: str = "") -> None:
    project = project_create(actor=pm, name="Fuzz", kind="tool_use", slug=f"tau-fuzz-{next(_slugs)}")
    job = run_import(project, data, name="results.json", format_name=format_name)  # must not raise
    job.refresh_from_db()
    assert job.status in (ImportStatus.DONE, ImportStatus.FAILED)
    if job.status == ImportStatus.FAILED:
        assert job.error.strip()
    assert "internal error" not in job.error, job.error
    for error in job.errors:
        assert error["where"].strip() and error["message"].strip(), error
        assert "could not be read" not in error["message"], error  # an importer fault, not a located error
    trajectories = Trajectory.objects.filter(project=project)
    assert trajectories.count() == job.trajectories_imported
    assert Step.objects.filter(trajectory__project=project).count() == job.steps_imported
    for trajectory in trajectories:
        assert list(trajectory.steps.order_by("index").values_list("index", flat=True)) == list(
            range(trajectory.step_count)
        )
    assert job.records_seen == job.trajectories_imported + job.duplicates + job.rejected


@FUZZ
@given(records=st.lists(record, min_size=1, max_size=4))
def test_generated_results_import_without_surprises(db, pm, samples_dir: Path, records: list[Any]) -> None:
    real = json.loads((samples_dir / SAMPLE).read_bytes())[3]  # the shortest real record: detection has a hold
    data = b"[\n" + b",\n".join(dumps(r) for r in [real, *records]) + b"\n]"
    import_and_check(pm, data)


@FUZZ
@given(data=st.data())
def test_corrupted_copies_of_the_real_sample_import_without_surprises(
    db, pm, samples_dir: Path, data: st.DataObject
) -> None:
    raw = bytearray((samples_dir / SAMPLE).read_bytes())
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
            raw = bytearray(b"[")
    import_and_check(pm, bytes(raw), data.draw(st.sampled_from(["", "tau_bench"])))


@FUZZ
@given(value=record)
def test_parse_yields_a_hashable_run_or_a_located_record_error(value: Any) -> None:
    raw = dumps(value)
    try:
        run = TauBenchImporter().parse(RawRecord(raw=raw, where="element 0", line=1, index=0, value=json.loads(raw)))
        digest = content_sha256(run_to_dict(run))
    except RecordError as exc:
        assert exc.message and (exc.pointer == "" or exc.pointer.startswith("/"))
        return
    assert len(digest) == 64 and run.steps
    assert run.goal and run.goal["external_id"].startswith("tau-bench:")


def test_the_uploader_names_the_model_a_results_file_does_not(project, samples_dir) -> None:
    from tests.trajectories.fixtures_util import run_import as _run
    from trajectories.models import Trajectory

    data = (samples_dir / "tau-bench_gpt-4o-airline_excerpt.json").read_bytes()
    import io

    from trajectories.models import ImportJob
    from trajectories.services.imports import import_job_run, source_file_store

    source = source_file_store(actor=None, project=project, name="gpt-4o-airline.json", stream=io.BytesIO(data))
    job = ImportJob.objects.create(project=project, source_file=source, bytes_total=source.size, default_model="gpt-4o")
    job = import_job_run(job_id=job.pk)
    assert job.trajectories_imported == 16
    assert set(Trajectory.objects.filter(project=project).values_list("model_name", flat=True)) == {"gpt-4o"}
    assert _run is not None
