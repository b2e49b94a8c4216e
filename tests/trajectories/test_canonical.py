"""The canonical form of a run: hashing, rendering offsets, the stepwise JSONL round trip, the schema."""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from trajectories.formats.base import ParsedRun, RawRecord, RecordError, RunStep
from trajectories.formats.canonical import canonical_json, content_sha256, render, run_to_dict, sha256_hex, spans
from trajectories.formats.openai_chat import OpenAIChatImporter
from trajectories.formats.stepwise import SCHEMA_PATH, StepwiseImporter

openai = OpenAIChatImporter()
stepwise = StepwiseImporter()


def record(value: Any, raw: bytes | None = None) -> RawRecord:
    return RawRecord(raw=raw if raw is not None else orjson.dumps(value), where="line 1", line=1, index=0)


def full_run() -> ParsedRun:
    """A run that uses every field the canonical format has."""
    return ParsedRun(
        goal_text="Rebook my cancelled flight 🛫\nto Oslo",
        goal={
            "external_id": "g-1",
            "band": "composite",
            "tags": ["rebook", "oslo"],
            "expected_actions": [{"name": "rebook"}],
        },
        task={"instance_id": "airline-17"},
        model="model-x",
        scaffold="react",
        rollout_id="r-42",
        trial=3,
        final_answer="You are on SK 4411 tomorrow.",
        outcome={"reward": 1.0, "details": {"db_match": True}},
        metadata={"temperature": 0.2},
        steps=[
            RunStep(
                kind="tool_call",
                turn_id="t1",
                state=[{"role": "system", "content": "policy"}, {"role": "user", "content": "Rebook …"}],
                plan="Find the booking first.",
                tool_name="get_booking",
                tool_call_id="call_1",
                arguments={"booking_id": "ABC123", "verbose": True},
                arguments_raw='{"booking_id": "ABC123", "verbose": true}',
                observation='{"status": "cancelled"}',
                success_flag=True,
                started_at="2025-03-01T10:00:00+00:00",
                ended_at="2025-03-01T10:00:01.250000+00:00",
                latency_ms=1250.0,
                prompt_tokens=1200,
                completion_tokens=40,
                cost_usd=0.0031,
            ),
            RunStep(
                kind="tool_call",
                turn_id="t2",
                tool_name="search_flights",
                tool_call_id="call_2",
                arguments=None,
                arguments_raw='{"to": "OSL"',
                arguments_error="arguments are not valid JSON",
                observation="Error: bad arguments",
                success_flag=False,
            ),
            RunStep(kind="tool_call", turn_id="t2", tool_name="search_flights", tool_call_id="call_3", arguments={}),
            RunStep(
                kind="respond",
                turn_id="t3",
                state=[{"role": "tool", "content": "stray"}],
                tool_name="respond",
                arguments={"content": "You are on SK 4411 tomorrow."},
            ),
        ],
    )


def chat_record() -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "You help with orders."},
            {"role": "user", "content": "Where is order 7?"},
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "get_order", "arguments": '{"id": 7}'}},
                    {
                        "id": "b",
                        "type": "function",
                        "function": {"name": "get_shipping", "arguments": {"order": 7, "carrier": "ups"}},
                    },
                ],
                "usage": {"prompt_tokens": 50, "completion_tokens": 9},
            },
            {"role": "tool", "tool_call_id": "b", "content": "in transit"},
            {"role": "tool", "tool_call_id": "a", "content": '{"error": "not found"}'},
            {"role": "assistant", "content": "It is in transit."},
        ],
        "metadata": {
            "model": "m",
            "reward": 0.5,
            "goal_id": "g7",
            "band": "atomic",
            "tags": ["orders"],
            "instance_id": "o-7",
            "trial": 1,
        },
    }


def schema_validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads(SCHEMA_PATH.read_text()), format_checker=Draft202012Validator.FORMAT_CHECKER)


# --- canonical JSON and the content hash -------------------------------------------------------


def test_canonical_json_sorts_keys_and_has_no_whitespace() -> None:
    assert canonical_json({"b": 1, "a": {"d": [1, 2], "c": "é"}}) == '{"a":{"c":"é","d":[1,2]},"b":1}'.encode()


def test_key_order_of_the_record_does_not_change_the_hash() -> None:
    value = chat_record()
    reordered = {
        "metadata": dict(reversed(list(value["metadata"].items()))),
        "messages": [dict(reversed(list(m.items()))) for m in value["messages"]],
    }
    assert orjson.dumps(value) != orjson.dumps(reordered)
    first = content_sha256(run_to_dict(openai.parse(record(value))))
    second = content_sha256(run_to_dict(openai.parse(record(reordered))))
    assert first == second


def test_key_order_of_dict_arguments_does_not_change_the_hash() -> None:
    run = full_run()
    flipped = full_run()
    flipped.steps[0].arguments = {"verbose": True, "booking_id": "ABC123"}
    assert list(run.steps[0].arguments) != list(flipped.steps[0].arguments)
    assert content_sha256(run_to_dict(run)) == content_sha256(run_to_dict(flipped))


