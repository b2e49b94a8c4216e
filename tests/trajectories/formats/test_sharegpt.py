"""ShareGPT as LLaMA-Factory reads it (FORMATS.md §7.2): layouts, parallel calls, preference rows,
the OpenAI-style alternative, located errors, detection, and fuzz.

There is no real ShareGPT sample in shared/samples: the fixtures are written after LLaMA-Factory's
glaive_toolcall demo rows and converter rules.
"""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from core.services import project_create
from tests.trajectories.fixtures_util import run_import
from trajectories.formats import IMPORTERS, importer_detect
from trajectories.formats.base import RawRecord, RecordError
from trajectories.formats.sharegpt import ShareGPTImporter
from trajectories.models import ImportStatus, Step, Trajectory
from trajectories.services.storage import prepare

FIXTURES = Path(__file__).parent / "fixtures" / "sharegpt"
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


# --- layouts -----------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_a_json_array_of_glaive_style_rows_imports_with_its_steps(project) -> None:
    job = import_file(project, FIXTURES / "glaive_toolcall.json")
    assert job.status == ImportStatus.DONE, job.error
    assert job.format_detected == "sharegpt"
    assert (job.records_seen, job.trajectories_imported, job.rejected, job.steps_imported) == (3, 3, 0, 8)
    recipe, weather, currency = Trajectory.objects.filter(project=project).order_by("id")

    assert recipe.goal_text == "I have some chicken and broccoli. Can you find me a recipe?"
    assert recipe.final_answer.startswith("I found a recipe for you: Chicken and Broccoli Stir Fry.")
    call, reply = steps_of(recipe)
    assert (call.kind, call.tool_name, call.arguments) == (
        "tool_call",
        "search_recipes",
        {"ingredients": ["chicken", "broccoli"]},
    )
    assert [m["role"] for m in call.state] == ["system", "user"]  # the system prompt and the human turn
    assert call.state[0]["content"].startswith("You are a helpful assistant with access to the following functions.")
    assert json.loads(call.observation)["recipes"][0]["name"] == "Chicken and Broccoli Stir Fry"
    assert call.success_flag is True
    assert (reply.kind, reply.tool_name, reply.arguments) == ("respond", "respond", {"content": recipe.final_answer})
    assert reply.state == [] and reply.success_flag is None

    # parallel calls: consecutive steps of one turn, the joined observation split between them
    first, second, answer = steps_of(weather)
    assert first.turn_id == second.turn_id != answer.turn_id
    assert [first.arguments, second.arguments] == [{"city": "Paris"}, {"city": "Berlin"}]
    assert json.loads(first.observation) == {"city": "Paris", "temp_c": 18, "sky": "clear"}
    assert json.loads(second.observation) == {"city": "Berlin", "temp_c": 11, "sky": "rain"}
    assert second.state == [] and second.plan == ""

    # a leading system turn is the system prompt; the first human turn is the goal
    assert currency.goal_text == "Hi! Can you help with currencies?"
    greeting, convert, sorry = steps_of(currency)
    assert greeting.kind == "respond"
    assert greeting.state == [
        {"role": "system", "content": "You are a travel money assistant."},
        {"role": "user", "content": "Hi! Can you help with currencies?"},
    ]
    assert convert.state == [{"role": "user", "content": "100 US dollars to euros, please."}]
    # arguments that are not JSON: kept as written, the step imported all the same
    assert convert.arguments is None
    assert convert.arguments_raw == '{"amount": 100, "from": "USD"'
    assert "not valid JSON" in convert.arguments_error
    assert convert.success_flag is False  # "Error: …" observation
    assert sorry.arguments == {"content": "Sorry, the conversion service could not process that request."}


@pytest.mark.smoke
def test_the_tools_string_is_read_as_a_list_of_tool_definitions() -> None:
    data = (FIXTURES / "glaive_toolcall.json").read_bytes()
    runs = [ShareGPTImporter().parse(r) for r in ShareGPTImporter().records(_stream(data))]  # type: ignore[arg-type]
    assert runs[0].tools == [
        {
            "type": "function",
            "function": {
                "name": "search_recipes",
                "description": "Search for recipes based on ingredients",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "ingredients": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "The ingredients to include",
                        }
                    },
                    "required": ["ingredients"],
                },
            },
        }
    ]
    assert runs[1].tools is not None and runs[1].tools[0]["function"]["name"] == "get_weather"  # already wrapped


