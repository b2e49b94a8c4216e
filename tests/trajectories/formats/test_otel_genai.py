"""OpenTelemetry GenAI traces (OTLP JSON): the current message attributes, the old flat attributes and
the old span events, traces spread over lines, located errors, detection, and fuzz.

There is no real OTLP sample in shared/samples: the fixtures follow the GenAI semantic conventions
(gen-ai-spans.md, gen-ai-agent-spans.md, the input/output message JSON schemas, and the ≤ 1.36
events) and the OTLP JSON encoding (64-bit integers as strings, hex ids).
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from core.services import project_create
from tests.trajectories.fixtures_util import run_import
from trajectories.formats import IMPORTERS, importer_detect, otel_genai
from trajectories.formats.base import RawRecord, RecordError
from trajectories.formats.otel_genai import OtelGenAIImporter
from trajectories.models import ImportStatus, Step, Trajectory
from trajectories.services.storage import prepare

FIXTURES = Path(__file__).parent / "fixtures" / "otel_genai"
CURRENT = "agent_traces_current.jsonl"
FLAT = "flat_attributes.json"
EVENTS = "span_events.jsonl"
TRACE_A = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACE_B = "5b8aa5a2d2c872e8321cf37308d69df2"
FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_slugs = itertools.count()


def import_bytes(project, data: bytes, name: str = "traces.jsonl", **kwargs: Any):
    job = run_import(project, data, name=name, **kwargs)
    job.refresh_from_db()
    return job


def import_file(project, name: str, **kwargs: Any):
    return import_bytes(project, (FIXTURES / name).read_bytes(), name=name, **kwargs)


def steps_of(trajectory: Trajectory) -> list[Step]:
    return list(trajectory.steps.order_by("index"))


def records_of(data: bytes) -> list[RawRecord | RecordError]:
    return list(OtelGenAIImporter().records(io.BytesIO(data)))


# --- the current dialect: gen_ai.input.messages / gen_ai.output.messages ------------------------------


@pytest.mark.smoke
def test_one_trajectory_per_trace_wherever_its_spans_are_in_the_file(project) -> None:
    job = import_file(project, CURRENT)
    assert job.status == ImportStatus.DONE, job.error
    assert job.format_detected == "otel_genai"
    assert (job.records_seen, job.trajectories_imported, job.rejected, job.steps_imported) == (2, 2, 0, 5)
    weather = Trajectory.objects.get(project=project, rollout_id=TRACE_A)
    assert weather.source_pointer.startswith(f"trace {TRACE_A} (line 1, line 2)")
    assert weather.goal_text == "Compare the weather in Paris and London today."
    assert weather.model_name == "gpt-4o"
    assert weather.final_answer.startswith("Paris: 14 °C and rain.")
    assert weather.metadata["agent_name"] == "WeatherBot"
    assert weather.metadata["conversation_id"] == "conv_7f3e"
    assert weather.metadata["usage"] == {"input_tokens": 513, "output_tokens": 84}
    assert weather.metadata["spans"] == {"chat": 2, "execute_tool": 2, "invoke_agent": 1}

    paris, london, reply = steps_of(weather)
    # two parallel calls of one model turn (the first chat span): consecutive steps, one turn id
    assert paris.turn_id == london.turn_id == "c1a0000000000001" != reply.turn_id
    assert (paris.kind, paris.tool_name, paris.tool_call_id) == ("tool_call", "get_weather", "call_paris")
    assert paris.arguments == {"location": "Paris"}
    assert paris.plan == "I'll look up both cities."
    assert paris.state == [
        {"role": "system", "content": "You are WeatherBot. Use get_weather for every city the user names."},
        {"role": "user", "content": "Compare the weather in Paris and London today."},
    ]
    assert json.loads(paris.observation) == {"temperature_c": 14, "conditions": "rain"}
    assert paris.success_flag is True
    assert paris.started_at.isoformat() == "2025-03-04T10:00:01.250000+00:00"
    assert paris.ended_at.isoformat() == "2025-03-04T10:00:01.550000+00:00"
    assert paris.latency_ms == 300.0
    assert (paris.prompt_tokens, paris.completion_tokens) == (212, 46)  # the chat span's usage
    # status ERROR: failed, the exception event is the observation
    assert (london.tool_call_id, london.success_flag, london.latency_ms) == ("call_london", False, 1000.0)
    assert london.observation == "Error: TimeoutError: weather service did not answer within 1 s"
    assert london.plan == "" and london.state == [] and london.prompt_tokens is None
    assert (reply.kind, reply.arguments) == ("respond", {"content": weather.final_answer})
    assert reply.state == []  # the tool results in the second chat's input are the calls' observations
    assert (reply.prompt_tokens, reply.completion_tokens, reply.latency_ms) == (301, 38, 800.0)


@pytest.mark.smoke
def test_without_captured_content_the_agent_span_gives_goal_and_answer_and_usage_moves_on(project) -> None:
    import_file(project, CURRENT)
    flight = Trajectory.objects.get(project=project, rollout_id=TRACE_B)
    assert flight.source_pointer.startswith(f"trace {TRACE_B} (line 2, line 3)")
    assert flight.goal_text == "Is flight BA304 on time?"
    assert flight.model_name == "gpt-4o-mini"
    assert flight.final_answer == "BA304 is on time, departing 14:05 from gate A12."
    status, reply = steps_of(flight)
    assert (status.tool_name, status.tool_call_id, status.arguments) == ("flight_status", "call_1", {"flight": "BA304"})
    assert status.arguments_raw is None  # recorded in structured form (kvlistValue)
    assert status.state == [{"role": "user", "content": "Is flight BA304 on time?"}]
    assert json.loads(status.observation)["gate"] == "A12" and status.success_flag is True
    # a chat span without content makes no step: its usage goes onto the step that follows it
    assert (status.prompt_tokens, status.completion_tokens) == (150, 20)
    assert (reply.kind, reply.arguments) == ("respond", {"content": flight.final_answer})
    assert (reply.prompt_tokens, reply.completion_tokens) == (190, 25)


@pytest.mark.smoke
def test_the_stored_record_is_an_otlp_document_of_that_trace_only() -> None:
    records = records_of((FIXTURES / CURRENT).read_bytes())
    assert [r.where for r in records] == [f"trace {TRACE_A} (line 1, line 2)", f"trace {TRACE_B} (line 2, line 3)"]
    document = json.loads(records[0].raw)
    spans = [s for rs in document["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert {s["traceId"] for s in spans} == {TRACE_A}
    assert len(spans) == 5
    assert document["resourceSpans"][0]["resource"]["attributes"][0]["key"] == "service.name"
    assert OtelGenAIImporter().parse(RawRecord(raw=records[0].raw, where="x", line=1, index=0)).rollout_id == TRACE_A


# --- the old dialects ------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_old_flat_prompt_and_completion_attributes_in_one_pretty_printed_document(project) -> None:
    job = import_file(project, FLAT)
    assert (job.status, job.format_detected, job.trajectories_imported) == (ImportStatus.DONE, "otel_genai", 1)
    run = Trajectory.objects.get(project=project)
    assert run.source_pointer.startswith("trace 0af7651916cd43dd8448eb211c80319c (document)")
    assert (run.goal_text, run.model_name) == ("How many lines are in notes.txt?", "gpt-4o-mini")
    assert run.metadata["provider"] == "openai"  # gen_ai.system
    count, reply = steps_of(run)
    # no execute_tool span: the call comes from the completion, its result from the next prompt
    assert (count.tool_name, count.tool_call_id, count.turn_id) == ("count_lines", "call_a", "b7ad6b7169203331")
    assert (count.arguments, count.arguments_raw) == ({"path": "notes.txt"}, '{"path": "notes.txt"}')
    assert [m["role"] for m in count.state] == ["system", "user"]
    assert (count.observation, count.success_flag) == ("42", True)
    assert (count.prompt_tokens, count.completion_tokens) == (95, 18)  # gen_ai.usage.prompt_tokens
    assert count.started_at is None  # not executed as a span of its own: no timing
    assert reply.arguments == {"content": "notes.txt has 42 lines."}
    assert reply.state == []
    assert run.final_answer == "notes.txt has 42 lines."


@pytest.mark.smoke
def test_old_span_events_with_event_content_and_flat_bodies(project) -> None:
    job = import_file(project, EVENTS)
    assert (job.status, job.trajectories_imported, job.steps_imported) == (ImportStatus.DONE, 1, 3), job.errors
    run = Trajectory.objects.get(project=project)
    assert run.goal_text == "Book a 30 minute meeting with Ana tomorrow at 10."
    assert run.metadata["provider"] == "az.ai.inference"
    check, create, reply = steps_of(run)
    assert check.plan == "Let me check Ana's calendar first."
    assert [m["content"] for m in check.state] == ["You are a calendar assistant.", run.goal_text]
    assert check.arguments == {"person": "Ana", "start": "2025-03-05T10:00"}  # from the gen_ai.choice event
    assert (check.observation, check.success_flag) == ('{"available": true}', True)  # gen_ai.tool.message event
    assert check.latency_ms == 120.0
    assert (create.tool_name, create.tool_call_id, create.turn_id) == ("create_event", "call_y", "e1d0000000000002")
    assert (create.observation, create.success_flag) == ('{"error": "calendar is read-only"}', False)
    assert (create.prompt_tokens, create.completion_tokens) == (180, 40)
    assert reply.arguments == {"content": "I couldn't book it: Ana's calendar is read-only. Shall I email her instead?"}
    assert reply.state == []  # the system and user messages (repeated in every chat span) are context once


# --- containers, order, and errors ------------------------------------------------------------------------


def _line(trace_id: str, span_id: str, parent: str, attributes: dict[str, str], start: int = 1) -> bytes:
    span = {
        "traceId": trace_id,
        "spanId": span_id,
        "parentSpanId": parent,
        "name": attributes.get("gen_ai.operation.name", "work"),
        "startTimeUnixNano": str(1741082400_000_000_000 + start),
        "endTimeUnixNano": str(1741082400_000_000_000 + start + 5_000_000),
        "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attributes.items()],
    }
    return json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [{"scope": {}, "spans": [span]}]}]}).encode()


TOOL = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup", "gen_ai.tool.call.result": "ok"}


@pytest.mark.smoke
def test_a_json_array_of_documents_and_a_malformed_line_costs_only_that_line(project) -> None:
    array = b"[" + _line("t1", "s1", "", TOOL) + b",\n" + _line("t2", "s2", "", TOOL) + b"]"
    job = import_bytes(project, array, name="traces.json")
    assert (job.status, job.trajectories_imported) == (ImportStatus.DONE, 2), job.errors
    lines = _line("t3", "s1", "", TOOL) + b"\n{not json\n" + _line("t4", "s2", "", TOOL) + b"\n"
    job = import_bytes(project, lines)
    assert (job.status, job.records_seen, job.trajectories_imported, job.rejected) == (ImportStatus.DONE, 3, 2, 1)
    [error] = job.errors
    assert error["where"] == "line 2" and error["message"].startswith("malformed JSON")


@pytest.mark.smoke
def test_traces_without_genai_spans_and_bad_spans_are_rejected_where_they_are(project) -> None:
    http = _line("t5", "s1", "", {"http.request.method": "GET"})
    no_trace = json.dumps(
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "x", "name": "orphan"}]}]}]}
    ).encode()
    bad_attribute = json.loads(_line("t6", "s1", "", TOOL))
    bad_attribute["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"][1]["value"] = {"intValue": "ten"}
    not_otlp = b'{"spans": []}'
    data = b"\n".join([http, no_trace, json.dumps(bad_attribute).encode(), not_otlp, _line("t7", "s1", "", TOOL)])
    job = import_bytes(project, data)
    assert job.status == ImportStatus.DONE
    assert (job.records_seen, job.trajectories_imported, job.rejected) == (5, 1, 4)
    errors = [(e["where"], e["pointer"], e["message"]) for e in job.errors]
    assert ("line 2", "/resourceSpans/0/scopeSpans/0/spans/0/traceId", "a span needs a 'traceId' string") in errors
    assert ("line 4", "/resourceSpans", "missing 'resourceSpans' (a list): not an OTLP trace export") in errors
    by_trace = {e[0].split(" (")[0]: e for e in errors if e[0].startswith("trace")}
    assert by_trace["trace t5"][2].startswith("no GenAI span")
    assert by_trace["trace t6"][1] == "/resourceSpans/0/scopeSpans/0/spans/0/attributes/1/value/intValue"
    assert by_trace["trace t6"][2] == "intValue must be a whole number"


@pytest.mark.smoke
def test_past_the_buffer_limit_rooted_traces_go_first_and_late_spans_are_reported(monkeypatch) -> None:
    monkeypatch.setattr(otel_genai, "BUFFER_BYTES", 600)
    data = b"\n".join(
        [
            _line("a", "a1", "", TOOL),  # rooted
            _line("b", "b1", "root-not-here-yet", TOOL),  # not rooted: waits
            _line("c", "c1", "", TOOL),  # over the limit: "a" and then "c" leave
            _line("a", "a2", "a1", TOOL, start=9),  # too late for "a"
        ]
    )
    items = records_of(data)
    assert [(type(i).__name__, i.where) for i in items] == [
        ("RawRecord", "trace a (line 1)"),
        ("RawRecord", "trace c (line 3)"),
        ("RecordError", "line 4"),
        ("RawRecord", "trace b (line 2)"),
    ]
    assert "come after that trace was imported" in items[2].message


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"gen_ai.operation.name": "chat", "gen_ai.input.messages": "[{"}, "gen_ai.input.messages is not valid JSON"),
        (
            {"gen_ai.operation.name": "chat", "gen_ai.output.messages": '{"role": "assistant"}'},
            "must be a list of messages",
        ),
        ({"gen_ai.operation.name": "chat", "gen_ai.output.messages": '[{"parts": []}]'}, "needs a 'role' string"),
        ({"gen_ai.operation.name": "chat"}, "nothing to segment into steps"),
        ({"gen_ai.operation.name": "embeddings"}, "no GenAI span"),
    ],
)
def test_message_attribute_errors_name_the_span_and_the_attribute(attributes: dict[str, str], message: str) -> None:
    [record] = records_of(_line("t", "s9", "", attributes))
    assert isinstance(record, RawRecord)
    with pytest.raises(RecordError) as caught:
        OtelGenAIImporter().parse(record)
    assert message in caught.value.message
    assert caught.value.pointer.startswith("/resourceSpans")


@pytest.mark.smoke
def test_tool_arguments_that_do_not_parse_are_kept_as_written() -> None:
    [record] = records_of(_line("t", "s1", "", {**TOOL, "gen_ai.tool.call.arguments": "{'q': 1}"}))
    [step] = OtelGenAIImporter().parse(record).steps  # type: ignore[arg-type]
    assert (step.arguments, step.arguments_raw) == (None, "{'q': 1}")
    assert "not valid JSON" in step.arguments_error


# --- detection ---------------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_detection_picks_otlp_files_and_leaves_the_others_alone(samples_dir: Path) -> None:
    for name in (CURRENT, FLAT, EVENTS):
        assert importer_detect((FIXTURES / name).read_bytes()[:65536]).name == "otel_genai", name
    otel = IMPORTERS["otel_genai"]
    samples = sorted(p for p in samples_dir.iterdir() if p.name != "README.md")
    assert samples
    for path in samples:
        assert otel.detect(path.read_bytes()[:65536]) == 0, path.name
    openai_chat = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
    assert otel.detect(openai_chat) == 0
    sharegpt = (Path(__file__).parent / "fixtures" / "sharegpt" / "parallel_dpo_kto.jsonl").read_bytes()
    assert otel.detect(sharegpt) == 0
    assert IMPORTERS["sharegpt"].detect((FIXTURES / CURRENT).read_bytes()[:65536]) == 0


# --- fuzz ------------------------------------------------------------------------------------------------------

texts = st.one_of(st.text(max_size=16), st.sampled_from(["", "a\x00b", "é", "😀", "{", "[]"]))
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**64), 2**64), st.floats(allow_nan=False, allow_infinity=False), texts
)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=6
)
any_values = st.recursive(
    st.one_of(
        texts.map(lambda t: {"stringValue": t}),
        st.integers(-(2**63), 2**63 - 1).map(lambda n: {"intValue": str(n)}),
        st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["NaN", "-Infinity", "x"])).map(
            lambda f: {"doubleValue": f}
        ),
        st.booleans().map(lambda b: {"boolValue": b}),
        st.just({}),
        json_scalars,
    ),
    lambda inner: (
        st.lists(inner, max_size=3).map(lambda vs: {"arrayValue": {"values": vs}})
        | st.lists(st.tuples(texts, inner), max_size=3).map(
            lambda kvs: {"kvlistValue": {"values": [{"key": k, "value": v} for k, v in kvs]}}
        )
    ),
    max_leaves=5,
)
parts = st.lists(
    st.one_of(
        st.builds(lambda t: {"type": "text", "content": t}, texts),
        st.builds(
            lambda i, n, a: {"type": "tool_call", "id": i, "name": n, "arguments": a},
            texts,
            st.sampled_from(["lookup", "book", ""]),
            json_values,
        ),
        st.builds(lambda i, r: {"type": "tool_call_response", "id": i, "result": r}, texts, json_values),
        st.builds(lambda t: {"type": "reasoning", "content": t}, texts),
        json_values,
    ),
    max_size=3,
)
messages = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "tool", "system", 3]), "parts": parts}),
    max_size=3,
).map(json.dumps)
genai_attributes = st.dictionaries(
    st.sampled_from(
        [
            "gen_ai.operation.name",
            "gen_ai.tool.name",
            "gen_ai.tool.call.id",
            "gen_ai.tool.call.arguments",
            "gen_ai.tool.call.result",
            "gen_ai.input.messages",
            "gen_ai.output.messages",
            "gen_ai.system_instructions",
            "gen_ai.usage.input_tokens",
            "gen_ai.request.model",
            "gen_ai.prompt.0.role",
            "gen_ai.prompt.0.content",
            "gen_ai.completion.0.tool_calls.0.name",
            "gen_ai.completion.0.content",
            "error.type",
        ]
    ),
    st.one_of(
        st.sampled_from(["chat", "execute_tool", "invoke_agent", "lookup", "user", "assistant"]).map(
            lambda s: {"stringValue": s}
        ),
        messages.map(lambda m: {"stringValue": m}),
        any_values,
    ),
    max_size=6,
)


@st.composite
def span(draw: st.DrawFn) -> Any:
    out = {
        "traceId": draw(st.sampled_from(["t1", "t2", "t3"])),
        "spanId": draw(texts),
        "parentSpanId": draw(st.sampled_from(["", "p"])),
        "name": draw(texts),
        "startTimeUnixNano": draw(st.one_of(st.integers(0, 2**63).map(str), st.integers(-5, 2**70), texts)),
        "endTimeUnixNano": str(draw(st.integers(0, 2**63))),
        "attributes": [{"key": k, "value": v} for k, v in draw(genai_attributes).items()],
        "status": draw(
            st.one_of(
                st.just({}),
                st.builds(lambda c: {"code": c, "message": "boom"}, st.sampled_from([0, 1, 2, "STATUS_CODE_ERROR"])),
            )
        ),
    }
    if draw(st.booleans()):
        out["events"] = [
            {
                "name": draw(
                    st.sampled_from(["gen_ai.choice", "gen_ai.user.message", "gen_ai.tool.message", "exception"])
                ),
                "attributes": [
                    {
                        "key": "gen_ai.event.content",
                        "value": {"stringValue": draw(st.one_of(texts, json_values.map(json.dumps)))},
                    }
                ],
            }
        ]
    if draw(st.integers(0, 25)) == 12:
        return draw(json_values)
    return out


documents = st.one_of(
    st.lists(span(), max_size=4).map(
        lambda spans: {"resourceSpans": [{"resource": {}, "scopeSpans": [{"scope": {}, "spans": spans}]}]}
    ),
    json_values,
)


def valid_document(i: int) -> dict[str, Any]:
    return json.loads(_line(f"v{i}", "s1", "", TOOL, start=i))


def import_and_check(pm, data: bytes, format_name: str) -> None:
    project = project_create(actor=pm, name="Fuzz", kind="tool_use", slug=f"fuzz-otel-{next(_slugs)}")
    job = run_import(project, data, format_name=format_name)  # must not raise
    job.refresh_from_db()
    assert job.status in (ImportStatus.DONE, ImportStatus.FAILED)
    if job.status == ImportStatus.FAILED:
        assert job.error.strip()
    assert "internal error" not in job.error, job.error
    for error in job.errors:
        assert error["where"].strip() and error["message"].strip(), error
        assert "could not be read (" not in error["message"], error  # an importer fault, not a located error
    assert job.records_seen == job.trajectories_imported + job.duplicates + job.rejected
    trajectories = Trajectory.objects.filter(project=project)
    assert trajectories.count() == job.trajectories_imported
    for trajectory in trajectories:
        assert trajectory.steps.count() == trajectory.step_count


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


@FUZZ
@given(
    docs=st.lists(st.one_of(documents, st.integers(0, 9).map(valid_document)), min_size=1, max_size=4),
    container=st.sampled_from(["jsonl", "array"]),
    named=st.booleans(),
)
def test_generated_otlp_files_import_without_surprises(db, pm, docs: list[Any], container: str, named: bool) -> None:
    docs = [valid_document(99), *docs]
    if container == "array":
        data = b"[\n" + b",\n".join(dumps(d) for d in docs) + b"\n]\n"
    else:
        data = b"".join(dumps(d) + b"\n" for d in docs)
    import_and_check(pm, data, "otel_genai" if named else "")


@st.composite
def corrupted_files(draw: st.DrawFn) -> tuple[bytes, str]:
    data = bytearray((FIXTURES / draw(st.sampled_from([CURRENT, FLAT, EVENTS]))).read_bytes())
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 20))]
        else:
            del data[at:]
    if draw(st.integers(0, 5)) == 0:
        return gzip.compress(bytes(data)), ""
    return bytes(data), draw(st.sampled_from(["", "otel_genai"]))


@FUZZ
@given(file=corrupted_files())
def test_corrupted_fixtures_import_without_surprises(db, pm, file: tuple[bytes, str]) -> None:
    import_and_check(pm, *file)


@FUZZ
@given(document=documents)
def test_each_trace_parses_to_a_storable_run_or_a_located_error(document: Any) -> None:
    """Reading and parsing (no database): runs ready to store, or RecordErrors with a pointer."""
    for item in records_of(dumps(document) + b"\n"):
        if isinstance(item, RecordError):
            assert item.message and item.where
            continue
        try:
            prepared = prepare(item, OtelGenAIImporter().parse(item))
        except RecordError as exc:
            assert exc.message
            assert exc.pointer == "" or exc.pointer.startswith("/")
            continue
        assert len(prepared.content_sha256) == 64
        assert all(s.kind in ("tool_call", "respond") and s.tool_name for s in prepared.run.steps)


openai_calls = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.sampled_from(["c1", "c2", ""]),
            "type": st.just("function"),
            "function": st.fixed_dictionaries(
                {
                    "name": st.sampled_from(["lookup", "book", ""]),
                    "arguments": st.one_of(texts, json_values.map(json.dumps)),
                }
            ),
        }
    ),
    max_size=2,
)
event_bodies = st.fixed_dictionaries(
    {},
    optional={
        "content": st.one_of(texts, json_values),
        "tool_calls": openai_calls,
        "id": st.sampled_from(["c1", "c2"]),
    },
)


@st.composite
def genai_span(draw: st.DrawFn, order: int) -> dict[str, Any]:
    """A span shaped like the conventions, in one of the dialects, with odd values now and then."""
    attributes: dict[str, Any] = {}
    operation = draw(st.sampled_from(["chat", "chat", "execute_tool", "execute_tool", "invoke_agent", None]))
    if operation:
        attributes["gen_ai.operation.name"] = {"stringValue": operation}
    dialect = draw(st.sampled_from(["current", "flat", "events", "none"]))
    events = []
    if dialect == "current":
        for key in ("gen_ai.input.messages", "gen_ai.output.messages"):
            attributes[key] = {"stringValue": draw(messages)}
    elif dialect == "flat":
        for key in draw(
            st.lists(
                st.sampled_from(
                    [
                        "gen_ai.prompt.0.role",
                        "gen_ai.prompt.0.content",
                        "gen_ai.prompt.1.role",
                        "gen_ai.prompt.1.tool_call_id",
                        "gen_ai.completion.0.content",
                        "gen_ai.completion.0.tool_calls.0.id",
                        "gen_ai.completion.0.tool_calls.0.name",
                        "gen_ai.completion.0.tool_calls.0.arguments",
                        "gen_ai.completion.0.tool_calls",
                    ]
                ),
                max_size=6,
            )
        ):
            attributes[key] = draw(st.one_of(st.sampled_from(["user", "tool", "lookup", "c1"]), texts)).join(["", ""])
            attributes[key] = {"stringValue": attributes[key]}
    elif dialect == "events":
        for name in draw(
            st.lists(st.sampled_from([*otel_genai._EVENT_ROLES, "gen_ai.choice", "exception"]), max_size=4)
        ):
            body = draw(event_bodies)
            if name == "gen_ai.choice":
                body = {"index": draw(st.sampled_from([0, 1])), "message": body}
            events.append(
                {
                    "name": name,
                    "attributes": [{"key": "gen_ai.event.content", "value": {"stringValue": json.dumps(body)}}],
                }
            )
    if operation == "execute_tool" or draw(st.integers(0, 4)) == 2:
        attributes["gen_ai.tool.name"] = {"stringValue": draw(st.sampled_from(["lookup", "book", ""]))}
        attributes["gen_ai.tool.call.id"] = {"stringValue": draw(st.sampled_from(["c1", "c2", ""]))}
        attributes["gen_ai.tool.call.arguments"] = draw(
            st.one_of(
                json_values.map(lambda v: {"stringValue": json.dumps(v)}),
                texts.map(lambda t: {"stringValue": t}),
                st.dictionaries(texts, json_scalars, max_size=3).map(
                    lambda d: {
                        "kvlistValue": {"values": [{"key": k, "value": {"stringValue": str(v)}} for k, v in d.items()]}
                    }
                ),
            )
        )
        if draw(st.booleans()):
            attributes["gen_ai.tool.call.result"] = {"stringValue": draw(st.one_of(texts, json_values.map(json.dumps)))}
    if draw(st.integers(0, 3)) == 0:  # now and then anything at all
        for key, value in draw(genai_attributes).items():
            attributes.setdefault(key, value)
    start = 1741082400_000_000_000 + order * 1_000_000
    return {
        "traceId": "t1",
        "spanId": f"s{order}",
        "parentSpanId": "" if order == 0 else "s0",
        "name": draw(texts),
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + draw(st.integers(-10, 10**9))),
        "attributes": [{"key": k, "value": v} for k, v in attributes.items()],
        "events": events,
        "status": draw(st.sampled_from([{}, {"code": 2, "message": "boom"}, {"code": "STATUS_CODE_OK"}])),
    }


@st.composite
def genai_traces(draw: st.DrawFn) -> dict[str, Any]:
    spans = [draw(genai_span(order)) for order in range(draw(st.integers(1, 5)))]
    return {"resourceSpans": [{"resource": {}, "scopeSpans": [{"scope": {}, "spans": spans}]}]}


@settings(FUZZ, max_examples=150)
@given(document=genai_traces())
def test_traces_in_every_dialect_parse_to_a_storable_run_or_a_located_error(document: Any) -> None:
    [record] = records_of(dumps(document))
    assert isinstance(record, RawRecord)
    try:
        prepared = prepare(record, OtelGenAIImporter().parse(record))
    except RecordError as exc:
        assert exc.message
        assert exc.pointer == "" or exc.pointer.startswith("/")
        return
    assert prepared.run.rollout_id == "t1"
    for step in prepared.run.steps:
        assert step.kind in ("tool_call", "respond") and step.tool_name
        assert step.arguments is not None or step.arguments_raw is not None
