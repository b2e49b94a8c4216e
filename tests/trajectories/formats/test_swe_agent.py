"""SWE-agent `.traj`: the real 0.x sample, the 1.x and function-calling layouts (FORMATS.md §3), fuzz."""

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
from trajectories.formats.swe_agent import SweAgentImporter, observation_ok, parse_command
from trajectories.models import ImportStatus, Step, Trajectory
from trajectories.services.storage import prepare

FIXTURES = Path(__file__).parent / "fixtures" / "swe_agent"
SAMPLE = "swe-agent_pydicom__pydicom-1458.traj"
INSTANCE = "swe-bench-instance_pydicom__pydicom-1458.json"
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


def steps_of(trajectory: Trajectory) -> list[Step]:
    return list(trajectory.steps.order_by("index"))


# --- the real sample (0.x) -----------------------------------------------------------------------


@pytest.mark.smoke
def test_the_real_sample_imports_with_its_known_facts(coding_project, samples_dir: Path) -> None:
    job = import_file(coding_project, samples_dir / SAMPLE)
    assert job.status == ImportStatus.DONE, job.error
    assert job.format_detected == "swe_agent"
    assert (job.records_seen, job.trajectories_imported, job.rejected, job.duplicates) == (1, 1, 0, 0)
    trajectory = Trajectory.objects.get(project=coding_project)
    steps = steps_of(trajectory)
    assert trajectory.step_count == len(steps) == 12
    assert [s.tool_name for s in steps] == [
        "create", "edit", "bash", "find_file", "open", "edit", "edit", "edit", "edit", "bash", "bash", "submit",
    ]  # fmt: skip
    assert {s.kind for s in steps} == {"tool_call"}
    assert [steps[i].arguments for i in (2, 9, 10)] == [
        {"command": "python reproduce_bug.py"},
        {"command": "python reproduce_bug.py"},
        {"command": "rm reproduce_bug.py"},
    ]
    assert steps[0].arguments == {"filename": "reproduce_bug.py"}
    assert steps[3].arguments == {"file_name": "numpy_handler.py"}
    assert steps[4].arguments == {"path": "pydicom/pixel_data_handlers/numpy_handler.py", "line_number": 293}
    assert steps[11].arguments == {}
    edit = steps[8].arguments
    assert (edit["start_line"], edit["end_line"]) == (287, 296)
    assert edit["replacement"].startswith("    required_elements = [\n")
    assert edit["replacement"].endswith('", ".join(missing)\n        )')  # up to, not including, end_of_edit
    assert steps[8].arguments_raw.startswith("edit 287:296\n") and steps[8].arguments_raw.endswith("end_of_edit\n")
    # the traceback of the first run, the three rejected edits; everything else went through
    assert [s.success_flag for s in steps] == [
        True, True, False, True, True, False, False, False, True, True, True, True,
    ]  # fmt: skip
    assert all(s.plan for s in steps) and steps[0].plan.startswith("First, I'll create a new Python script")
    assert steps[9].observation == "Script completed successfully, no errors. Result: True\n"
    assert steps[10].observation == ""
    # the context before the first step: system prompt, demonstration, instance; then the open file
    assert [m["role"] for m in steps[0].state] == ["system", "user", "user", "environment"]
    assert json.loads(steps[5].state[-1]["content"])["open_file"].endswith("numpy_handler.py")
    assert trajectory.scaffold == "swe-agent"
    assert trajectory.metadata["layout"] == "0.x"
    assert trajectory.metadata["environment"] == "swe_main"
    assert trajectory.metadata["model_stats"]["instance_cost"] == 1.26719
    assert trajectory.outcome["details"]["exit_status"] == "submitted"


@pytest.mark.smoke
def test_the_goal_is_the_problem_statement_and_the_final_answer_the_model_patch(
    coding_project, samples_dir: Path
) -> None:
    import_file(coding_project, samples_dir / SAMPLE)
    trajectory = Trajectory.objects.get(project=coding_project)
    instance = json.loads((samples_dir / INSTANCE).read_text())[0]
    assert trajectory.goal_text == instance["problem_statement"]
    submission = json.loads((samples_dir / SAMPLE).read_text())["info"]["submission"]
    assert trajectory.final_answer == submission == trajectory.outcome["details"]["submission"]
    assert "diff --git a/pydicom/pixel_data_handlers/numpy_handler.py" in trajectory.final_answer