@pytest.mark.smoke
def test_json_list_results_split_ambiguous_results_go_to_the_first_call_and_preference_rows(project) -> None:
    job = import_file(project, FIXTURES / "parallel_dpo_kto.jsonl")
    assert (job.status, job.records_seen, job.trajectories_imported, job.rejected) == (ImportStatus.DONE, 4, 4, 0)
    runs = {t.rollout_id: t for t in Trajectory.objects.filter(project=project)}
    assert set(runs) == {"row-parallel-list", "row-ambiguous", "row-dpo", "row-kto"}

    acme, globex, _ = steps_of(runs["row-parallel-list"])
    assert json.loads(acme.observation) == {"symbol": "ACME", "price": 12.5}
    assert json.loads(globex.observation) == {"symbol": "GLOBEX", "price": 98.1}

    one, two, _ = steps_of(runs["row-ambiguous"])
    assert one.observation == "build-1: 12 ms, build-2: 15 ms"  # cannot be told apart: all to the first call
    assert two.observation is None and two.success_flag is None

    listing, chosen = steps_of(runs["row-dpo"])
    assert (listing.tool_name, listing.observation) == ("list_files", "a.o\nb.o\ncache/")
    assert (chosen.tool_name, chosen.arguments) == ("delete_files", {"paths": ["/tmp/build/a.o", "/tmp/build/b.o"]})
    assert chosen.observation is None
    assert runs["row-dpo"].alternatives == [
        {"rejected": {"from": "function_call", "value": '{"name": "delete_files", "arguments": {"paths": ["/"]}}'}}
    ]
    assert runs["row-kto"].metadata == {"kto_tag": True}
    assert runs["row-kto"].final_answer == "Bonjour !"


@pytest.mark.smoke
def test_the_openai_style_alternative_with_llama_factory_roles(project) -> None:
    job = import_file(project, FIXTURES / "openai_style.jsonl")
    assert job.format_detected == "sharegpt"  # the function_call / observation roles are LLaMA-Factory's
    assert (job.status, job.trajectories_imported, job.rejected) == (ImportStatus.DONE, 2, 0), job.errors
    todo, complete = Trajectory.objects.filter(project=project).order_by("id")
    add, done = steps_of(todo)
    assert (add.tool_name, add.arguments, add.observation) == (
        "add_todo",
        {"title": "buy milk"},
        '{"ok": true, "id": 7}',
    )
    assert [m["role"] for m in add.state] == ["system", "user"]
    assert done.arguments == {"content": "Added 'buy milk' (todo #7)."}
    three, four, reply = steps_of(complete)
    assert three.plan == "Marking both now." and four.plan == ""
    assert (three.tool_call_id, three.turn_id) == ("call_3", four.turn_id)
    assert (three.observation, three.success_flag) == ('{"ok": true}', True)
    assert (four.observation, four.success_flag) == ('{"error": "todo 4 does not exist"}', False)
    assert reply.kind == "respond"


@pytest.mark.smoke
def test_bad_rows_are_rejected_with_json_pointers_and_the_good_one_imports(project) -> None:
    job = import_file(project, FIXTURES / "bad_rows.jsonl")
    assert job.status == ImportStatus.DONE
    assert (job.records_seen, job.trajectories_imported, job.rejected) == (6, 1, 5)
    errors = {e["where"]: (e["pointer"], e["message"]) for e in job.errors}
    assert errors["line 2"][0] == "/conversations/1/value"
    assert errors["line 2"][1].startswith("function_call value is not JSON")
    assert errors["line 3"][0] == "/conversations/2/from"
    assert "unknown role 'assistant'" in errors["line 3"][1] and "human, gpt, function_call" in errors["line 3"][1]
    assert errors["line 4"] == ("/conversations/1/value", "the function_call value needs a non-empty 'name'")
    assert errors["line 5"][0] == "/tools" and errors["line 5"][1].startswith("tools is not JSON")
    assert errors["line 6"] == ("/conversations", "no gpt or function_call turn: nothing to segment into steps")
    assert Trajectory.objects.get(project=project).goal_text == "List my files."


@pytest.mark.smoke
def test_a_gpt_turn_right_before_a_call_is_its_plan_and_a_stray_observation_is_context() -> None:
    record = {
        "conversations": [
            {"from": "human", "value": "Find the invoice."},
            {"from": "gpt", "value": "I will search the mailbox."},
            {"from": "function_call", "value": '{"name": "search_mail", "arguments": {"q": "invoice"}}'},
            {"from": "observation", "value": "1 result"},
            {"from": "observation", "value": "mailbox synced"},
            {"from": "gpt", "value": "Found it."},
        ]
    }
    run = _parse(record)
    call, reply = run.steps
    assert (call.plan, call.observation) == ("I will search the mailbox.", "1 result")
    assert reply.state == [{"role": "tool", "content": "mailbox synced"}]


