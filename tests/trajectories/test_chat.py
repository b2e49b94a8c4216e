"""trajectories.chat: the messages written piece by piece are the bytes orjson writes for the message objects
built the plain way (a reference written here, as the SFT export built them before), over generated steps
(turns of several calls, any state, dropped steps, corrections, strings with quotes, escapes and non-ASCII);
a call's arguments are their canonical JSON, the text given for them where given; the floats jsonb gives back
otherwise are read as it gives them."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from django.db import connection
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.trajectories.test_import_fuzz import json_values
from trajectories.chat import StoredStep, arguments_json, as_stored, chat_body, chat_messages
from trajectories.formats.canonical import canonical_json

Step = StoredStep  # the generated steps are stored values


def reference(steps: list[Step], indices: list[int], dropped: Any, corrected: Any) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    i = 0
    while i < len(steps):
        step = steps[i]
        for message in step.state:
            role, content = message.get("role"), message.get("content")
            if role in ("system", "user", "assistant") and isinstance(content, str):
                messages.append({"role": role, "content": content})
        if step.kind != "tool_call":
            if not dropped(indices[i]):
                reply = step.arguments.get("content") if isinstance(step.arguments, dict) else None
                messages.append({"role": "assistant", "content": reply if isinstance(reply, str) else step.plan})
            i += 1
            continue
        turn = [i]
        while (
            step.turn_id
            and i + len(turn) < len(steps)
            and steps[i + len(turn)].kind == "tool_call"
            and steps[i + len(turn)].turn_id == step.turn_id
            and not steps[i + len(turn)].state
        ):
            turn.append(i + len(turn))
        kept = [k for k in turn if not dropped(indices[k])]
        if kept:
            calls = []
            for k in kept:
                s = steps[k]
                if isinstance(s.arguments, dict):
                    text = canonical_text({**s.arguments, **corrected(indices[k], s)})
                else:
                    text = s.arguments_raw or "{}"
                calls.append(
                    {
                        "id": s.tool_call_id or f"call_{indices[k]}",
                        "type": "function",
                        "function": {"name": s.tool_name, "arguments": text},
                    }
                )
            messages.append({"role": "assistant", "content": steps[kept[0]].plan or None, "tool_calls": calls})
            for k, call in zip(kept, calls, strict=True):
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": steps[k].observation or ""})
        i += len(turn)
    while messages and messages[-1]["role"] != "assistant":
        messages.pop()
    return messages


def canonical_text(value: dict[str, Any]) -> str:
    """Canonical JSON, or json.dumps's text with its blanks left out where orjson refuses a value (an integer
    beyond 64 bits)."""
    try:
        return canonical_json(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12)
TRICKY = st.one_of(TEXT, st.sampled_from(['", "', '": ', ", ", '\\", "', "\\u0000", "\x00", "\n\t\x1f", "é ü 😀", ""]))
MESSAGE = st.fixed_dictionaries(
    {},
    optional={
        "role": st.sampled_from(["system", "user", "assistant", "tool", "other"]) | st.integers(0, 2),
        "content": st.one_of(TRICKY, st.integers(0, 9), st.none()),
    },
)
STEP = st.builds(
    Step,
    kind=st.sampled_from(["tool_call", "tool_call", "respond"]),
    turn_id=st.sampled_from(["", "t1", "t2"]),
    state=st.lists(MESSAGE, max_size=2) | st.just([]),
    plan=st.sampled_from(["", "Looking it up."]) | TRICKY,
    tool_name=st.sampled_from(["get_reservation", "search"]) | TRICKY,
    tool_call_id=st.sampled_from(["", "c1", "c2"]) | TRICKY,
    arguments=st.one_of(st.dictionaries(TRICKY, json_values, max_size=4), json_values, st.none()),
    arguments_raw=st.none() | TRICKY,
    observation=st.none() | TRICKY,
)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(STEP, max_size=8),
    gap=st.integers(1, 3),
    dropped=st.sets(st.integers(0, 24)),
    fixes=st.dictionaries(st.integers(0, 24), st.dictionaries(TRICKY, json_values, max_size=2), max_size=4),
)
def test_the_pieces_are_what_orjson_writes_for_the_messages(steps, gap, dropped, fixes) -> None:
    indices = [i * gap for i in range(len(steps))]
    for drop, fix in ((None, None), (dropped.__contains__, lambda index, step: fixes.get(index, {}))):
        expected = reference(steps, indices, drop or (lambda index: False), fix or (lambda index, step: {}))
        body = chat_body(steps, indices, dropped=drop, corrected=fix)
        assert body == b",".join(orjson.dumps(m, option=orjson.OPT_SORT_KEYS) for m in expected)
        assert chat_messages(steps, indices, dropped=drop, corrected=fix) == expected


@settings(max_examples=300, deadline=None)
@given(value=st.dictionaries(TRICKY, json_values, max_size=5))
def test_arguments_are_their_canonical_json(value) -> None:
    assert arguments_json(value) == canonical_text(value)
    assert json.loads(arguments_json(value)) == value


def test_arguments_orjson_cannot_write_are_written_by_json() -> None:
    # jsonb gives 1e300 back as an integer of 301 digits (as_stored), which orjson refuses
    value = {"z": as_stored(1e300), "a": [1.5, "é"]}
    assert arguments_json(value) == '{"a":[1.5,"é"],"z":1' + "0" * 300 + "}"


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(STEP, max_size=8), spoiled=st.sets(st.integers(0, 7)))
def test_given_arguments_texts_are_the_texts_written(steps, spoiled) -> None:
    indices = list(range(len(steps)))
    texts = [arguments_json(s.arguments) if isinstance(s.arguments, dict) else None for s in steps]
    assert chat_body(steps, indices, arguments_texts=texts) == chat_body(steps, indices)
    # the given text is the one written (the import gives the text it dumped for the step's row)
    marked = [f'{{"given":{i}}}' if t is not None and i in spoiled else t for i, t in enumerate(texts)]
    written = [
        call["function"]["arguments"]
        for message in orjson.loads(b"[" + chat_body(steps, indices, arguments_texts=marked) + b"]")
        for call in message.get("tool_calls", [])
    ]
    assert written == [
        m if m is not None else s.arguments_raw or "{}"
        for m, s in zip(marked, steps, strict=True)
        if s.kind == "tool_call"
    ]


NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([-0.0, 1e16, 1.5e20, 1e-7, 5.0, 1e300, 12345678901234567.0, -1e22, 1e15, 123456789.0]),
    st.integers(-(2**63), 2**63 - 1),
)


@pytest.mark.django_db
@settings(max_examples=200, deadline=None)
@given(value=st.dictionaries(st.sampled_from(["a", "b", "c"]), st.one_of(NUMBERS, st.lists(NUMBERS, max_size=3))))
def test_numbers_are_read_as_jsonb_gives_them_back(value) -> None:
    # PostgreSQL itself: what its jsonb prints for the text the import stores, read by Python's json
    dumped = canonical_json(value)
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::text::jsonb::text", [dumped.decode()])
        back = json.loads(cursor.fetchone()[0])
    assert json.dumps(as_stored(value), sort_keys=True) == json.dumps(back, sort_keys=True)