def test_the_hash_is_stable_across_calls_and_copies() -> None:
    one = content_sha256(run_to_dict(full_run()))
    assert one == content_sha256(run_to_dict(copy.deepcopy(full_run())))
    assert len(one) == 64 and int(one, 16) >= 0


@pytest.mark.parametrize(
    "change",
    [
        lambda r: setattr(r.steps[0], "observation", '{"status": "active"}'),
        lambda r: setattr(r.steps[2], "observation", ""),
        lambda r: setattr(r.steps[0], "success_flag", None),
        lambda r: setattr(r.steps[1], "arguments_raw", '{"to": "BGO"'),
        lambda r: setattr(r.steps[0], "plan", "Find the booking."),
        lambda r: setattr(r, "goal_text", "Rebook"),
        lambda r: setattr(r, "final_answer", ""),
        lambda r: setattr(r, "trial", 4),
        lambda r: setattr(r, "outcome", {"reward": 0.0}),
        lambda r: r.steps.pop(),
    ],
)
def test_a_change_of_content_changes_the_hash(change) -> None:
    changed = full_run()
    change(changed)
    assert content_sha256(run_to_dict(changed)) != content_sha256(run_to_dict(full_run()))


def test_labels_evidence_and_provenance_do_not_enter_the_hash() -> None:
    plain = run_to_dict(full_run())
    exported = {**plain, "source": {"file": "a.jsonl"}, "labels": [{"step": 0}], "consensus": {}, "evidence": [1]}
    assert content_sha256(plain) == content_sha256(exported)


def test_sha256_hex_is_the_sha256_of_the_bytes() -> None:
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# --- the canonical rendering and its spans ------------------------------------------------------


@pytest.mark.parametrize("build", [full_run, lambda: openai.parse(record(chat_record()))])
def test_spans_are_the_offsets_of_each_step_block_in_the_rendering(build) -> None:
    run = build()
    text = render(run)
    found = spans(run)
    assert len(found) == len(run.steps)
    assert text.startswith(f"GOAL\n{run.goal_text}\n\n")
    assert found[0][0] == len(f"GOAL\n{run.goal_text}\n\n")
    for number, (start, end) in enumerate(found, start=1):
        block = text[start:end]
        assert block.startswith(f"STEP {number} · {run.steps[number - 1].kind}")
        assert block.endswith("\n\n")
        assert block.count("STEP ") == 1
    assert [s for s, _ in found[1:]] == [e for _, e in found[:-1]]
    assert found[-1][1] == len(text)


def test_the_rendering_shows_each_field_where_the_format_says() -> None:
    text = render(full_run())
    assert 'CALL get_booking {"booking_id":"ABC123","verbose":true}\n' in text
    assert 'CALL search_flights {"to": "OSL"\n' in text  # as written when it does not parse
    assert "STATE\nsystem: policy\nuser: Rebook …\n" in text
    assert "PLAN\nFind the booking first.\n" in text
    assert "OBSERVATION\nError: bad arguments\n" in text
    assert "REFLECTION" not in text


def test_span_offsets_are_code_points_not_bytes() -> None:
    run = full_run()
    run.goal_text = "😀" * 10
    run.steps[0].observation = "ÆØÅ" * 5
    text = render(run)
    for number, (start, _) in enumerate(spans(run), start=1):
        assert text[start:].startswith(f"STEP {number} ")
    assert len(text.encode()) > len(text)


# --- stepwise JSONL round trip -------------------------------------------------------------------


def round_trip(run: ParsedRun) -> ParsedRun:
    line = orjson.dumps(run_to_dict(run)) + b"\n"
    records = list(stepwise.records(io.BytesIO(line)))
    assert len(records) == 1 and isinstance(records[0], RawRecord)
    return stepwise.parse(records[0])


def test_stepwise_round_trip_keeps_the_content_hash() -> None:
    run = full_run()
    back = round_trip(run)
    assert content_sha256(run_to_dict(back)) == content_sha256(run_to_dict(run))
    assert run_to_dict(back) == run_to_dict(run)
    assert back.steps[1].arguments_error.startswith("arguments are not valid JSON")


def test_stepwise_round_trip_of_an_imported_chat_run() -> None:
    run = openai.parse(record(chat_record()))
    back = round_trip(run)
    assert content_sha256(run_to_dict(back)) == content_sha256(run_to_dict(run))
    assert stepwise.detect(orjson.dumps(run_to_dict(run))) == 100


def test_stepwise_importer_rejects_steps_out_of_order() -> None:
    value = run_to_dict(full_run())
    value["steps"][1]["index"] = 5
    with pytest.raises(RecordError) as info:
        stepwise.parse(record(value))
    assert info.value.pointer == "/steps/1/index"