@pytest.mark.smoke
def test_a_leading_system_turn_takes_the_place_of_the_system_column() -> None:
    record = {
        "conversations": [
            {"from": "system", "value": "Answer in French."},
            {"from": "human", "value": "Hello"},
            {"from": "gpt", "value": "Bonjour"},
        ],
        "system": "Answer in English.",
    }
    [reply] = _parse(record).steps
    assert reply.state == [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hello"}]
    del record["conversations"][0]
    [reply] = _parse(record).steps
    assert reply.state[0] == {"role": "system", "content": "Answer in English."}


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("record", "pointer", "message"),
    [
        ([], "", "a record must be a JSON object, not list"),
        ({"conversation": []}, "/conversations", "missing 'conversations'"),
        ({"conversations": {}}, "/conversations", "conversations must be a list"),
        ({"conversations": ["hi"]}, "/conversations/0", "a turn must be an object"),
        ({"conversations": [{"from": "gpt", "value": 3}]}, "/conversations/0/value", "value must be a string"),
        ({"conversations": [{"from": "function_call", "value": "[]"}]}, "/conversations/0/value", "empty list"),
        ({"conversations": [{"from": "function_call", "value": '"x"'}]}, "/conversations/0/value", "must be an object"),
        (
            {"conversations": [{"from": "function_call", "value": '{"name": "f", "arguments": [1]}'}]},
            "/conversations/0/value",
            "arguments must be a JSON string or an object",
        ),
        ({"conversations": [{"from": "gpt", "value": "ok"}], "system": 1}, "/system", "system must be a string"),
        ({"conversations": [{"from": "gpt", "value": "ok"}], "tools": "{}"}, "/tools", "tools must be a JSON list"),
        (
            {"conversations": [{"from": "human", "value": "q"}], "chosen": {"from": "human", "value": "x"}},
            "/chosen/from",
            "a preference answer must be a gpt or function_call turn",
        ),
        ({"messages": [{"role": "robot", "content": "x"}]}, "/messages/0/role", "unknown role 'robot'"),
    ],
)
def test_record_errors_are_located(record: Any, pointer: str, message: str) -> None:
    with pytest.raises(RecordError) as caught:
        _parse(record)
    assert caught.value.pointer == pointer
    assert message in caught.value.message


# --- detection ---------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_detection_picks_sharegpt_files_and_leaves_the_others_alone(samples_dir: Path) -> None:
    for name in ("glaive_toolcall.json", "parallel_dpo_kto.jsonl", "bad_rows.jsonl", "openai_style.jsonl"):
        assert importer_detect((FIXTURES / name).read_bytes()[:65536]).name == "sharegpt", name
    sharegpt = IMPORTERS["sharegpt"]
    samples = sorted(p for p in samples_dir.iterdir() if p.name != "README.md")
    assert samples
    for path in samples:
        assert sharegpt.detect(path.read_bytes()[:65536]) == 0, path.name
    openai_chat = (
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                    },
                    {"role": "tool", "tool_call_id": "a", "content": "ok"},
                    {"role": "assistant", "content": "done"},
                ]
            }
        ).encode()
        + b"\n"
    )
    assert sharegpt.detect(openai_chat) == 0
    assert importer_detect(openai_chat).name == "openai_chat"


# --- fuzz ----------------------------------------------------------------------------------------------

texts = st.one_of(st.text(max_size=20), st.sampled_from(["", "a\x00b", "é", "😀", "</tool_response><tool_response>"]))
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), texts)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=6
)
call_objects = st.fixed_dictionaries(
    {"name": st.one_of(st.sampled_from(["search", "book"]), texts, st.none())},
    optional={"arguments": st.one_of(st.dictionaries(texts, json_values, max_size=3), texts, json_values)},
)
function_values = st.one_of(
    call_objects.map(json.dumps),
    st.lists(call_objects, max_size=3).map(json.dumps),
    texts,
    json_values.map(lambda v: json.dumps(v)),
)
observations = st.one_of(
    texts,
    st.lists(texts, min_size=1, max_size=3).map(lambda xs: "\n</tool_response>\n<tool_response>\n".join(xs)),
    st.lists(json_values, max_size=3).map(lambda v: json.dumps(v)),
)