@pytest.mark.smoke
def test_importing_the_same_file_twice_adds_nothing(coding_project, samples_dir: Path) -> None:
    import_file(coding_project, samples_dir / SAMPLE)
    data = (samples_dir / SAMPLE).read_bytes()
    job = run_import(coding_project, data.replace(b'"environment": "swe_main"', b'"environment":  "swe_main"'))
    job.refresh_from_db()
    assert (job.trajectories_imported, job.duplicates) == (0, 1)


def test_detection_picks_the_sample_and_claims_no_other_file(samples_dir: Path) -> None:
    importer = SweAgentImporter()
    for path in sorted(samples_dir.iterdir()):
        if path.suffix not in (".json", ".traj"):
            continue
        head = path.read_bytes()[:65536]
        if path.name == SAMPLE:
            assert importer.detect(head) >= 70
            assert importer_detect(head).name == "swe_agent"
        else:
            assert importer.detect(head) == 0, path.name
    chat = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
    assert importer.detect(chat) == 0
    assert importer.detect(b"[" + chat.strip() + b"]") == 0
    for path in (FIXTURES.parent / "mini_swe_agent").glob("*.json"):
        assert importer.detect(path.read_bytes()[:65536]) == 0, path.name
    for path in FIXTURES.glob("*.traj"):
        assert importer_detect(path.read_bytes()[:65536]).name == "swe_agent", path.name


# --- 1.x layouts -----------------------------------------------------------------------------------


@pytest.mark.smoke
def test_the_1x_layout_with_text_commands(coding_project) -> None:
    job = import_file(coding_project, FIXTURES / "v1_text.traj")
    assert job.status == ImportStatus.DONE, job.error
    assert job.trajectories_imported == 1
    trajectory = Trajectory.objects.get(project=coding_project)
    steps = steps_of(trajectory)
    assert [(s.kind, s.tool_name) for s in steps] == [
        ("tool_call", "find_file"),
        ("tool_call", "open"),
        ("tool_call", "search_file"),
        ("tool_call", "edit"),
        ("tool_call", "bash"),
        ("respond", "respond"),  # a requery entry: no command
        ("tool_call", "bash"),
        ("tool_call", "submit"),
    ]
    assert steps[0].arguments == {"file_name": "parser.py", "dir": "src"}
    assert steps[1].arguments == {"path": "src/parser.py", "line_number": 20}
    assert steps[2].arguments == {"search_term": "tokens", "file": "src/parser.py"}
    assert steps[3].arguments == {"start_line": 30, "end_line": 30, "replacement": "    return tokens"}
    assert steps[3].arguments_raw == "edit 30:30\n    return tokens\nend_of_edit\n"
    assert steps[5].arguments == {"content": "I think the fix is complete but let me explain without a command."}
    assert steps[5].observation is None and steps[5].success_flag is None
    # `except KeyError:` inside a file view is code, not an error; a missing command is
    assert [s.success_flag for s in steps] == [True, True, True, True, False, None, True, True]
    assert [s.latency_ms for s in steps] == [250.0, 500.0, 750.0, 1000.0, 1250.0, 1500.0, 1750.0, 2000.0]
    # 1.x records the environment after each step: the next step's context
    assert [m["role"] for m in steps[0].state] == ["system", "user"]
    assert json.loads(steps[1].state[0]["content"]) == {"open_file": "n/a", "working_dir": "/testbed"}
    assert trajectory.goal_text.startswith("Parser.parse drops the last token\n")
    assert trajectory.model_name == "claude-sonnet-4-20250514"
    assert trajectory.metadata["layout"] == "1.x"
    assert trajectory.metadata["swe_agent_version"] == "1.1.0"
    assert trajectory.metadata["replay_config"]["problem_statement"]["id"] == "acme__parser-42"
    assert "sk-ant-fixture-secret-0001" not in json.dumps(trajectory.metadata)  # scrubbed by the pipeline
    assert trajectory.outcome["details"]["exit_status"] == "submitted"
    assert trajectory.final_answer.startswith("diff --git a/src/parser.py")


