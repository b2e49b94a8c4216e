"""mini-swe-agent `.traj.json`: v2 tool-calling, text-based and Responses API shapes, v1 (FORMATS.md §4), fuzz.

There is no real mini-swe-agent file among the shared samples; the fixtures follow §4 field by field.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from core.services import project_create
from tests.trajectories.fixtures_util import run_import
from trajectories.formats import importer_detect
from trajectories.formats.base import RawRecord, RecordError
from trajectories.formats.mini_swe_agent import MiniSweAgentImporter
from trajectories.models import ImportStatus, Step, Trajectory
from trajectories.services.storage import prepare

FIXTURES = Path(__file__).parent / "fixtures" / "mini_swe_agent"
PATCH = "diff --git a/src/parser.py b/src/parser.py\n-    return tokens[:-1]\n+    return tokens\n"
FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_slugs = itertools.count()


def import_fixture(project, name: str):
    path = FIXTURES / name
    job = run_import(project, path.read_bytes(), name=path.name)
    job.refresh_from_db()
    assert job.status == ImportStatus.DONE, job.error
    assert job.format_detected == "mini_swe_agent"
    assert (job.records_seen, job.trajectories_imported, job.rejected) == (1, 1, 0), job.errors
    trajectory = Trajectory.objects.get(project=project)
    steps = list(trajectory.steps.order_by("index"))
    assert len(steps) == trajectory.step_count
    return trajectory, steps


def commands(steps: list[Step]) -> list[str | None]:
    return [(s.arguments or {}).get("command") for s in steps]


@pytest.mark.smoke
def test_v2_tool_calling_pairs_each_command_with_its_output_by_call_id(coding_project) -> None:
    trajectory, steps = import_fixture(coding_project, "v2_toolcall.traj.json")
    assert [(s.kind, s.tool_name, s.tool_call_id) for s in steps] == [
        ("tool_call", "bash", "call_a"),
        ("tool_call", "bash", "call_b"),
        ("tool_call", "bash", "call_c"),
        ("tool_call", "bash", "call_d"),
    ]
    assert commands(steps) == [
        "ls src",
        "cat src/missing.py",
        "sed -i 's/tokens\\[:-1\\]/tokens/' src/parser.py",
        "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git diff",
    ]
    assert steps[0].turn_id == steps[1].turn_id != steps[2].turn_id  # parallel calls of one turn
    assert steps[0].arguments_raw == '{"command": "ls src"}'
    # the outputs came back in the other order: paired by id, not position
    assert steps[0].observation.startswith("<returncode>0</returncode>\n<output>\n__init__.py")
    assert "No such file or directory" in steps[1].observation
    assert [s.success_flag for s in steps] == [True, False, True, True]  # returncode == 0; the exit submitted
    assert steps[3].observation == PATCH  # the terminal `exit` message ends the submitting command
    assert [m["role"] for m in steps[0].state] == ["system", "user"]
    assert steps[1].state == [] and steps[1].plan == ""
    assert steps[2].state == [
        {"role": "user", "content": "Tool call error:\n<error>No tool calls found in the response.</error>"}
    ]
    assert steps[0].plan == "THOUGHT: look around in parallel."
    assert (steps[0].prompt_tokens, steps[0].completion_tokens, steps[0].cost_usd) == (1200, 60, 0.004)
    assert steps[1].prompt_tokens is None and steps[1].cost_usd is None  # the turn's usage is counted once
    assert steps[0].started_at.isoformat() == "2026-01-01T00:00:00+00:00"
    assert (steps[0].latency_ms, steps[1].latency_ms, steps[2].latency_ms) == (1000.0, 1500.0, 250.0)
    assert (
        trajectory.goal_text
        == "Parser.parse drops the last token\nWhen the input ends without a newline, the last token is lost.\n"
    )
    assert trajectory.model_name == "anthropic/claude-sonnet-4-5-20250929"
    assert trajectory.scaffold == "mini-swe-agent"
    assert trajectory.final_answer == PATCH
    assert trajectory.outcome == {"details": {"exit_status": "Submitted", "submission": PATCH}}
    assert trajectory.metadata["trajectory_format"] == "mini-swe-agent-1.1"
    assert trajectory.metadata["mini_version"] == "2.0.0"
    assert trajectory.metadata["model_stats"] == {"instance_cost": 0.0123, "api_calls": 4}
    assert "sk-ant-fixture-secret-0002" not in json.dumps(trajectory.metadata)  # scrubbed by the pipeline


@pytest.mark.smoke
def test_the_instance_id_is_the_task() -> None:
    data = (FIXTURES / "v2_toolcall.traj.json").read_bytes()
    run = MiniSweAgentImporter().parse(RawRecord(raw=data, where="document", line=1, index=0))
    assert run.task == {"instance_id": "acme__parser-42"}
    run = MiniSweAgentImporter().parse(
        RawRecord(raw=(FIXTURES / "v2_textbased.traj.json").read_bytes(), where="document", line=1, index=0)
    )
    assert run.task is None


@pytest.mark.smoke
def test_v2_text_based_observations_are_user_messages_with_a_returncode(coding_project) -> None:
    trajectory, steps = import_fixture(coding_project, "v2_textbased.traj.json")
    assert [(s.kind, s.tool_name) for s in steps] == [
        ("tool_call", "bash"),
        ("tool_call", "bash"),
        ("respond", "respond"),
    ]
    assert commands(steps)[:2] == ["grep -rn 'tokens\\[:-1\\]' src", "python -m pytest -q"]
    assert steps[0].plan.startswith("THOUGHT: Find the module.")
    assert [s.success_flag for s in steps] == [True, False, None]
    assert steps[2].arguments == {"content": "I am not sure what to do next."}
    assert steps[1].latency_ms == 2000.0
    assert trajectory.goal_text == "Please solve this issue: the parser drops the last token."
    assert trajectory.outcome == {"details": {"exit_status": "LimitsExceeded", "submission": ""}}
    assert trajectory.final_answer == ""


@pytest.mark.smoke
def test_v1_commands_are_bash_blocks_and_outputs_the_next_user_message(coding_project) -> None:
    trajectory, steps = import_fixture(coding_project, "v1.traj.json")
    assert [s.kind for s in steps] == ["respond", "tool_call", "tool_call", "tool_call"]
    # two blocks were a format error: nothing ran, the text is the model's answer for that turn
    assert steps[0].arguments["content"].startswith("THOUGHT: two ideas.")
    assert commands(steps)[1:] == ["ls src", "python nope.py", "echo MINI_SWE_AGENT_FINAL_OUTPUT && git diff"]
    assert steps[1].state == [
        {"role": "user", "content": "Please always provide EXACTLY ONE action in triple backticks, found 2 actions."}
    ]
    assert [s.success_flag for s in steps] == [None, True, False, True]  # from <returncode>
    assert steps[3].observation == PATCH
    assert steps[1].arguments_raw is None and steps[1].tool_call_id == ""
    assert trajectory.model_name == "gpt-4o"
    assert trajectory.metadata["trajectory_format"] == "mini-swe-agent-1"
    assert trajectory.final_answer == PATCH


@pytest.mark.smoke
def test_responses_api_turns_are_response_objects(coding_project) -> None:
    trajectory, steps = import_fixture(coding_project, "v2_responses.traj.json")
    assert [(s.tool_name, s.tool_call_id, s.turn_id) for s in steps] == [
        ("bash", "call_r1", "resp_1"),
        ("bash", "call_r2", "resp_2"),
    ]
    assert commands(steps) == ["sed -n 25,32p src/parser.py", "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git diff"]
    assert steps[0].plan == "The slice is wrong.\n\nLet me look at the file."
    assert steps[0].observation == "<returncode>0</returncode>\n<output>\n    return tokens[:-1]\n</output>"
    assert (steps[0].prompt_tokens, steps[0].completion_tokens) == (900, 50)
    assert steps[0].latency_ms == 750.0
    assert [s.success_flag for s in steps] == [True, True]
    assert trajectory.model_name == "openai/gpt-5"
    assert trajectory.final_answer == PATCH


def test_detection_claims_mini_files_and_no_other(samples_dir: Path) -> None:
    importer = MiniSweAgentImporter()
    for path in FIXTURES.glob("*.json"):
        head = path.read_bytes()[:65536]
        assert importer.detect(head) >= 70, path.name
        assert importer_detect(head).name == "mini_swe_agent", path.name
    for path in sorted(samples_dir.iterdir()):
        if path.suffix in (".json", ".traj"):
            assert importer.detect(path.read_bytes()[:65536]) == 0, path.name
    for path in (FIXTURES.parent / "swe_agent").glob("*.traj"):
        assert importer.detect(path.read_bytes()[:65536]) == 0, path.name
    chat = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
    assert importer.detect(chat) == 0
    assert importer.detect(b"[" + chat.strip() + b"]") == 0


# --- bad input -------------------------------------------------------------------------------------

INFO = {"mini_version": "2.0.0"}


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("value", "pointer", "words"),
    [
        ({"info": INFO}, "/messages", "missing 'messages'"),
        ({"info": INFO, "messages": {}}, "/messages", "must be a list"),
        ({"info": INFO, "messages": [{"role": "user", "content": "hi"}]}, "/messages", "nothing to segment"),
        ({"info": INFO, "messages": ["hi"]}, "/messages/0", "must be an object"),
        ({"info": INFO, "messages": [{"content": "x"}]}, "/messages/0/role", "role"),
        ({"info": INFO, "messages": [{"role": "assistant", "content": 5}]}, "/messages/0/content", "content"),
        (
            {"info": INFO, "messages": [{"role": "assistant", "content": "", "extra": {"actions": [{"cmd": "ls"}]}}]},
            "/messages/0/extra/actions/0/command",
            "'command' string",
        ),
        ({"info": INFO, "messages": [{"role": "assistant", "extra": []}]}, "/messages/0/extra", "must be an object"),
        ({"info": INFO, "messages": [{"object": "response", "output": {}}]}, "/messages/0/output", "must be a list"),
        ({"info": "x", "messages": []}, "/info", "must be an object"),
    ],
)
def test_a_bad_document_is_rejected_with_where_and_why(coding_project, value: Any, pointer: str, words: str) -> None:
    job = run_import(coding_project, json.dumps(value, indent=1).encode(), format_name="mini_swe_agent")
    job.refresh_from_db()
    assert job.status == ImportStatus.DONE, job.error
    assert (job.records_seen, job.rejected, job.trajectories_imported) == (1, 1, 0)
    error = job.errors[0]
    assert (error["where"], error["pointer"]) == ("document", pointer)
    assert words in error["message"]


# --- fuzz ------------------------------------------------------------------------------------------


def mostly(valid: st.SearchStrategy, odd: st.SearchStrategy, one_in: int = 12) -> st.SearchStrategy:
    """Mostly well-formed, now and then odd: a record that fails its first check tests little else."""
    return st.integers(0, one_in - 1).flatmap(lambda n: odd if n == one_in // 2 else valid)


texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "a\x00b", "<returncode>1</returncode>\n<output>\nx\n</output>", "```bash\nls\n```", "é😀"]),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), texts)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=6
)
call_ids = mostly(st.sampled_from(["c1", "c2", ""]), scalars)
extra = mostly(
    st.fixed_dictionaries(
        {},
        optional={
            "actions": mostly(
                st.lists(
                    st.fixed_dictionaries({"command": mostly(texts, scalars)}, optional={"tool_call_id": call_ids}),
                    max_size=3,
                ),
                json_values,
            ),
            "returncode": mostly(st.sampled_from([0, 1, -1]), scalars),
            "timestamp": mostly(st.floats(1.7e9, 1.8e9), scalars),
            "cost": scalars,
            "interrupt_type": st.just("FormatError"),
            "exit_status": st.sampled_from(["Submitted", "LimitsExceeded"]),
            "response": mostly(st.fixed_dictionaries({"usage": json_values}), json_values),
        },
    ),
    json_values,
)
output_item = mostly(
    st.one_of(
        st.fixed_dictionaries({"type": st.just("message"), "content": mostly(texts, json_values)}),
        st.fixed_dictionaries({"type": st.just("reasoning"), "summary": json_values}),
        st.fixed_dictionaries(
            {"type": st.just("function_call"), "call_id": call_ids, "name": texts, "arguments": texts}
        ),
    ),
    json_values,
)
message = mostly(
    st.one_of(
        st.fixed_dictionaries(
            {
                "role": mostly(st.sampled_from(["system", "user", "assistant", "assistant", "tool", "exit"]), scalars),
                "content": mostly(texts, json_values),
            },
            optional={"extra": extra, "tool_call_id": call_ids, "tool_calls": json_values},
        ),
        st.fixed_dictionaries(
            {"object": st.just("response"), "output": mostly(st.lists(output_item, max_size=3), json_values)},
            optional={"extra": extra, "id": texts, "usage": json_values},
        ),
        st.fixed_dictionaries(
            {"type": st.just("function_call_output"), "call_id": call_ids, "output": mostly(texts, json_values)},
            optional={"extra": extra},
        ),
    ),
    json_values,
)
assistant_turn = st.fixed_dictionaries(
    {
        "role": st.just("assistant"),
        "content": texts,
        "extra": st.fixed_dictionaries(
            {
                "actions": st.lists(
                    st.fixed_dictionaries({"command": texts}, optional={"tool_call_id": call_ids}),
                    min_size=1,
                    max_size=2,
                )
            },
            optional={"timestamp": st.floats(1.7e9, 1.8e9), "cost": st.floats(0, 1)},
        ),
    }
)
messages = st.tuples(
    st.lists(message, max_size=6), st.lists(st.one_of(assistant_turn, assistant_turn, message), min_size=1, max_size=3)
).map(lambda t: [t[0][0], *t[1], *t[0][1:]] if t[0] else t[1])
document = mostly(
    st.fixed_dictionaries(
        {"messages": mostly(messages.filter(bool), json_values)},
        optional={
            "info": mostly(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "exit_status": texts,
                        "submission": mostly(texts, json_values),
                        "config": json_values,
                        "mini_version": texts,
                    },
                ),
                json_values,
            ),
            "trajectory_format": st.sampled_from(["mini-swe-agent-1", "mini-swe-agent-1.1"]),
            "instance_id": st.one_of(texts, scalars),
        },
    ),
    json_values,
)


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=1).encode()  # orjson cannot write integers beyond 64 bits


def import_and_check(pm, data: bytes, format_name: str = "") -> None:
    project = project_create(actor=pm, name="Fuzz", kind="coding", slug=f"mini-fuzz-{next(_slugs)}")
    job = run_import(project, data, name="run.traj.json", format_name=format_name)  # must not raise
    job.refresh_from_db()
    assert job.status in (ImportStatus.DONE, ImportStatus.FAILED)
    if job.status == ImportStatus.FAILED:
        assert job.error.strip()
    assert "internal error" not in job.error, job.error
    for error in job.errors:
        assert error["where"].strip() and error["message"].strip(), error
        assert "could not be read" not in error["message"], error  # an importer crash, not a located error
    assert job.records_seen == job.trajectories_imported + job.duplicates + job.rejected
    trajectories = Trajectory.objects.filter(project=project)
    assert trajectories.count() == job.trajectories_imported
    for trajectory in trajectories:
        assert trajectory.steps.count() == trajectory.step_count


@FUZZ
@given(value=document)
def test_generated_documents_import_without_surprises(db, pm, value: Any) -> None:
    import_and_check(pm, dumps(value), "mini_swe_agent")


@FUZZ
@given(
    seed=st.integers(0, 2**32 - 1),
    cuts=st.integers(1, 4),
    name=st.sampled_from(sorted(p.name for p in FIXTURES.glob("*.json"))),
)
def test_corrupted_copies_import_without_surprises(db, pm, seed: int, cuts: int, name: str) -> None:
    rng = random.Random(seed)
    data = bytearray((FIXTURES / name).read_bytes())
    for _ in range(cuts):
        action = rng.choice(["flip", "insert", "delete", "truncate"])
        at = rng.randrange(max(len(data), 1))
        if action == "flip" and data:
            data[at] = rng.randrange(256)
        elif action == "insert":
            data[at:at] = rng.randbytes(rng.randint(1, 4))
        elif action == "delete":
            del data[at : at + rng.randint(1, 20)]
        else:
            del data[at:]
    import_and_check(pm, bytes(data), rng.choice(["", "mini_swe_agent"]))


@FUZZ
@given(value=document)
def test_parse_yields_a_hashable_run_or_a_located_record_error(value: Any) -> None:
    record = RawRecord(raw=dumps(value), where="document", line=1, index=0)
    try:
        run = MiniSweAgentImporter().parse(record)
        prepared = prepare(record, run)  # what the import does next, without the database
    except RecordError as exc:
        assert exc.message
        assert exc.pointer == "" or exc.pointer.startswith("/")
        return
    assert len(prepared.content_sha256) == 64
    assert run.steps and all(s.kind in ("tool_call", "respond") and s.tool_name for s in run.steps)