# --- the schema ----------------------------------------------------------------------------------


def test_the_schema_file_is_a_valid_draft_2020_12_schema() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_the_schema_rejects_what_it_should() -> None:
    validator = schema_validator()
    good = run_to_dict(full_run())
    assert list(validator.iter_errors(good)) == []
    bad_kind = copy.deepcopy(good)
    bad_kind["steps"][0]["kind"] = "think"
    no_steps = {**good, "steps": []}
    extra = {**good, "surprise": 1}
    assert not validator.is_valid(bad_kind)
    assert not validator.is_valid(no_steps)
    assert not validator.is_valid(extra)


def test_a_chat_run_validates_against_the_schema() -> None:
    assert list(schema_validator().iter_errors(run_to_dict(openai.parse(record(chat_record()))))) == []


@pytest.mark.parametrize(
    "extra",
    [{"usage": {"prompt_tokens": -5, "completion_tokens": 3}}, {"cost": -0.01}],
    ids=["negative-tokens", "negative-cost"],
)
def test_usage_the_chat_importer_accepts_validates_against_the_schema(extra: dict[str, Any]) -> None:
    """Whatever the chat importer accepts must be writable in the canonical format (export → import)."""
    value = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", **extra}]}
    try:
        run = openai.parse(record(value))
    except RecordError:
        return  # rejecting the record is also consistent with the schema
    errors = [e.message for e in schema_validator().iter_errors(run_to_dict(run))]
    assert errors == []


# --- property: every chat run the importer accepts is canonical ---------------------------------

texts = st.text(max_size=12)
ids = st.sampled_from(["a", "b", "c", "", "x1"])
arguments = st.one_of(
    st.none(),
    texts,
    st.dictionaries(
        st.text(max_size=4), st.one_of(st.integers(-(2**63), 2**63 - 1), texts, st.booleans(), st.none()), max_size=3
    ),  # 64-bit: a JSONL line is read by orjson (integers beyond 64 bits: see test_import_bad_input)
    st.dictionaries(st.text(max_size=4), texts, max_size=3).map(lambda d: json.dumps(d)),
    st.sampled_from(["[1]", "7", "{", '{"a": 1} x']),
)
contents = st.one_of(
    st.none(),
    texts,
    st.lists(
        st.one_of(texts, st.builds(lambda t: {"type": "text", "text": t}, texts), st.just({"type": "image_url"})),
        max_size=3,
    ),
)
tool_calls = st.lists(
    st.builds(
        lambda i, n, a: {"id": i, "type": "function", "function": {"name": n, "arguments": a}},
        ids,
        st.sampled_from(["f", "g", "respond"]),
        arguments,
    ),
    max_size=3,
)
usage = st.one_of(
    st.none(),
    # non-negative only: negative counts are the subject of the test above
    st.fixed_dictionaries(
        {}, optional={"prompt_tokens": st.integers(0, 10**6), "completion_tokens": st.integers(0, 10**6)}
    ),
)
messages = st.lists(
    st.one_of(
        st.builds(lambda r, c: {"role": r, "content": c}, st.sampled_from(["system", "user", "developer"]), contents),
        st.builds(
            lambda c, t, u: {"role": "assistant", "content": c, "tool_calls": t, "usage": u},
            contents,
            tool_calls,
            usage,
        ),
        st.builds(lambda i, c: {"role": "tool", "tool_call_id": i, "content": c}, ids, contents),
        st.builds(lambda n, c: {"role": "function", "name": n, "content": c}, st.sampled_from(["f", "g"]), contents),
        st.builds(
            lambda n, a: {"role": "assistant", "content": None, "function_call": {"name": n, "arguments": a}},
            st.sampled_from(["f", "g"]),
            arguments,
        ),
    ),
    min_size=1,
    max_size=8,
)
metadata = st.fixed_dictionaries(
    {},
    optional={
        "model": texts,
        "rollout_id": texts,
        "trial": st.integers(-5, 5),
        "reward": st.one_of(st.integers(-1, 1), st.floats(-1, 1)),
        "goal_id": texts,
        "band": st.sampled_from(["atomic", "composite", "ambiguous"]),
        "tags": st.lists(texts, max_size=2),
        "instance_id": texts,
        "other": texts,
    },
)


@settings(
    max_examples=150, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(messages, metadata)
def test_every_accepted_chat_run_validates_and_round_trips(msgs: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    try:
        run = openai.parse(record({"messages": msgs, "metadata": meta}))
    except RecordError as exc:
        assert exc.message
        return
    value = run_to_dict(run)
    assert [e.message for e in schema_validator().iter_errors(value)] == []
    back = round_trip(run)
    assert content_sha256(run_to_dict(back)) == content_sha256(value)
    text = render(run)
    for number, (start, end) in enumerate(spans(run), start=1):
        assert text[start:end].startswith(f"STEP {number} ")
    assert all(s.reflection == "" for s in run.steps)