@pytest.mark.smoke
def test_the_instance_id_comes_from_the_replay_config() -> None:
    data = (FIXTURES / "v1_text.traj").read_bytes()
    run = SweAgentImporter().parse(RawRecord(raw=data, where="document", line=1, index=0))
    assert run.task == {"instance_id": "acme__parser-42"}
    value = json.loads(data)
    value["instance_id"] = "acme__parser-43"  # a top-level id (added by some runners) comes first
    run = SweAgentImporter().parse(RawRecord(raw=json.dumps(value).encode(), where="document", line=1, index=0))
    assert run.task == {"instance_id": "acme__parser-43"}


@pytest.mark.smoke
def test_function_calling_takes_tool_name_id_and_arguments_from_the_call(coding_project) -> None:
    job = import_file(coding_project, FIXTURES / "function_calling.traj")
    assert job.status == ImportStatus.DONE, job.error
    trajectory = Trajectory.objects.get(project=coding_project)
    steps = steps_of(trajectory)
    assert [(s.kind, s.tool_name, s.tool_call_id) for s in steps] == [
        ("tool_call", "bash", "toolu_00"),
        ("tool_call", "str_replace_editor", "toolu_01"),
        ("tool_call", "str_replace_editor", "toolu_02"),
        ("respond", "respond", ""),  # a format error: in the trajectory, not in the history
        ("tool_call", "bash", "toolu_03"),
        ("tool_call", "submit", "toolu_04"),
    ]
    assert steps[0].arguments == {"command": "ls src"}
    assert steps[1].arguments == {"command": "view", "path": "/testbed/src/parser.py", "view_range": [25, 32]}
    assert steps[2].arguments["old_str"] == "tokens[:-1]"
    assert steps[5].arguments == {}
    # arguments that are not JSON are kept as written, with the reason
    assert steps[4].arguments is None
    assert steps[4].arguments_raw == '{"command": "python -m pytest -q"'
    assert steps[4].arguments_error.startswith("arguments are not valid JSON")
    assert [s.success_flag for s in steps] == [True, True, True, None, False, True]
    assert steps[1].plan == "View the parser."
    assert steps[0].observation == "__init__.py\nparser.py\n"
    assert [m["role"] for m in steps[0].state] == ["system", "user"]
    assert trajectory.model_name == "claude-sonnet-4-20250514"


# --- commands and markers --------------------------------------------------------------------------


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("action", "tool", "arguments"),
    [
        ("open foo.py\n", "open", {"path": "foo.py"}),
        ('open "dir with space/foo.py" 12', "open", {"path": "dir with space/foo.py", "line_number": 12}),
        ("open foo.py twelve", "open", {"command": "open foo.py twelve"}),
        ("goto 583", "goto", {"line_number": 583}),
        ("goto", "goto", {"command": "goto"}),
        ("scroll_down", "scroll_down", {}),
        ("scroll_up 3", "scroll_up", {"command": "scroll_up 3"}),
        ("create new.py", "create", {"filename": "new.py"}),
        ('search_dir "def parse"', "search_dir", {"search_term": "def parse"}),
        ("search_dir needle src", "search_dir", {"search_term": "needle", "dir": "src"}),
        ('search_file "x = 1" a.py', "search_file", {"search_term": "x = 1", "file": "a.py"}),
        ("find_file setup.py .", "find_file", {"file_name": "setup.py", "dir": "."}),
        ('find_file "unclosed', "find_file", {"command": 'find_file "unclosed'}),
        ("edit 3:5\na\n\nb\nend_of_edit\n", "edit", {"start_line": 3, "end_line": 5, "replacement": "a\n\nb"}),
        ("edit 7:7\nend_of_edit", "edit", {"start_line": 7, "end_line": 7, "replacement": ""}),
        ("edit 3:5\nno end marker", "edit", {"command": "edit 3:5\nno end marker"}),
        ("edit 'old' 'new'", "edit", {"command": "edit 'old' 'new'"}),
        ("submit\n", "submit", {}),
        ("str_replace_editor view /a.py", "str_replace_editor", {"command": "str_replace_editor view /a.py"}),
        ("python -c 'print(1)'\n", "bash", {"command": "python -c 'print(1)'"}),
        ("cat <<'EOF' > x.py\nopen = 1\nEOF", "bash", {"command": "cat <<'EOF' > x.py\nopen = 1\nEOF"}),
        ("openssl version", "bash", {"command": "openssl version"}),
    ],
)
def test_commands_get_structured_arguments_where_their_signature_is_known(
    action: str, tool: str, arguments: dict[str, Any]
) -> None:
    assert parse_command(action) == (tool, arguments)


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("tool", "observation", "ok"),
    [
        ("bash", "", True),
        ("bash", None, None),
        ("bash", 'Traceback (most recent call last):\n  File "x"\nValueError: bad\n', False),
        ("bash", "bash: nope: command not found\n", False),
        ("bash", "collected 3 items\nerror: could not write\n", False),
        ("bash", "fatal: not a git repository\n", False),
        ("bash", "    except KeyError:\n        pass\n", True),
        ("open", "[File: /a.py (3 lines total)]\n1:try:\n2:    x\n3:except ValueError:\n", True),
        ("open", "File nope.py not found", False),
        ("open", 'Usage: open "<file>" [<line_number>]', False),
        ("goto", "Error: <line> must be less than or equal to 40", False),
        ("goto", "No file open. Use the open command first.", False),
        ("edit", "Your proposed edit has introduced new syntax error(s).\nERRORS:\n- E999", False),
        ("search_dir", 'No matches found for "zzz" in /repo', True),
        ("submit", "diff --git a/x b/x\n+raise Error: never\n", True),
    ],
)
def test_success_follows_the_error_markers_of_the_observation(tool: str, observation: str | None, ok: bool) -> None:
    assert observation_ok(tool, observation) is ok


