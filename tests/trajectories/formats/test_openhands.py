"""OpenHands: the real trajectory export, output.jsonl (events and legacy pairs), secrets, bad input, fuzz."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
import zstandard
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from core.services import project_create
from tests.trajectories.fixtures_util import run_import
from trajectories.formats import importer_detect, openhands, openhands_events
from trajectories.formats.base import ParsedRun, RawRecord, RecordError
from trajectories.formats.canonical import content_sha256, run_to_dict
from trajectories.formats.openhands import OpenHandsImporter
from trajectories.models import ImportStatus, Step, Trajectory
from trajectories.selectors.runs import trajectory_payload

FIXTURES = Path(__file__).parent / "fixtures" / "openhands"
SAMPLE = "openhands_trajectory_wrong_initial_state.json"
FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_slugs = itertools.count()


def import_bytes(project, data: bytes, name: str, **kwargs: Any):
    job = run_import(project, data, name=name, **kwargs)
    job.refresh_from_db()
    return job


def steps_of(trajectory: Trajectory) -> list[Step]:
    return list(trajectory.steps.order_by("index"))


# --- the real sample -----------------------------------------------------------------------------


@pytest.mark.smoke
def test_the_real_export_imports_as_four_steps_paired_through_cause(project, samples_dir: Path) -> None:
    data = (samples_dir / SAMPLE).read_bytes()
    events = json.loads(data)
    job = import_bytes(project, data, SAMPLE)
    assert job.status == ImportStatus.DONE, job.error
    assert job.format_detected == "openhands"
    assert (job.records_seen, job.trajectories_imported, job.steps_imported, job.rejected) == (1, 1, 4, 0)
    trajectory = Trajectory.objects.get(project=project)
    steps = steps_of(trajectory)
    assert [s.tool_name for s in steps] == ["read", "run", "read", "finish"]
    assert all(s.kind == "tool_call" for s in steps)
    # the steps are events 3, 5, 7, 9, and each observation is the event whose cause is the action's id
    by_id = {e["id"]: e for e in events}
    assert [s.tool_call_id for s in steps] == [by_id[i]["tool_call_metadata"]["tool_call_id"] for i in (3, 5, 7, 9)]
    answers = {e["cause"]: e for e in events if "cause" in e}
    for step, action_id in zip(steps, (3, 5, 7, 9), strict=True):
        action = by_id[action_id]
        assert step.plan == action["args"]["thought"]
        assert step.started_at.isoformat().startswith(action["timestamp"][:19])
        observation = answers.get(action_id)
        if observation is None:
            assert step.observation is None and step.success_flag is None and step.ended_at is None
        else:
            assert step.observation == observation["content"]
            assert step.ended_at.isoformat().startswith(observation["timestamp"][:19])
            assert step.success_flag is True
    assert steps[1].arguments["command"] == "mv /workspace/game_2048.py /workspace/2048.py"
    assert "thought" not in steps[1].arguments  # the thought is the plan
    # the user message is context, not a step
    assert trajectory.goal_text == "Please rename game_2048.py to 2048.py"
    assert steps[0].state == [{"role": "user", "content": "Please rename game_2048.py to 2048.py"}]
    assert [s.state for s in steps[1:]] == [[], [], []]
    assert trajectory.model_name == "claude-3-5-sonnet-20241022"
    assert trajectory.final_answer.startswith("The file has been successfully renamed")
    assert (steps[0].prompt_tokens, steps[0].completion_tokens) == (3475, 95)
    assert len({s.turn_id for s in steps}) == 4  # one model response each


# --- output.jsonl ----------------------------------------------------------------------------------


@pytest.mark.smoke
def test_output_jsonl_with_events_pairs_groups_and_scores(project) -> None:
    data = (FIXTURES / "output_events.jsonl").read_bytes()
    job = import_bytes(project, data, "output.jsonl")
    assert job.status == ImportStatus.DONE, job.error
    assert job.format_detected == "openhands"
    assert (job.records_seen, job.trajectories_imported, job.rejected) == (2, 2, 0), job.errors
    first = Trajectory.objects.get(project=project, source_pointer__contains="line 1")
    steps = steps_of(first)
    assert [(s.kind, s.tool_name) for s in steps] == [
        ("tool_call", "run"),
        ("tool_call", "read"),
        ("tool_call", "think"),
        ("tool_call", "edit"),
        ("respond", "respond"),
        ("tool_call", "run"),
        ("tool_call", "finish"),
    ]
    # two calls of one model response: one turn, consecutive steps, usage counted once
    assert steps[0].turn_id == steps[1].turn_id == "resp-1"
    assert (steps[0].prompt_tokens, steps[1].prompt_tokens) == (1200, None)
    assert steps[0].plan == "Let me run the failing test and look at separable.py."
    # observations found through `cause`, though they came back in the other order
    assert steps[0].observation == "FAILED tests/test_sep.py::test_nested - AssertionError"
    assert steps[1].observation.startswith("def _cstack")
    # exit code 1 → failed; an error observation → failed; a respond or finish step has no result
    assert [s.success_flag for s in steps] == [False, True, True, False, None, True, None]
    assert steps[2].arguments == {"thought": "The right block is set to 1 instead of copied."}
    assert steps[4].arguments == {"content": "The old string is ambiguous; I will include more context next."}
    # system prompt, user message and the recall observation are the first step's context; state changes are not
    assert [m["role"] for m in steps[0].state] == ["system", "user", "environment"]
    assert steps[0].state[2]["content"] == "Added workspace context"
    assert first.goal_text.endswith("Fix separability_matrix for nested CompoundModels.")
    assert first.model_name == "openai/gpt-4o-2024-08-06"
    assert first.scaffold == "openhands/CodeActAgent"
    assert first.outcome_reward == 1.0
    assert first.outcome["details"]["resolved"] is True
    assert first.outcome["details"]["git_patch"].startswith("diff --git a/astropy/modeling/separable.py")
    assert first.final_answer == "I fixed _cstack so nested models keep their separability."
    assert first.metadata["openhands_version"] == "0.35.0"
    assert first.metadata["metrics"]["accumulated_cost"] == 0.0412
    second = Trajectory.objects.get(project=project, source_pointer__contains="line 2")
    assert [s.tool_name for s in steps_of(second)] == ["run", "finish"]
    assert steps_of(second)[0].success_flag is False  # exit code -1: timed out
    assert second.outcome_reward == 0.0
    assert second.metadata["error"] == "Agent reached maximum iteration"


@pytest.mark.smoke
def test_output_jsonl_with_legacy_action_observation_pairs(project) -> None:
    job = import_bytes(project, (FIXTURES / "output_legacy_pairs.jsonl").read_bytes(), "output.jsonl")
    assert job.status == ImportStatus.DONE, job.error
    trajectory = Trajectory.objects.get(project=project)
    steps = steps_of(trajectory)
    assert [(s.kind, s.tool_name) for s in steps] == [
        ("tool_call", "run"),
        ("tool_call", "run"),
        ("tool_call", "write"),
        ("respond", "respond"),
        ("tool_call", "finish"),
    ]
    # paired by position in the pair; old files keep exit_code directly in extras
    assert [s.observation for s in steps[:2]] == ["CHANGELOG.md\nsetup.py", "cat: CHANGES: No such file or directory"]
    assert [s.success_flag for s in steps] == [True, False, True, None, None]
    assert steps[0].state == [{"role": "user", "content": "Add a CHANGELOG entry."}]
    assert steps[0].plan == "Look around first."
    assert trajectory.model_name == "claude-2"
    assert trajectory.outcome_reward == 0.0
    assert trajectory.goal_text == "Add a CHANGELOG entry."


@pytest.mark.smoke
def test_an_api_key_in_llm_config_never_reaches_the_database(project) -> None:
    data = (FIXTURES / "output_events.jsonl").read_bytes() + (FIXTURES / "output_legacy_pairs.jsonl").read_bytes()
    secrets = [b"sk-proj-FAKEFAKEFAKEFAKEFAKE0123456789", b"sk-ant-FAKEFAKEFAKEFAKEFAKE0123"]
    assert all(secret in data for secret in secrets)
    job = import_bytes(project, data, "output.jsonl")
    assert job.status == ImportStatus.DONE, job.error
    assert job.scrubbed == {"/metadata/llm_config/api_key": 3}  # the masked one is scrubbed too
    for trajectory in Trajectory.objects.filter(project=project):
        assert trajectory.metadata["llm_config"]["api_key"] == "[scrubbed]"
        stored = orjson.dumps([trajectory.metadata, trajectory.outcome, trajectory.alternatives]) + trajectory_payload(
            trajectory
        )
        assert not any(secret in stored for secret in secrets)
    for step in Step.objects.filter(trajectory__project=project):
        assert not any(secret.decode() in json.dumps([step.state, step.arguments]) for secret in secrets)
    with job.source_file.stored.open("rb") as stored_file:
        kept = zstandard.ZstdDecompressor().decompressobj().decompress(stored_file.read())
    assert not any(secret in kept for secret in secrets)


@pytest.mark.smoke
def test_the_api_response_form_and_an_agent_message_as_a_respond_step(project) -> None:
    job = import_bytes(project, (FIXTURES / "export_api_response.json").read_bytes(), "trajectory.json")
    assert job.status == ImportStatus.DONE, job.error
    assert job.format_detected == "openhands"
    (step,) = steps_of(Trajectory.objects.get(project=project))
    assert (step.kind, step.tool_name, step.arguments) == ("respond", "respond", {"content": "2 + 2 = 4."})
    assert step.state == [{"role": "user", "content": "What is 2 + 2?"}]
    assert Trajectory.objects.get(project=project).final_answer == "2 + 2 = 4."


@pytest.mark.smoke
def test_importing_the_same_export_twice_adds_nothing(project, samples_dir: Path) -> None:
    data = (samples_dir / SAMPLE).read_bytes()
    import_bytes(project, data, SAMPLE)
    again = import_bytes(project, data, SAMPLE)
    assert (again.trajectories_imported, again.duplicates) == (0, 1)


# --- bad input -----------------------------------------------------------------------------------


def output_line(history: Any, **extra: Any) -> dict[str, Any]:
    return {"instance_id": "x__y-1", "instruction": "do it", "history": history, "metadata": {}, **extra}


def run_event(i: int, **changes: Any) -> dict[str, Any]:
    event = {"id": i, "timestamp": "2025-01-01T00:00:00", "source": "agent", "action": "run", "args": {"command": "ls"}}
    return event | changes


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("line", "pointer", "words"),
    [
        (output_line("not a list"), "/history", "history must be a list"),
        (output_line([run_event(1, action=5)]), "/history/0/action", "action must be a string"),
        (output_line([run_event(1, timestamp="yesterday")]), "/history/0/timestamp", "ISO 8601"),
        (output_line([run_event(1, args=[1, 2])]), "/history/0/args", "args must be an object"),
        (output_line([[run_event(1)]]), "/history/0", "[action, observation]"),
        (
            output_line([{"id": 1, "source": "user", "action": "message", "args": {"content": "hi"}}]),
            "/history",
            "no agent action",
        ),
        (
            output_line([run_event(1)], test_result={"report": {"resolved": "yes"}}),
            "/test_result/report/resolved",
            "true or false",
        ),
        (output_line([run_event(1)], metadata={"llm_config": "gpt-4o"}), "/metadata/llm_config", "must be an object"),
    ],
)
def test_bad_records_are_rejected_with_where_and_why(project, line: dict[str, Any], pointer: str, words: str) -> None:
    good = output_line([run_event(1), {"id": 2, "cause": 1, "observation": "run", "content": "a", "extras": {}}])
    data = orjson.dumps(good) + b"\n" + orjson.dumps(line) + b"\n"
    job = import_bytes(project, data, "output.jsonl", format_name="openhands")
    assert job.status == ImportStatus.DONE
    assert (job.trajectories_imported, job.rejected) == (1, 1)
    (error,) = job.errors
    assert error["where"] == "line 2"
    assert error["pointer"] == pointer
    assert words in error["message"]


@pytest.mark.smoke
def test_a_truncated_export_fails_with_a_located_message(project, samples_dir: Path) -> None:
    data = (samples_dir / SAMPLE).read_bytes()
    job = import_bytes(project, data[: len(data) // 2], SAMPLE, format_name="openhands")
    assert job.status == ImportStatus.DONE
    assert (job.records_seen, job.rejected, job.trajectories_imported) == (1, 1, 0)
    assert "malformed JSON" in job.errors[0]["message"] and "line" in job.errors[0]["message"]


# --- detection -----------------------------------------------------------------------------------


@pytest.mark.smoke
def test_detection_picks_openhands_files_and_claims_no_other(samples_dir: Path) -> None:
    importer = OpenHandsImporter()
    for path in (samples_dir / SAMPLE, *FIXTURES.iterdir()):
        head = path.read_bytes()[:65536]
        assert 70 <= importer.detect(head) <= 95, path.name
        assert importer_detect(head).name == "openhands", path.name
    for path in samples_dir.iterdir():
        if path.name != SAMPLE:
            assert importer.detect(path.read_bytes()[:65536]) == 0, path.name
    chat = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    assert importer.detect(orjson.dumps(chat) + b"\n") == 0
    assert importer.detect(b"[" + orjson.dumps(chat) + b"]") == 0


# --- fuzz ----------------------------------------------------------------------------------------


def mostly(valid: st.SearchStrategy, odd: st.SearchStrategy, one_in: int = 20) -> st.SearchStrategy:
    return st.integers(0, one_in - 1).flatmap(lambda n: odd if n == one_in // 2 else valid)


texts = st.one_of(st.text(max_size=15), st.sampled_from(["", "a\x00b", "é", "ERROR: no", "x" * 200]))
ids = mostly(st.integers(0, 8), st.one_of(st.none(), texts, st.booleans()))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), texts)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=2) | st.dictionaries(texts, inner, max_size=2), max_leaves=5
)
timestamps = mostly(st.sampled_from(["2025-01-27T23:16:54.105108", "2025-01-27T23:16:55", None]), texts)
actions = mostly(
    st.sampled_from(
        ["run", "read", "edit", "think", "finish", "message", "system", "recall", "browse", "call_tool_mcp"]
    ),
    st.one_of(texts, st.integers()),
)
sources = mostly(
    st.sampled_from(["agent", "agent", "agent", "user", "environment"]), st.one_of(st.none(), st.integers()), 40
)
args = mostly(
    st.fixed_dictionaries(
        {}, optional={"command": texts, "thought": texts, "content": texts, "path": texts, "tools": json_values}
    ),
    st.one_of(st.none(), texts, json_values),
)
call_metadata = mostly(
    st.fixed_dictionaries(
        {
            "function_name": mostly(texts, st.integers()),
            "tool_call_id": mostly(st.sampled_from(["c1", "c2", "c3"]), st.integers()),
            "model_response": mostly(
                st.fixed_dictionaries(
                    {
                        "id": st.sampled_from(["r1", "r2"]),
                        "model": texts,
                        "usage": st.fixed_dictionaries(
                            {}, optional={"prompt_tokens": st.integers(-5, 10**9), "completion_tokens": json_values}
                        ),
                    }
                ),
                json_values,
            ),
        }
    ),
    json_values,
)
action_event = st.fixed_dictionaries(
    {"id": ids, "source": sources, "action": actions, "args": args},
    optional={"timestamp": timestamps, "tool_call_metadata": call_metadata, "message": texts},
)
observation_event = st.fixed_dictionaries(
    {
        "id": ids,
        "source": sources,
        "observation": mostly(st.sampled_from(["run", "read", "error", "agent_state_changed", "null"]), json_values),
        "content": mostly(texts, json_values),
    },
    optional={
        "cause": ids,
        "timestamp": timestamps,
        "success": json_values,
        "extras": mostly(
            st.fixed_dictionaries(
                {}, optional={"exit_code": json_values, "metadata": st.fixed_dictionaries({"exit_code": json_values})}
            ),
            json_values,
        ),
    },
)
events = st.lists(mostly(st.one_of(action_event, observation_event), json_values, 60), min_size=1, max_size=8)
pairs = st.lists(
    mostly(st.tuples(action_event, st.one_of(observation_event, st.just({}))).map(list), json_values, 60),
    min_size=1,
    max_size=5,
)
output_records = st.fixed_dictionaries(
    {"history": mostly(st.one_of(events, pairs), json_values)},
    optional={
        "instance_id": mostly(texts, json_values),
        "instruction": mostly(texts, json_values),
        "metadata": mostly(
            st.fixed_dictionaries(
                {},
                optional={
                    "agent_class": texts,
                    "llm_config": st.fixed_dictionaries({"api_key": texts, "model": texts}),
                },
            ),
            json_values,
        ),
        "test_result": mostly(
            st.fixed_dictionaries(
                {},
                optional={"git_patch": texts, "report": st.fixed_dictionaries({}, optional={"resolved": json_values})},
            ),
            json_values,
        ),
    },
)
VALID_EVENTS = [
    {"id": 0, "source": "user", "action": "message", "args": {"content": "go"}},
    {"id": 1, "source": "agent", "action": "run", "args": {"command": "ls", "thought": "look"}},
    {"id": 2, "source": "agent", "cause": 1, "observation": "run", "content": "a.py", "extras": {"exit_code": 0}},
]


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()  # orjson cannot write integers beyond 64 bits


@st.composite
def structured_files(draw: st.DrawFn) -> tuple[bytes, str]:
    if draw(st.booleans()):  # an export: one list of events
        return dumps([*VALID_EVENTS, *draw(events)]), draw(st.sampled_from(["", "openhands"]))
    records = [output_line(VALID_EVENTS), *draw(st.lists(output_records, min_size=1, max_size=4))]
    return b"".join(dumps(r) + b"\n" for r in records), draw(st.sampled_from(["", "openhands"]))


mutations = st.lists(
    st.tuples(st.sampled_from(["flip", "cut", "delete"]), st.floats(0, 1), st.integers(0, 255), st.integers(1, 30)),
    min_size=1,
    max_size=3,
)


def mutate(data: bytes, ops: list[tuple[str, float, int, int]]) -> bytes:
    """Bytes flipped, cut off or deleted at relative positions of the file."""
    out = bytearray(data)
    for action, where, byte, length in ops:
        at = min(int(where * len(out)), max(len(out) - 1, 0))
        if action == "flip" and out:
            out[at] = byte
        elif action == "delete":
            del out[at : at + length]
        else:
            del out[at:]
    return bytes(out) or b"["


def import_and_check(pm, data: bytes, format_name: str) -> None:
    project = project_create(actor=pm, name="Fuzz", kind="coding", slug=f"oh-fuzz-{next(_slugs)}")
    job = run_import(project, data, name="run.json", format_name=format_name)  # must not raise
    job.refresh_from_db()
    assert job.status in (ImportStatus.DONE, ImportStatus.FAILED)
    if job.status == ImportStatus.FAILED:
        assert job.error.strip()
    assert "internal error" not in job.error, job.error
    for error in job.errors:
        assert error["where"].strip() and error["message"].strip(), error
        assert "could not be read" not in error["message"], error  # the importer's own fault
    assert job.records_seen == job.trajectories_imported + job.duplicates + job.rejected
    for trajectory in Trajectory.objects.filter(project=project):
        indexes = list(trajectory.steps.order_by("index").values_list("index", flat=True))
        assert indexes == list(range(trajectory.step_count)) and trajectory.step_count > 0


@FUZZ
@given(file=structured_files())
def test_generated_openhands_files_import_without_surprises(db, pm, file: tuple[bytes, str]) -> None:
    import_and_check(pm, *file)


@FUZZ
@given(ops=mutations, format_name=st.sampled_from(["", "openhands"]))
def test_corrupted_copies_of_the_real_export_import_without_surprises(
    db, pm, samples_dir: Path, ops: list[tuple[str, float, int, int]], format_name: str
) -> None:
    import_and_check(pm, mutate((samples_dir / SAMPLE).read_bytes(), ops), format_name)


@FUZZ
@given(record=st.one_of(output_records, events))
def test_parse_yields_a_hashable_run_or_a_located_record_error(record: Any) -> None:
    raw = dumps(record)
    try:
        run = OpenHandsImporter().parse(RawRecord(raw=raw, where="line 1", line=1, index=0))
        digest = content_sha256(run_to_dict(run))
    except RecordError as exc:
        assert exc.message
        assert exc.pointer == "" or exc.pointer.startswith("/")
        return
    assert len(digest) == 64
    assert run.steps and all(s.kind in ("tool_call", "respond") and s.tool_name for s in run.steps)
    assert all(s.arguments is not None or s.arguments_raw is not None for s in run.steps)


# --- reading a record in part ----------------------------------------------------------------------
# parse() reads a record as far as the segmenter reads it (openhands._read); the run, or the located error,
# must be what reading the whole record gives.


def read_whole(raw: bytes) -> ParsedRun | RecordError:
    try:
        return openhands._run_of(openhands._read_whole(RawRecord(raw=raw, where="line 1", line=1, index=0)))
    except RecordError as exc:
        return exc


def read_as_imported(raw: bytes) -> ParsedRun | RecordError:
    try:
        return OpenHandsImporter().parse(RawRecord(raw=raw, where="line 1", line=1, index=0))
    except RecordError as exc:
        return exc


def same(a: ParsedRun | RecordError, b: ParsedRun | RecordError) -> bool:
    if isinstance(a, RecordError) or isinstance(b, RecordError):
        return type(a) is type(b) and (a.message, a.pointer) == (b.message, b.pointer)  # type: ignore[union-attr]
    return a == b


def with_extras(value: Any, extras: list[Any]) -> Any:
    """`value` with keys no reader looks up added to its objects, in turn, at every depth."""
    if isinstance(value, list):
        return [with_extras(v, extras) for v in value]
    if isinstance(value, dict):
        out = {k: with_extras(v, extras) for k, v in value.items()}
        if extras:
            extra = extras.pop()
            out[f"unread-{len(extras)}"] = extra
            out = dict(reversed(list(out.items()))) if len(extras) % 2 else out  # before and after the others
        return out
    return value


extra_values = st.lists(
    st.one_of(json_values, st.just(2**80), st.just({"choices": "not a list", "id": 5}), st.just("é\u2028")),
    max_size=12,
)


# Events with any of the keys the segmenter reads, each mostly of its usual type.
event_keys = {
    "id": ids,
    "source": sources,
    "args": args,
    "tool_call_metadata": call_metadata,
    "cause": ids,
    "thought": texts,
    "message": texts,
    "timestamp": timestamps,
    "content": mostly(texts, json_values, 4),
    "extras": mostly(
        st.fixed_dictionaries(
            {},
            optional={
                "exit_code": mostly(st.integers(-1, 2), json_values, 4),
                "metadata": mostly(
                    st.fixed_dictionaries({}, optional={"exit_code": st.integers(0, 2)}), json_values, 4
                ),
            },
        ),
        json_values,
        4,
    ),
    "success": mostly(st.booleans(), json_values, 4),
}
any_event = st.one_of(
    st.fixed_dictionaries({"action": actions}, optional=event_keys),
    st.fixed_dictionaries(
        {"observation": mostly(st.sampled_from(["run", "error", "null", "agent_state_changed"]), json_values, 4)},
        optional=event_keys,
    ),
    st.fixed_dictionaries({}, optional=event_keys),
)
responses = st.fixed_dictionaries(
    {},
    optional={
        "id": mostly(st.sampled_from(["r1", "r2"]), json_values),
        "model": mostly(texts, json_values),
        "choices": mostly(
            st.lists(
                st.fixed_dictionaries({}, optional={"message": st.fixed_dictionaries({}, optional={"content": texts})}),
                max_size=2,
            ),
            json_values,
        ),
        "usage": st.fixed_dictionaries({}, optional={"prompt_tokens": json_values, "completion_tokens": json_values}),
    },
)
rich_events = st.lists(
    st.tuples(any_event, st.one_of(st.none(), responses)).map(
        lambda pair: (
            pair[0]
            if pair[1] is None
            else pair[0]
            | {"tool_call_metadata": {"function_name": "f", "tool_call_id": "c1", "model_response": pair[1]}}
        )
    ),
    min_size=1,
    max_size=8,
)
rich_records = st.one_of(
    rich_events,
    st.fixed_dictionaries(
        {"history": rich_events},
        optional={
            "metadata": output_records.map(lambda r: r.get("metadata")),
            "metrics": json_values,
            "error": texts,
            "test_result": st.fixed_dictionaries(
                {}, optional={"git_patch": texts, "resolved": st.booleans(), "report": st.just({"resolved": True})}
            ),
        },
    ),
    st.fixed_dictionaries({"trajectory": st.one_of(rich_events, json_values)}),
)


@settings(FUZZ, max_examples=300)
@given(record=st.one_of(output_records, events, rich_records), extras=extra_values)
def test_a_record_read_in_part_gives_what_reading_it_whole_gives(record: Any, extras: list[Any]) -> None:
    raw = dumps(with_extras(record, extras))
    assert same(read_as_imported(raw), read_whole(raw))


@settings(FUZZ, max_examples=300)
@given(history=st.one_of(rich_events, events), extras=extra_values)
def test_an_event_read_whole_is_made_the_event_read_in_part(history: list[Any], extras: list[Any]) -> None:
    # The segmenter walks Events: decoded from the record (the usual way), or made of the dicts of a record read
    # whole (event_of). Where the decoder takes an event, both must be the same Event.
    for event in with_extras(history, extras):
        raw = dumps(event)
        try:
            part = msgspec.json.decode(raw, type=openhands_events.Event)
        except msgspec.DecodeError:
            continue  # not of the decoder's types (or not JSON msgspec reads): the record is read whole
        assert openhands_events.event_of(openhands._events().WHOLE.decode(raw)) == part


def test_the_real_export_s_events_are_made_the_events_read_in_part(samples_dir: Path) -> None:
    raw_events = json.loads((samples_dir / SAMPLE).read_bytes())
    parts = msgspec.json.decode((samples_dir / SAMPLE).read_bytes(), type=list[openhands_events.Event])
    assert len(parts) == len(raw_events) == 8
    assert [openhands_events.event_of(e) for e in raw_events] == parts
    assert any(type(p.tool_call_metadata) is openhands_events.Call for p in parts)


def bench_like_line(samples_dir: Path) -> bytes:
    events = json.loads((samples_dir / SAMPLE).read_bytes())
    return orjson.dumps(output_line(events, instance={"problem_statement": "long"}, metrics={"accumulated_cost": 1.5}))


def test_the_real_export_is_read_in_part_and_gives_the_same_run(samples_dir: Path) -> None:
    for raw in ((samples_dir / SAMPLE).read_bytes(), bench_like_line(samples_dir)):
        part = openhands._read(raw)
        assert part is not None  # the fast way is taken for real records…
        whole = openhands._events().WHOLE.decode(raw)
        assert part != whole  # …and leaves out what the segmenter never reads (model responses' bulk)
        assert "created" not in str(part) and "created" in str(whole)
        assert same(read_as_imported(raw), read_whole(raw))
        assert isinstance(read_as_imported(raw), ParsedRun)


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        # an event with only keys the segmenter does not read is an error, as when read whole…
        ([run_event(1), {"unread": 1}], "an event needs an 'action' or an 'observation'"),
        # …and an empty one is skipped
        ([run_event(1), {}], None),
        ([[run_event(1), {}]], None),  # a legacy pair's missing half
    ],
)
def test_an_event_empty_when_read_in_part_is_told_from_an_empty_event(history: list[Any], expected: str | None) -> None:
    raw = orjson.dumps(output_line(history))
    result = read_as_imported(raw)
    assert same(result, read_whole(raw))
    if expected is None:
        assert isinstance(result, ParsedRun) and len(result.steps) == 1
    else:
        assert isinstance(result, RecordError) and expected in result.message and result.pointer == "/history/1"


def test_bad_utf8_in_a_field_never_read_is_still_a_located_error() -> None:
    raw = orjson.dumps(output_line([run_event(1, tool_call_metadata={"model_response": {"created": "x"}})]))
    raw = raw.replace(b'"created":"x"', b'"created":"\xff"')
    result = read_as_imported(raw)
    assert isinstance(result, RecordError)
    assert "not valid UTF-8: byte 0xff" in result.message


def test_a_number_beyond_a_float_in_a_field_never_read_does_not_reject_the_record() -> None:
    # orjson refuses 1e400 anywhere; it is valid JSON, and in a field the segmenter reads it is refused, located
    good = orjson.dumps(output_line([run_event(1, timeout=1)])).replace(b'"timeout":1', b'"timeout":1e400')
    run = read_as_imported(good)
    assert isinstance(run, ParsedRun) and [s.tool_name for s in run.steps] == ["run"]
    bad = orjson.dumps(output_line([run_event(1, args={"n": 1})])).replace(b'"n":1', b'"n":1e400')
    assert isinstance(read_as_imported(bad), RecordError)


def test_an_integer_beyond_64_bits_reads_the_same_in_part_and_whole() -> None:
    raw = dumps(output_line([run_event(1, args={"n": 2**80}, tool_call_metadata={"function_name": "f"})]))
    part, whole = read_as_imported(raw), read_whole(raw)
    assert isinstance(part, ParsedRun) and part.steps[0].arguments == {"n": 2**80}
    assert same(part, whole)


def test_a_step_without_a_thought_takes_the_model_s_visible_text_as_its_plan_once_a_turn() -> None:
    response = {"id": "r1", "choices": [{"message": {"content": "Let me look first."}}]}
    call = {"function_name": "execute_bash", "tool_call_id": "c1", "model_response": response}
    history = [
        run_event(1, tool_call_metadata=call),  # no thought: the visible text
        run_event(2, tool_call_metadata=call | {"tool_call_id": "c2"}),  # the same turn's second call: none
        run_event(
            3,
            args={"command": "ls", "thought": "my own words"},
            tool_call_metadata=call | {"model_response": {"id": "r2", **response | {"id": "r2"}}},
        ),
    ]
    run = read_as_imported(orjson.dumps(output_line(history)))
    assert isinstance(run, ParsedRun)
    assert [s.plan for s in run.steps] == ["Let me look first.", "", "my own words"]
    assert [s.turn_id for s in run.steps] == ["r1", "r1", "r2"]
