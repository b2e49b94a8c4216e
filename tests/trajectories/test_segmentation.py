"""Segmenting chat messages into steps (DESIGN.md "Steps") and the OpenAI chat importer."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest

from trajectories.formats.base import RawRecord, RecordError
from trajectories.formats.chat import segment_messages
from trajectories.formats.openai_chat import OpenAIChatImporter

importer = OpenAIChatImporter()


def call(call_id: str, name: str, arguments: Any = "{}") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def assistant(*calls: dict[str, Any], content: Any = None, **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, **extra}
    if calls:
        message["tool_calls"] = list(calls)
    return message


def tool(call_id: str, content: Any) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def parse(record: dict[str, Any]):
    raw = orjson.dumps(record)
    return importer.parse(RawRecord(raw=raw, where="line 1", line=1, index=0))


def one_call_run(arguments: Any) -> list:
    steps, _, _ = segment_messages(
        [{"role": "user", "content": "go"}, assistant(call("c1", "search", arguments)), tool("c1", "ok")]
    )
    return steps


# --- one step per decision -------------------------------------------------------------------


def test_each_tool_call_is_one_step_paired_with_its_result() -> None:
    steps, goal, final = segment_messages(
        [
            {"role": "system", "content": "You are a travel agent."},
            {"role": "user", "content": "Book me a flight to Oslo."},
            assistant(call("c1", "find_flights", '{"to": "OSL"}'), content="Let me look."),
            tool("c1", '[{"flight": "SK123"}]'),
            assistant(call("c2", "book_flight", '{"flight": "SK123"}')),
            tool("c2", "booked"),
            assistant(content="Your flight SK123 is booked."),
        ]
    )
    assert [(s.kind, s.tool_name) for s in steps] == [
        ("tool_call", "find_flights"),
        ("tool_call", "book_flight"),
        ("respond", "respond"),
    ]
    assert steps[0].tool_call_id == "c1"
    assert steps[0].arguments == {"to": "OSL"}
    assert steps[0].plan == "Let me look."
    assert steps[0].observation == '[{"flight": "SK123"}]'
    assert steps[1].observation == "booked"
    assert steps[2].observation is None
    assert goal == "Book me a flight to Oslo."
    assert final == "Your flight SK123 is booked."


def test_parallel_calls_of_one_message_are_consecutive_steps_sharing_a_turn_id() -> None:
    steps, _, _ = segment_messages(
        [
            {"role": "user", "content": "Weather in Oslo and Bergen?"},
            assistant(call("a", "weather", '{"city": "Oslo"}'), call("b", "weather", '{"city": "Bergen"}'), id="msg-7"),
            tool("a", "rain"),
            tool("b", "sun"),
            assistant(call("c", "weather", '{"city": "Tromsø"}')),
            tool("c", "snow"),
        ]
    )
    assert [s.tool_call_id for s in steps] == ["a", "b", "c"]
    assert steps[0].turn_id == steps[1].turn_id == "msg-7"
    assert steps[2].turn_id not in ("", "msg-7")
    # The context and the plan belong to the turn's first call only.
    assert steps[0].state == [{"role": "user", "content": "Weather in Oslo and Bergen?"}]
    assert steps[1].state == []


def test_turn_ids_differ_between_messages_without_ids() -> None:
    steps, _, _ = segment_messages(
        [assistant(call("a", "f"), call("b", "f")), tool("a", "1"), tool("b", "2"), assistant(call("c", "f"))]
    )
    assert steps[0].turn_id == steps[1].turn_id
    assert steps[2].turn_id != steps[0].turn_id


def test_results_pair_by_tool_call_id_even_out_of_order() -> None:
    steps, _, _ = segment_messages(
        [
            {"role": "user", "content": "three lookups"},
            assistant(
                call("x1", "lookup", '{"k": 1}'), call("x2", "lookup", '{"k": 2}'), call("x3", "lookup", '{"k": 3}')
            ),
            tool("x3", "three"),
            tool("x1", "one"),
            tool("x2", "Error: no such key"),
        ]
    )
    assert [(s.tool_call_id, s.observation) for s in steps] == [
        ("x1", "one"),
        ("x2", "Error: no such key"),
        ("x3", "three"),
    ]
    assert [s.success_flag for s in steps] == [True, False, True]


def test_tau2_style_id_on_the_tool_message_pairs_too() -> None:
    steps, _, _ = segment_messages(
        [
            assistant(call("t1", "a"), call("t2", "b")),
            {"role": "tool", "id": "t2", "content": "B"},
            {"role": "tool", "id": "t1", "content": "A"},
        ]
    )
    assert [s.observation for s in steps] == ["A", "B"]


def test_legacy_function_call_pairs_with_function_message_by_position_and_name() -> None:
    steps, goal, _ = segment_messages(
        [
            {"role": "user", "content": "What is 2+2?"},
            {
                "role": "assistant",
                "content": "Thought: use the calculator",
                "function_call": {"name": "calc", "arguments": '{"expr": "2+2"}'},
            },
            {"role": "function", "name": "calc", "content": "4"},
            {"role": "assistant", "content": None, "function_call": {"name": "finish", "arguments": {"answer": "4"}}},
            {"role": "function", "name": "finish", "content": "done"},
        ]
    )
    assert [(s.tool_name, s.tool_call_id, s.arguments, s.observation) for s in steps] == [
        ("calc", "", {"expr": "2+2"}, "4"),
        ("finish", "", {"answer": "4"}, "done"),
    ]
    assert steps[0].plan == "Thought: use the calculator"
    assert goal == "What is 2+2?"


def test_id_less_results_pair_by_name_before_position() -> None:
    steps, _, _ = segment_messages(
        [
            assistant(call("", "alpha"), call("", "beta")),
            {"role": "function", "name": "beta", "content": "from beta"},
            {"role": "function", "name": "alpha", "content": "from alpha"},
        ]
    )
    assert [(s.tool_name, s.observation) for s in steps] == [("alpha", "from alpha"), ("beta", "from beta")]


def test_id_less_results_without_names_pair_by_position() -> None:
    steps, _, _ = segment_messages(
        [
            assistant(call("", "alpha"), call("", "beta")),
            {"role": "function", "content": "first"},
            {"role": "function", "content": "second"},
        ]
    )
    assert [s.observation for s in steps] == ["first", "second"]


def test_assistant_text_without_calls_is_a_respond_step_and_the_last_reply_is_the_final_answer() -> None:
    steps, _, final = segment_messages(
        [
            {"role": "user", "content": "hi"},
            assistant(content="Hello! How can I help?"),
            {"role": "user", "content": "nothing, bye"},
            assistant(content="Goodbye."),
        ]
    )
    assert [s.kind for s in steps] == ["respond", "respond"]
    assert steps[0].tool_name == "respond"
    assert steps[0].arguments == {"content": "Hello! How can I help?"}
    assert steps[0].arguments_raw is None
    assert steps[1].arguments == {"content": "Goodbye."}
    assert steps[1].state == [{"role": "user", "content": "nothing, bye"}]
    assert final == "Goodbye."


def test_assistant_message_without_text_or_calls_makes_no_step() -> None:
    steps, _, final = segment_messages(
        [{"role": "user", "content": "x"}, assistant(content="   "), assistant(content=None), assistant(content="y")]
    )
    assert [s.arguments for s in steps] == [{"content": "y"}]
    assert final == "y"


def test_final_answer_is_empty_when_the_run_ends_on_a_call_without_any_reply() -> None:
    _, _, final = segment_messages([assistant(call("a", "f")), tool("a", "r")])
    assert final == ""


def test_system_user_and_tool_messages_are_context_of_the_next_step_never_steps() -> None:
    steps, _, _ = segment_messages(
        [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "first"},
            assistant(call("a", "f")),
            tool("a", "result a"),
            {"role": "user", "content": "second"},
            {"role": "system", "content": "reminder"},
            assistant(content="answer"),
        ]
    )
    assert len(steps) == 2
    assert steps[0].state == [{"role": "system", "content": "sys"}, {"role": "user", "content": "first"}]
    # The paired tool result is the observation, not context of the next step.
    assert steps[1].state == [{"role": "user", "content": "second"}, {"role": "system", "content": "reminder"}]
    assert all(s.kind in ("tool_call", "respond") for s in steps)


def test_context_after_the_last_step_is_not_a_step() -> None:
    steps, _, _ = segment_messages([assistant(content="hi"), {"role": "user", "content": "trailing"}])
    assert len(steps) == 1


def test_the_first_user_message_is_the_goal() -> None:
    _, goal, _ = segment_messages(
        [
            {"role": "system", "content": "policy"},
            {"role": "user", "content": [{"type": "text", "text": "Cancel order #42"}]},
            assistant(content="Sure"),
            {"role": "user", "content": "thanks"},
        ]
    )
    assert goal == "Cancel order #42"


def test_goal_is_empty_without_a_user_message() -> None:
    _, goal, _ = segment_messages([{"role": "system", "content": "s"}, assistant(content="hi")])
    assert goal == ""


def test_unknown_role_is_an_error_with_a_pointer() -> None:
    with pytest.raises(RecordError) as info:
        segment_messages([{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}])
    assert info.value.pointer == "/messages/1/role"
    assert "robot" in info.value.message


@pytest.mark.parametrize(
    ("messages", "pointer"),
    [
        ("not a list", "/messages"),
        ([1], "/messages/0"),
        ([{"content": "no role"}], "/messages/0/role"),
        ([{"role": 3, "content": "x"}], "/messages/0/role"),
        ([{"role": "assistant", "tool_calls": {"id": "a"}}], "/messages/0/tool_calls"),
        ([{"role": "assistant", "tool_calls": ["x"]}], "/messages/0/tool_calls/0"),
        (
            [{"role": "assistant", "tool_calls": [{"id": "a", "function": {"arguments": "{}"}}]}],
            "/messages/0/tool_calls/0/function/name",
        ),
        ([{"role": "assistant", "tool_calls": [{"id": "a", "function": "f"}]}], "/messages/0/tool_calls/0/function"),
        ([{"role": "assistant", "function_call": "f"}], "/messages/0/function_call"),
        ([{"role": "assistant", "function_call": {"name": ""}}], "/messages/0/function_call/name"),
    ],
)
def test_malformed_structure_is_an_error_with_a_pointer(messages: Any, pointer: str) -> None:
    with pytest.raises(RecordError) as info:
        segment_messages(messages)
    assert info.value.pointer == pointer
    assert info.value.message


# --- arguments --------------------------------------------------------------------------------


def test_arguments_as_a_json_string_are_parsed_and_kept_as_written() -> None:
    (step,) = one_call_run('{"q": "oslo", "n": 3}')
    assert step.arguments == {"q": "oslo", "n": 3}
    assert step.arguments_raw == '{"q": "oslo", "n": 3}'
    assert step.arguments_error == ""


def test_arguments_as_a_dict_are_taken_as_they_are() -> None:
    (step,) = one_call_run({"q": "oslo", "filters": {"max": 2}})
    assert step.arguments == {"q": "oslo", "filters": {"max": 2}}
    assert step.arguments_raw is None
    assert step.arguments_error == ""


def test_unparsable_arguments_are_kept_as_written_with_an_error() -> None:
    (step,) = one_call_run('{"q": "oslo"')
    assert step.arguments is None
    assert step.arguments_raw == '{"q": "oslo"'
    assert step.arguments_error.startswith("arguments are not valid JSON")


@pytest.mark.parametrize(
    ("written", "kind"), [("[1, 2]", "list"), ("42", "int"), ('"text"', "str"), ("null", "NoneType")]
)
def test_arguments_that_are_json_but_not_an_object_are_an_error(written: str, kind: str) -> None:
    (step,) = one_call_run(written)
    assert step.arguments is None
    assert step.arguments_raw == written
    assert step.arguments_error == f"arguments must be a JSON object, not {kind}"


def test_missing_or_blank_arguments_are_an_empty_object() -> None:
    (missing,) = one_call_run(None)
    (blank,) = one_call_run("  ")
    assert missing.arguments == {} and missing.arguments_error == ""
    assert blank.arguments == {} and blank.arguments_error == ""


@pytest.mark.parametrize("value", [7, [1, 2], True])
def test_arguments_of_another_type_reject_the_record_with_a_pointer(value: Any) -> None:
    with pytest.raises(RecordError) as info:
        one_call_run(value)
    assert info.value.pointer == "/messages/1/tool_calls/0/function/arguments"


# --- content and success ----------------------------------------------------------------------


def test_content_as_a_list_of_parts_is_joined_and_images_are_named() -> None:
    steps, goal, _ = segment_messages(
        [
            {
                "role": "user",
                "content": [{"type": "text", "text": "Look at"}, {"type": "image_url", "image_url": {"url": "data:"}}],
            },
            assistant(call("a", "ocr"), content=[{"type": "text", "text": "Reading it"}, "plain part"]),
            tool("a", [{"type": "text", "text": "line 1"}, {"type": "text", "text": "line 2"}]),
        ]
    )
    assert goal == "Look at\n[image_url]"
    assert steps[0].plan == "Reading it\nplain part"
    assert steps[0].observation == "line 1\nline 2"


@pytest.mark.parametrize(
    ("content", "pointer"),
    [(5, "/messages/0/content"), ([{"text": "no type"}], "/messages/0/content/0"), ([3], "/messages/0/content/0")],
)
def test_content_of_a_wrong_type_is_an_error_with_a_pointer(content: Any, pointer: str) -> None:
    with pytest.raises(RecordError) as info:
        segment_messages([{"role": "user", "content": content}, assistant(content="x")])
    assert info.value.pointer == pointer


@pytest.mark.parametrize(
    ("observation", "flag"),
    [
        ("Error: flight not found", False),
        ("  error - timeout", False),
        ("Traceback (most recent call last):", False),
        ('{"error": "invalid date"}', False),
        ('{"errors": ["bad"]}', False),
        ('{"result": "ok", "error": null}', True),
        ('{"status": "ok"}', True),
        ("the operation succeeded; no errors", True),
        ("", True),
        ("{not json", True),
    ],
)
def test_success_flag_follows_the_error_markers_of_the_observation(observation: str, flag: bool) -> None:
    steps, _, _ = segment_messages([assistant(call("a", "f")), tool("a", observation)])
    assert steps[0].success_flag is flag


def test_success_flag_is_none_without_an_observation() -> None:
    steps, _, _ = segment_messages([assistant(call("a", "f")), assistant(content="done")])
    assert steps[0].observation is None
    assert steps[0].success_flag is None
    assert steps[1].success_flag is None


def test_reflection_is_always_empty_for_chat_messages() -> None:
    steps, _, _ = segment_messages(
        [
            assistant(call("a", "f"), content="plan a"),
            tool("a", "result"),
            assistant(content="I conclude the result was fine."),
            assistant(call("b", "g"), content="after reflecting"),
            tool("b", "Error: x"),
        ]
    )
    assert len(steps) == 3
    assert [s.reflection for s in steps] == ["", "", ""]


def test_tool_message_with_an_unknown_id_becomes_context() -> None:
    steps, _, _ = segment_messages(
        [
            assistant(call("a", "f")),
            tool("a", "paired"),
            tool("zzz", "stray result"),
            assistant(call("b", "g")),
        ]
    )
    assert steps[0].observation == "paired"
    assert steps[1].observation is None
    assert steps[1].state == [{"role": "tool", "content": "stray result"}]


def test_a_second_result_for_the_same_call_becomes_context() -> None:
    steps, _, _ = segment_messages(
        [assistant(call("a", "f")), tool("a", "first"), tool("a", "again"), assistant(content="ok")]
    )
    assert steps[0].observation == "first"
    assert steps[1].state == [{"role": "tool", "content": "again"}]


def test_usage_and_reasoning_of_the_turn_go_to_its_first_step() -> None:
    steps, _, _ = segment_messages(
        [
            assistant(
                call("a", "f"),
                call("b", "g"),
                content="visible",
                reasoning_content="hidden thoughts",
                usage={"prompt_tokens": 100, "completion_tokens": 20},
                cost=0.25,
            ),
        ]
    )
    assert steps[0].plan == "hidden thoughts\n\nvisible"
    assert (steps[0].prompt_tokens, steps[0].completion_tokens, steps[0].cost_usd) == (100, 20, 0.25)
    assert (steps[1].plan, steps[1].prompt_tokens, steps[1].cost_usd) == ("", None, None)


# --- the importer -----------------------------------------------------------------------------


def test_importer_reads_goal_final_answer_and_metadata() -> None:
    run = parse(
        {
            "messages": [
                {"role": "system", "content": "policy"},
                {"role": "user", "content": "Change my seat"},
                assistant(call("c1", "change_seat", '{"seat": "12A"}')),
                tool("c1", '{"ok": true}'),
                assistant(content="Done, seat 12A."),
            ],
            "metadata": {
                "model": "gpt-x",
                "scaffold": "react",
                "rollout_id": "r-1",
                "trial": 2,
                "reward": 1,
                "goal_id": "g-9",
                "band": "atomic",
                "tags": ["seat"],
                "instance_id": "airline-1",
                "temperature": 0.3,
            },
        }
    )
    assert run.goal_text == "Change my seat"
    assert run.final_answer == "Done, seat 12A."
    assert [s.kind for s in run.steps] == ["tool_call", "respond"]
    assert (run.model, run.scaffold, run.rollout_id, run.trial) == ("gpt-x", "react", "r-1", 2)
    assert run.outcome == {"reward": 1.0}
    assert run.goal == {"external_id": "g-9", "band": "atomic", "tags": ["seat"]}
    assert run.task == {"instance_id": "airline-1"}
    assert run.metadata == {"temperature": 0.3}
    assert all(s.reflection == "" for s in run.steps)


@pytest.mark.parametrize(
    ("record", "pointer"),
    [
        ([1, 2], ""),
        ({"conversation": []}, "/messages"),
        ({"messages": [{"role": "user", "content": "only a question"}]}, "/messages"),
        ({"messages": [assistant(content="x")], "metadata": ["a"]}, "/metadata"),
        ({"messages": [assistant(content="x")], "tools": {}}, "/tools"),
        ({"messages": [assistant(content="x")], "metadata": {"band": "huge"}}, "/metadata/band"),
        ({"messages": [assistant(content="x")], "metadata": {"trial": "2"}}, "/metadata/trial"),
        ({"messages": [assistant(content="x")], "metadata": {"reward": "1"}}, "/metadata/reward"),
        ({"messages": [assistant(content="x")], "metadata": {"tags": "a"}}, "/metadata/tags"),
        ({"messages": [assistant(content="x")], "metadata": {"model": ["m"]}}, "/metadata/model"),
    ],
)
def test_importer_rejects_bad_records_with_a_pointer(record: Any, pointer: str) -> None:
    with pytest.raises(RecordError) as info:
        parse(record)
    assert info.value.pointer == pointer
    assert info.value.message


def test_importer_reads_jsonl_and_json_arrays_alike() -> None:
    records = [
        {
            "messages": [
                {"role": "user", "content": f"q{i}"},
                assistant(call(f"c{i}", "f", {"i": i})),
                tool(f"c{i}", "r"),
            ]
        }
        for i in range(3)
    ]
    jsonl = b"\n".join(orjson.dumps(r) for r in records) + b"\n"
    array = orjson.dumps(records, option=orjson.OPT_INDENT_2)
    assert importer.detect(jsonl) > 0 and importer.detect(array) > 0
    from_jsonl = [importer.parse(r) for r in importer.records(io.BytesIO(jsonl))]
    from_array = [importer.parse(r) for r in importer.records(io.BytesIO(array))]
    assert [r.goal_text for r in from_jsonl] == ["q0", "q1", "q2"]
    assert from_jsonl == from_array