# --- bad input -------------------------------------------------------------------------------------


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("value", "pointer", "words"),
    [
        ([1, 2], "", "JSON object"),
        ({"history": []}, "/trajectory", "missing 'trajectory'"),
        ({"trajectory": []}, "/trajectory", "empty"),
        ({"trajectory": [{"action": "ls"}, 3]}, "/trajectory/1", "must be an object"),
        ({"trajectory": [{"action": ["ls"]}]}, "/trajectory/0/action", "must be a string"),
        ({"trajectory": [{"action": "ls", "state": 5}]}, "/trajectory/0/state", "JSON string (0.x) or an object"),
        ({"trajectory": [{"action": "ls"}], "history": {}}, "/history", "must be a list"),
        ({"trajectory": [{"action": "ls"}], "history": [{"content": "x"}]}, "/history/0/role", "role"),
        ({"trajectory": [{"action": "ls"}], "info": "done"}, "/info", "must be an object"),
        (
            {
                "trajectory": [{"action": "ls"}],
                "history": [{"role": "assistant", "action": "ls", "tool_calls": [{"function": {"name": ""}}]}],
            },
            "/history/0/tool_calls/0/function/name",
            "non-empty 'name'",
        ),
    ],
)
def test_a_bad_document_is_rejected_with_where_and_why(coding_project, value: Any, pointer: str, words: str) -> None:
    job = run_import(coding_project, json.dumps(value, indent=1).encode(), format_name="swe_agent")
    job.refresh_from_db()
    assert job.status == ImportStatus.DONE, job.error
    assert (job.records_seen, job.rejected, job.trajectories_imported) == (1, 1, 0)
    error = job.errors[0]
    assert error["where"] == "document"
    assert error["pointer"] == pointer
    assert words in error["message"]


