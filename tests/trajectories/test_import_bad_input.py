"""Imports of files that are broken in the ways real files are: every fault located, nothing half-written."""

from __future__ import annotations

import gzip
import json
from typing import Any

import orjson
import pytest
from django.utils import timezone

from core.models import Project
from core.services import project_create
from tests.trajectories.fixtures_util import run_import
from trajectories.formats.base import ParsedRun, RunStep
from trajectories.formats.canonical import run_to_dict
from trajectories.models import ImportJob, ImportStatus, Step, Tool, ToolRegistry, Trajectory
from trajectories.selectors.runs import trajectory_payload

pytestmark = pytest.mark.smoke  # nothing here depends on PostgreSQL: both backends must store the same values


def chat(i: int, *, tool_name: str = "lookup", observation: str = "ok", **metadata: Any) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": f"question {i}"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": f"c{i}", "type": "function", "function": {"name": tool_name, "arguments": f'{{"n": {i}}}'}}
                ],
            },
            {"role": "tool", "tool_call_id": f"c{i}", "content": observation},
            {"role": "assistant", "content": f"answer {i}"},
        ],
        "metadata": {"model": "m", **metadata},
    }


def jsonl(*lines: bytes | dict[str, Any]) -> bytes:
    return b"".join((line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines)


def assert_nothing_half_written(project: Project) -> None:
    for trajectory in Trajectory.objects.filter(project=project):
        indexes = list(Step.objects.filter(trajectory=trajectory).order_by("index").values_list("index", flat=True))
        assert indexes == list(range(trajectory.step_count)), trajectory.source_pointer
        assert trajectory.step_count > 0


def assert_counts_add_up(job: ImportJob) -> None:
    assert job.records_seen == job.trajectories_imported + job.duplicates + job.rejected


def stepwise_line(**step_changes: Any) -> dict[str, Any]:
    run = ParsedRun(
        goal_text="Find the order",
        steps=[
            RunStep(
                kind="tool_call",
                turn_id="t0",
                tool_name="get_order",
                tool_call_id="a",
                arguments={"id": 1},
                observation="ok",
                success_flag=True,
            ),
            RunStep(kind="respond", turn_id="t1", tool_name="respond", arguments={"content": "found"}),
        ],
        final_answer="found",
    )
    value = run_to_dict(run)
    for key, new in step_changes.items():
        index, field = key.split("__")
        value["steps"][int(index[1:])][field] = new
    return value


# --- located errors -----------------------------------------------------------------------------


def test_a_malformed_json_line_is_rejected_with_line_and_column_and_the_rest_imports(project: Project) -> None:
    data = jsonl(chat(1), b"", b'{"messages": [{"role": "user" "content": "x"}]}', chat(2))
    job = run_import(project, data)
    assert job.status == ImportStatus.DONE
    assert (job.records_seen, job.trajectories_imported, job.rejected) == (3, 2, 1)
    (error,) = job.errors
    assert error["where"] == "line 3"
    assert error["line"] == 3
    # orjson stops at the string "content" (byte 30 of the line): column 31.
    assert error["message"].startswith("malformed JSON")
    assert "(line 3, column 31)" in error["message"]
    assert sorted(Trajectory.objects.filter(project=project).values_list("goal_text", flat=True)) == [
        "question 1",
        "question 2",
    ]
    assert_nothing_half_written(project)


def test_a_fault_on_a_later_line_of_the_record_is_located_there(project: Project) -> None:
    job = run_import(project, jsonl(chat(1), b'{"messages": [1, 2', chat(2)))
    (error,) = job.errors
    assert error["where"] == "line 2"
    assert "line 2, column" in error["message"]
    assert job.trajectories_imported == 2


def test_a_record_breaking_the_canonical_schema_names_the_pointer_and_the_rule(project: Project) -> None:
    data = jsonl(stepwise_line(), stepwise_line(s0__kind="think"), stepwise_line(s1__arguments=5, s1__plan="p"))
    job = run_import(project, data, name="runs.stepwise.jsonl")
    assert job.format_detected == "stepwise"
    assert (job.trajectories_imported, job.rejected) == (1, 2)
    first, second = job.errors
    assert (first["where"], first["pointer"]) == ("line 2", "/steps/0/kind")
    assert "'think' is not one of" in first["message"]
    assert "(schema rule: enum)" in first["message"]
    assert (second["where"], second["pointer"]) == ("line 3", "/steps/1/arguments")
    assert "(schema rule: type)" in second["message"]
    assert_nothing_half_written(project)


def test_a_non_utf8_byte_in_a_jsonl_line_rejects_that_line_only(project: Project) -> None:
    bad = orjson.dumps(chat(2)).replace(b"question 2", b"question \xff2")
    job = run_import(project, jsonl(chat(1), bad, chat(3)))
    assert job.status == ImportStatus.DONE
    assert (job.trajectories_imported, job.rejected) == (2, 1)
    (error,) = job.errors
    assert error["where"] == "line 2"
    assert error["message"] == f"not valid UTF-8: byte 0xff at byte {bad.index(b'\xff')} of the record"
    assert_nothing_half_written(project)


def test_a_non_utf8_byte_in_a_json_array_element_rejects_that_element_only(project: Project) -> None:
    bad = orjson.dumps(chat(1)).replace(b"answer 1", b"answer \xc3\x281")
    data = b"[\n" + orjson.dumps(chat(0)) + b",\n" + bad + b",\n" + orjson.dumps(chat(2)) + b"\n]\n"
    job = run_import(project, data, name="runs.json")
    assert job.status == ImportStatus.DONE
    assert (job.records_seen, job.trajectories_imported, job.rejected) == (3, 2, 1)
    (error,) = job.errors
    assert error["where"] == "element 1 (line 3)"
    assert error["message"] == f"not valid UTF-8: byte 0xc3 at byte {bad.index(b'\xc3')} of the record"
    assert sorted(Trajectory.objects.filter(project=project).values_list("final_answer", flat=True)) == [
        "answer 0",
        "answer 2",
    ]


@pytest.mark.parametrize("data", [b"", b"  \n\t\r\n  \n"], ids=["empty", "whitespace"])
def test_an_empty_file_fails_the_job_saying_so(project: Project, data: bytes) -> None:
    job = run_import(project, data)
    assert job.status == ImportStatus.FAILED
    assert "the file is empty" in job.error
    assert job.trajectories_imported == 0
    assert job.finished_at is not None
    assert not Trajectory.objects.filter(project=project).exists()


def test_an_array_that_stops_after_an_element_names_the_last_whole_element(project: Project) -> None:
    data = b"[\n" + orjson.dumps(chat(0)) + b",\n" + orjson.dumps(chat(1)) + b"\n"
    job = run_import(project, data, name="runs.json")
    assert job.status == ImportStatus.DONE
    assert job.trajectories_imported == 2
    (error,) = job.errors
    assert error["message"].startswith("the file ends inside the array")
    # Elements are numbered from 0 ("element 1 (line 3)" was the last one read).
    assert "after element 1 " in error["message"]


@pytest.mark.parametrize("cut", ["inside-element", "after-comma"])
def test_an_array_truncated_in_the_middle_keeps_the_elements_before_and_says_the_file_ends(
    project: Project, cut: str
) -> None:
    whole = b"[\n" + b",\n".join(orjson.dumps(chat(i)) for i in range(3)) + b"\n]\n"
    third = whole.index(orjson.dumps(chat(2)))
    data = whole[: third + 40] if cut == "inside-element" else whole[:third]
    job = run_import(project, data, name="runs.json")
    assert job.status == ImportStatus.DONE
    assert job.trajectories_imported == 2
    assert sorted(Trajectory.objects.filter(project=project).values_list("goal_text", flat=True)) == [
        "question 0",
        "question 1",
    ]
    (error,) = job.errors
    assert error["where"].startswith("element 2") or error["where"] == "line 4"
    assert "ends inside" in error["message"], error["message"]


def test_json_array_elements_are_located_by_index_and_line(project: Project) -> None:
    pretty = orjson.dumps(chat(1), option=orjson.OPT_INDENT_2)
    head = b"[\n" + orjson.dumps(chat(0)) + b",\n" + pretty + b",\n\n"
    data = head + b'{"conversation": []},\n' + orjson.dumps(chat(3)) + b"\n]"
    line_of_bad = head.count(b"\n") + 1
    job = run_import(project, data, name="runs.json")
    assert job.trajectories_imported == 3
    (error,) = job.errors
    assert error["where"] == f"element 2 (line {line_of_bad})"
    assert error["line"] == line_of_bad
    assert error["pointer"] == "/messages"
    assert line_of_bad == 2 + pretty.count(b"\n") + 1 + 2
    pointers = dict(Trajectory.objects.filter(project=project).values_list("goal_text", "source_pointer"))
    assert pointers["question 0"] == "element 0 (line 2)"
    assert pointers["question 1"] == "element 1 (line 3)"


def test_a_structural_fault_inside_a_record_carries_its_json_pointer(project: Project) -> None:
    bad = chat(2)
    bad["messages"][1]["tool_calls"][0]["function"]["arguments"] = 42
    job = run_import(project, jsonl(chat(1), bad))
    (error,) = job.errors
    assert error == {
        "where": "line 2",
        "line": 2,
        "pointer": "/messages/1/tool_calls/0/function/arguments",
        "message": "arguments must be a JSON string or an object, not int",
    }


# --- the tool registry --------------------------------------------------------------------------


def frozen_registry(project: Project, version: int, names: list[str]) -> dict[str, Tool]:
    registry = ToolRegistry.objects.create(project=project, version=version, frozen_at=timezone.now(), sha256="x" * 64)
    return {name: Tool.objects.create(registry=registry, name=name, parameters={"type": "object"}) for name in names}


def test_an_unknown_tool_is_imported_flagged_and_counted(project: Project) -> None:
    tools = frozen_registry(project, 1, ["lookup", "book"])
    job = run_import(project, jsonl(chat(1), chat(2, tool_name="teleport"), chat(3, tool_name="book")))
    assert job.status == ImportStatus.DONE
    assert job.trajectories_imported == 3
    assert job.unknown_tool_calls == 1
    steps = {s.tool_name: s for s in Step.objects.filter(trajectory__project=project, kind="tool_call")}
    assert (steps["teleport"].tool_known, steps["teleport"].tool_id) == (False, None)
    assert (steps["lookup"].tool_known, steps["lookup"].tool_id) == (True, tools["lookup"].pk)
    assert (steps["book"].tool_known, steps["book"].tool_id) == (True, tools["book"].pk)
    assert set(
        Step.objects.filter(trajectory__project=project, kind="respond").values_list("tool_known", flat=True)
    ) == {None}
    unknown = dict(Trajectory.objects.filter(project=project).values_list("goal_text", "unknown_tool_count"))
    assert unknown == {"question 1": 0, "question 2": 1, "question 3": 0}


def test_the_latest_frozen_registry_decides_what_is_known(project: Project) -> None:
    frozen_registry(project, 1, ["lookup"])
    newer = frozen_registry(project, 2, ["book"])
    ToolRegistry.objects.create(project=project, version=3)  # a draft: not frozen, not used
    job = run_import(project, jsonl(chat(1), chat(2, tool_name="book")))
    assert job.unknown_tool_calls == 1
    known = dict(Step.objects.filter(trajectory__project=project, kind="tool_call").values_list("tool_name", "tool_id"))
    assert known == {"lookup": None, "book": newer["book"].pk}


def test_without_a_frozen_registry_nothing_is_known_or_unknown(project: Project) -> None:
    job = run_import(project, jsonl(chat(1)))
    assert job.unknown_tool_calls == 0
    assert set(Step.objects.filter(trajectory__project=project).values_list("tool_known", flat=True)) == {None}


# --- idempotency, compression, NUL ---------------------------------------------------------------


def test_importing_the_same_file_again_adds_nothing(project: Project) -> None:
    data = jsonl(chat(1), chat(2), b"{broken", chat(3))
    first = run_import(project, data)
    second = run_import(project, data)
    assert (first.trajectories_imported, first.duplicates, first.rejected) == (3, 0, 1)
    assert (second.trajectories_imported, second.duplicates, second.rejected) == (0, 3, 1)
    assert second.steps_imported == 0
    assert second.source_file_id == first.source_file_id
    assert Trajectory.objects.filter(project=project).count() == 3


def test_the_same_runs_in_another_container_are_duplicates(project: Project) -> None:
    run_import(project, jsonl(chat(1), chat(2)))
    as_array = json.dumps([chat(2), chat(1)], indent=4).encode()
    job = run_import(project, as_array, name="runs.json")
    assert (job.trajectories_imported, job.duplicates) == (0, 2)


def test_duplicates_inside_one_file_are_stored_once(project: Project) -> None:
    job = run_import(project, jsonl(chat(1), chat(1), chat(2)))
    assert (job.trajectories_imported, job.duplicates) == (2, 1)
    assert_counts_add_up(job)


def test_a_gzip_upload_imports_the_same_as_the_plain_file(project: Project, pm) -> None:
    other = project_create(actor=pm, name="Airline desk, gz", kind="tool_use")
    data = jsonl(chat(1), b"{nope", chat(2, observation="Error: down"))
    plain = run_import(project, data)
    packed = run_import(other, gzip.compress(data), name="runs.jsonl.gz")
    assert packed.status == ImportStatus.DONE
    assert packed.format_detected == plain.format_detected == "openai_chat"
    counts = ("records_seen", "trajectories_imported", "steps_imported", "duplicates", "rejected")
    assert [getattr(packed, c) for c in counts] == [getattr(plain, c) for c in counts]
    assert packed.errors == plain.errors

    def stored(p: Project) -> set[tuple[str, bytes, str]]:
        return {
            (t.content_sha256, trajectory_payload(t), t.source_pointer) for t in Trajectory.objects.filter(project=p)
        }

    assert stored(other) == stored(project)
    assert len(stored(project)) == 2


def test_a_nul_character_imports_and_the_payload_keeps_the_original_bytes(project: Project) -> None:
    record = chat(1, observation="before\u0000after")
    record["messages"][0]["content"] = "ques\u0000tion"
    line = orjson.dumps(record)
    assert b"\\u0000" in line
    job = run_import(project, line + b"\n")
    assert job.status == ImportStatus.DONE, job.error
    assert job.trajectories_imported == 1
    trajectory = Trajectory.objects.get(project=project)
    step = trajectory.steps.get(index=0)
    nul = "\ufffd"  # PostgreSQL text cannot hold NUL; both backends store the same values
    assert step.observation == f"before{nul}after"
    assert trajectory.goal_text == f"ques{nul}tion"
    assert step.state == [{"role": "user", "content": f"ques{nul}tion"}]
    assert trajectory_payload(trajectory) == line
    assert_nothing_half_written(project)


# --- nothing half-written, counts ----------------------------------------------------------------


def test_rejected_records_leave_every_stored_trajectory_whole(project: Project) -> None:
    wrong_args = chat(5)
    wrong_args["messages"][1]["tool_calls"][0]["function"]["arguments"] = [1]
    no_steps = {"messages": [{"role": "user", "content": "only a question"}]}
    data = jsonl(
        chat(1),
        b'{"messages": [',
        chat(2),
        wrong_args,
        orjson.dumps(chat(3)).replace(b"ok", b"o\xffk"),
        no_steps,
        chat(4),
        b"[1, 2]",
        {"messages": [{"role": "wizard", "content": "x"}]},
    )
    job = run_import(project, data)
    assert job.status == ImportStatus.DONE
    assert (job.records_seen, job.trajectories_imported, job.rejected) == (9, 3, 6)
    assert all(e["where"] and e["message"] for e in job.errors)
    assert [e["where"] for e in job.errors] == ["line 2", "line 4", "line 5", "line 6", "line 8", "line 9"]
    assert Step.objects.filter(trajectory__project=project).count() == job.steps_imported == 6
    assert_nothing_half_written(project)
    assert_counts_add_up(job)


def test_a_value_the_database_refuses_leaves_nothing_half_written(project: Project) -> None:
    bad = chat(2)
    bad["messages"][1]["tool_calls"][0]["function"]["name"] = "look\u0000up"
    job = run_import(project, jsonl(chat(1), bad, chat(3)))
    assert job.finished_at is not None
    assert_nothing_half_written(project)


def _nul_in_call_id(record: dict[str, Any]) -> None:
    record["messages"][1]["tool_calls"][0]["id"] = "c\u00002"
    record["messages"][2]["tool_call_id"] = "c\u00002"


def _set(path: list[Any], value: Any):
    def change(record: dict[str, Any]) -> None:
        target = record
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


@pytest.mark.parametrize(
    "change",
    [
        _set(["messages", 1, "tool_calls", 0, "function", "name"], "look\u0000up"),
        _nul_in_call_id,
        _set(["messages", 1, "id"], "turn\u00001"),
        _set(["metadata", "model"], "gpt\u0000"),
        _set(["metadata", "scaffold"], "re\u0000act"),
        _set(["metadata", "rollout_id"], "r\u00001"),
        _set(["metadata", "goal_id"], "g\u00001"),
        _set(["metadata", "tags"], ["t\u0000"]),
        _set(["metadata", "goal_id"], "g" * 250),
        _set(["metadata", "trial"], 2**40),
        _set(["messages", 1, "usage"], {"prompt_tokens": 2**40, "completion_tokens": 1}),
    ],
    ids=[
        "nul-tool-name",
        "nul-call-id",
        "nul-turn-id",
        "nul-model",
        "nul-scaffold",
        "nul-rollout-id",
        "nul-goal-id",
        "nul-tag",
        "goal-id-250-chars",
        "trial-2**40",
        "prompt-tokens-2**40",
    ],
)
def test_a_value_the_database_cannot_take_costs_only_its_own_record(project: Project, change) -> None:
    """storage.prepare promises a RecordError "for values the database cannot take": one bad record
    must be rejected (or stored cleaned) without failing the job and losing its neighbours."""
    bad = chat(2)
    change(bad)
    job = run_import(project, jsonl(chat(1), bad, chat(3)))
    assert job.status == ImportStatus.DONE, job.error
    goals = set(Trajectory.objects.filter(project=project).values_list("goal_text", flat=True))
    assert {"question 1", "question 3"} <= goals
    if "question 2" not in goals:
        assert [e["where"] for e in job.errors] == ["line 2"]
    assert_counts_add_up(job)
    assert_nothing_half_written(project)


@pytest.mark.parametrize(
    ("original", "written"),
    [
        (b'"answer 1"', b'"answer \\ud800 1"'),
        (b'"{\\"n\\": 1}"', b'{"n": 1180591620717411303424}'),
        (b'"question 1"', b'{"n": 1180591620717411303424}'),
    ],
    ids=["lone-surrogate-escape", "integer-beyond-64-bits-in-arguments", "integer-beyond-64-bits-in-content"],
)
def test_a_value_only_the_stdlib_scanner_accepts_costs_only_its_array_element(
    project: Project, original: bytes, written: bytes
) -> None:
    """JSON-array elements are parsed by the stdlib scanner, which takes lone surrogate escapes and
    integers of any size; hashing (orjson) cannot. The element must be rejected or imported, alone."""
    bad = orjson.dumps(chat(1)).replace(original, written)
    assert written in bad
    json.loads(bad)  # valid JSON for the stdlib
    data = b"[" + orjson.dumps(chat(0)) + b",\n" + bad + b",\n" + orjson.dumps(chat(2)) + b"]"
    job = run_import(project, data, name="runs.json")
    assert job.status == ImportStatus.DONE, job.error
    goals = set(Trajectory.objects.filter(project=project).values_list("goal_text", flat=True))
    assert {"question 0", "question 2"} <= goals
    if "question 1" not in goals:
        assert [e["where"] for e in job.errors] == ["element 1 (line 2)"]


def test_a_lone_surrogate_escape_in_a_jsonl_line_is_rejected(project: Project) -> None:
    bad = json.dumps(chat(1)).replace("answer 1", "answer \\ud800 1").encode()
    job = run_import(project, jsonl(chat(0), bad, chat(2)))
    assert job.status == ImportStatus.DONE
    assert job.trajectories_imported == 2
    assert [e["where"] for e in job.errors] == ["line 2"]


@pytest.mark.parametrize(
    ("data", "format_name"),
    [
        (b"this is not json at all\n", ""),
        (b'{"foo": 1}\n', ""),
        (b"  \n", "openai_chat"),
        (b"[]", "openai_chat"),
    ],
    ids=["undetectable-text", "undetectable-json", "requested-format-whitespace", "requested-format-empty-array"],
)
def test_the_counts_add_up_for_a_file_without_records(project: Project, data: bytes, format_name: str) -> None:
    """records_seen == imported + duplicates + rejected, for every job."""
    job = run_import(project, data, format_name=format_name)
    assert job.is_finished
    assert job.error or job.errors
    assert_counts_add_up(job)