@st.composite
def turn(draw: st.DrawFn) -> Any:
    role = draw(
        st.sampled_from(["human", "gpt", "gpt", "function_call", "function_call", "observation", "system", "tool"])
    )
    value: Any
    if role == "function_call":
        value = draw(function_values)
    elif role == "observation":
        value = draw(observations)
    else:
        value = draw(texts)
    out = {"from": role, "value": value}
    if draw(st.integers(0, 20)) == 10:
        return draw(json_values)
    if draw(st.integers(0, 20)) == 10:
        out["value"] = draw(json_scalars)
    return out


fuzzed_record = st.fixed_dictionaries(
    {"conversations": st.lists(turn(), max_size=7)},
    optional={
        "system": st.one_of(texts, json_scalars),
        "tools": st.one_of(texts, st.lists(json_values, max_size=2).map(json.dumps), json_values),
        "chosen": turn(),
        "rejected": turn(),
        "id": st.one_of(texts, st.integers(), json_values),
    },
)


def valid_record(i: int) -> dict[str, Any]:
    return {
        "conversations": [
            {"from": "human", "value": f"question {i}"},
            {
                "from": "function_call",
                "value": json.dumps(
                    [{"name": "lookup", "arguments": {"i": i}}, {"name": "lookup", "arguments": {"i": -i}}]
                ),
            },
            {
                "from": "observation",
                "value": "found\n</tool_response>\n<tool_response>\nError: none" if i % 2 else "[1, 2]",
            },
            {"from": "gpt", "value": f"answer {i}"},
        ],
        "system": "be brief",
        "tools": json.dumps([{"name": "lookup", "parameters": {"type": "object"}}]),
    }


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()  # orjson cannot write integers beyond 64 bits


def encode(records: list[Any], container: str) -> bytes:
    if container == "array":
        return b"[\n" + b",\n".join(dumps(r) for r in records) + b"\n]\n"
    return b"".join(dumps(r) + b"\n" for r in records)


def import_and_check(pm, data: bytes, format_name: str) -> None:
    project = project_create(actor=pm, name="Fuzz", kind="tool_use", slug=f"fuzz-sharegpt-{next(_slugs)}")
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


@FUZZ
@given(
    records=st.lists(st.one_of(fuzzed_record, st.integers(0, 9).map(valid_record)), min_size=1, max_size=5),
    container=st.sampled_from(["jsonl", "array"]),
    named=st.booleans(),
)
def test_generated_sharegpt_files_import_without_surprises(
    db, pm, records: list[Any], container: str, named: bool
) -> None:
    data = encode([valid_record(99), *records], container)
    import_and_check(pm, data, "sharegpt" if named else "")


@st.composite
def corrupted_files(draw: st.DrawFn) -> tuple[bytes, str]:
    sources = [
        (FIXTURES / n).read_bytes() for n in ("glaive_toolcall.json", "parallel_dpo_kto.jsonl", "openai_style.jsonl")
    ]
    data = bytearray(draw(st.sampled_from(sources)))
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
    return bytes(data), draw(st.sampled_from(["", "sharegpt"]))


@FUZZ
@given(file=corrupted_files())
def test_corrupted_fixtures_import_without_surprises(db, pm, file: tuple[bytes, str]) -> None:
    import_and_check(pm, *file)


@FUZZ
@given(record=fuzzed_record, as_array_element=st.booleans())
def test_parse_of_any_record_is_a_storable_run_or_a_located_error(record: Any, as_array_element: bool) -> None:
    """Parsing and preparing (no database): a run ready to store, or a RecordError with a pointer."""
    try:
        run = _parse(record, as_array_element=as_array_element)
        prepared = prepare(RawRecord(raw=dumps(record), where="line 1", line=1, index=0), run)
    except RecordError as exc:
        assert exc.message
        assert exc.pointer == "" or exc.pointer.startswith("/")
        return
    assert len(prepared.content_sha256) == 64
    assert run.steps and all(s.kind in ("tool_call", "respond") and s.tool_name for s in run.steps)
    assert all(s.arguments is not None or s.arguments_raw is not None for s in run.steps)


# --- helpers ---------------------------------------------------------------------------------------------


def _parse(record: Any, *, as_array_element: bool = False):
    raw = dumps(record)
    value = json.loads(raw) if as_array_element else None
    return ShareGPTImporter().parse(RawRecord(raw=raw, where="line 1", line=1, index=0, value=value))


def _stream(data: bytes):
    import io

    return io.BytesIO(data)