@pytest.mark.smoke
def test_a_truncated_file_is_rejected_naming_the_line(coding_project, samples_dir: Path) -> None:
    data = (samples_dir / SAMPLE).read_bytes()
    job = run_import(coding_project, data[: len(data) // 2], format_name="swe_agent")
    job.refresh_from_db()
    assert job.rejected == 1 and Trajectory.objects.filter(project=coding_project).count() == 0
    assert "malformed JSON" in job.errors[0]["message"] and "line" in job.errors[0]["message"]


# --- fuzz ------------------------------------------------------------------------------------------


def mostly(valid: st.SearchStrategy, odd: st.SearchStrategy, one_in: int = 12) -> st.SearchStrategy:
    """Mostly well-formed, now and then odd: a record that fails its first check tests little else."""
    return st.integers(0, one_in - 1).flatmap(lambda n: odd if n == one_in // 2 else valid)


texts = st.one_of(
    st.text(max_size=12), st.sampled_from(["", "a\x00b", "Error: no", "Traceback (most recent call last)", "é😀"])
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), texts)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=6
)
actions = mostly(
    st.one_of(
        st.sampled_from(
            [
                "open a.py 3\n",
                "open\n",
                "goto 99999999999999999999999\n",
                "edit 1:2\nx\nend_of_edit\n",
                "edit 1:\nend_of_edit",
                "submit\n",
                'search_dir "x',
                "scroll_down",
                "ls -la",
                "",
            ]
        ),
        texts,
    ),
    json_values,
)
entry = mostly(
    st.fixed_dictionaries(
        {"action": actions, "thought": mostly(texts, json_values), "observation": st.one_of(texts, st.none())},
        optional={
            "state": mostly(
                st.one_of(
                    st.just('{"open_file": "n/a", "working_dir": "/r"}'), st.dictionaries(texts, texts, max_size=2)
                ),
                json_values,
            ),
            "response": texts,
            "execution_time": scalars,
        },
    ),
    json_values,
)
tool_call = st.fixed_dictionaries(
    {
        "id": mostly(texts, scalars),
        "function": mostly(
            st.fixed_dictionaries(
                {
                    "name": mostly(st.sampled_from(["bash", "submit", "str_replace_editor"]), scalars),
                    "arguments": mostly(st.sampled_from(['{"command": "ls"}', "{", "[]", "{}"]), json_values),
                }
            ),
            json_values,
        ),
    }
)
history_item = mostly(
    st.one_of(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["system", "user", "tool"]), "content": mostly(texts, json_values)},
            optional={"is_demo": st.booleans()},
        ),
        st.fixed_dictionaries(
            {
                "role": st.just("assistant"),
                "action": st.one_of(st.sampled_from(["ls -la", "submit\n"]), texts),
                "tool_calls": mostly(st.one_of(st.none(), st.lists(tool_call, max_size=2)), json_values),
            }
        ),
    ),
    json_values,
)
document = mostly(
    st.fixed_dictionaries(
        {"trajectory": mostly(st.lists(entry, min_size=1, max_size=5), json_values)},
        optional={
            "history": mostly(st.lists(history_item, max_size=6), json_values),
            "info": mostly(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "submission": mostly(texts, json_values),
                        "exit_status": texts,
                        "model_stats": json_values,
                    },
                ),
                json_values,
            ),
            "replay_config": st.one_of(
                st.just('{"problem_statement": {"id": "a__b-1", "text": "fix"}, "agent": {"model": {"name": "m"}}}'),
                texts,
                json_values,
            ),
            "environment": texts,
            "instance_id": st.one_of(texts, scalars),
        },
    ),
    json_values,
)


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=1).encode()  # orjson cannot write integers beyond 64 bits


def import_and_check(pm, data: bytes, format_name: str = "") -> None:
    project = project_create(actor=pm, name="Fuzz", kind="coding", slug=f"swe-fuzz-{next(_slugs)}")
    job = run_import(project, data, name="run.traj", format_name=format_name)  # must not raise
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
    import_and_check(pm, dumps(value), "swe_agent")


@FUZZ
@given(seed=st.integers(0, 2**32 - 1), cuts=st.integers(1, 4))
def test_corrupted_copies_of_the_real_sample_import_without_surprises(
    db, pm, samples_dir: Path, seed: int, cuts: int
) -> None:
    rng = random.Random(seed)
    data = bytearray((samples_dir / SAMPLE).read_bytes())
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
    import_and_check(pm, bytes(data), rng.choice(["", "swe_agent"]))


@FUZZ
@given(value=document)
def test_parse_yields_a_hashable_run_or_a_located_record_error(value: Any) -> None:
    record = RawRecord(raw=dumps(value), where="document", line=1, index=0)
    try:
        run = SweAgentImporter().parse(record)
        prepared = prepare(record, run)  # what the import does next, without the database
    except RecordError as exc:
        assert exc.message
        assert exc.pointer == "" or exc.pointer.startswith("/")
        return
    assert len(prepared.content_sha256) == 64
    assert run.steps and all(s.tool_name and isinstance(s.arguments, dict | None) for s in run.steps)


def test_the_file_name_names_the_instance_when_the_document_does_not(project, samples_dir) -> None:
    from trajectories.models import SweTask, Trajectory

    task = SweTask.objects.create(
        project=project,
        instance_id="pydicom__pydicom-1458",
        repo="pydicom/pydicom",
        base_commit="0" * 40,
        problem_statement="p",
    )
    data = (samples_dir / "swe-agent_pydicom__pydicom-1458.traj").read_bytes()
    job = run_import(project, data, name="pydicom__pydicom-1458.traj")
    assert job.trajectories_imported == 1, job.errors
    assert Trajectory.objects.get(project=project).swe_task == task
