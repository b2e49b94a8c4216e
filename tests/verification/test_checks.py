"""The pure checks: each finding class, on calls built by hand."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from verification.checks import grounding, rewards, schema
from verification.checks.base import CallView, ToolView
from verification.checks.compare import compare_observations, json_diff
from verification.checks.replay import environment_findings, environment_replay, mock_lookups, mock_replay
from verification.environments import environment_get

pytestmark = pytest.mark.smoke

BOOK = ToolView(
    name="book_flight",
    side_effects="write",
    latency_p99_ms=800,
    parameters={
        "type": "object",
        "properties": {
            "user_id": {"type": "string", "minLength": 1},
            "cabin": {"type": "string", "enum": ["economy", "business"]},
            "passengers": {"type": "integer", "minimum": 1, "maximum": 9},
            "date": {"type": "string", "format": "date"},
            "flight": {"type": "string", "pattern": "^HAT[0-9]{3}$"},
            "email": {"type": "string", "format": "email"},
        },
        "required": ["user_id", "cabin", "flight"],
        "additionalProperties": False,
    },
)
LOOKUP = ToolView(
    name="get_user",
    side_effects="read",
    parameters={"type": "object", "properties": {"user_id": {"type": "string"}}, "required": ["user_id"]},
)
GOOD = {"user_id": "mia_li_3668", "cabin": "economy", "flight": "HAT001", "passengers": 2, "date": "2024-05-20"}


def call(arguments: Any, *, tool: str = "book_flight", index: int = 0, **kw: Any) -> CallView:
    return CallView(index=index, kind="tool_call", tool_name=tool, arguments=arguments, **kw)


@pytest.fixture(scope="module")
def checker() -> schema.SchemaChecker:
    return schema.schema_checker("test-registry-hash", [BOOK, LOOKUP])


def codes(findings) -> list[tuple[str, str]]:
    return [(f.code, f.pointer) for f in findings]


def test_a_valid_call_has_no_finding(checker) -> None:
    assert checker.check(call(GOOD)) == []


@pytest.mark.parametrize(
    ("change", "expected", "rule"),
    [
        ({"passengers": "2"}, ("wrong_type", "/passengers"), "type: "),
        ({"cabin": "first"}, ("not_in_enum", "/cabin"), "enum: "),
        ({"date": "20/05/2024"}, ("bad_format", "/date"), "format: "),
        ({"flight": "HA001"}, ("bad_pattern", "/flight"), "pattern: "),
        ({"passengers": 12}, ("out_of_range", "/passengers"), "maximum: "),
        ({"user_id": ""}, ("out_of_range", "/user_id"), "minLength: "),
    ],
)
def test_each_schema_rule_is_reported_with_pointer_rule_and_value(checker, change, expected, rule) -> None:
    findings = checker.check(call({**GOOD, **change}))
    assert codes(findings) == [expected]
    (finding,) = findings
    assert finding.rule.startswith(rule)
    assert finding.value == next(iter(change.values()))
    assert finding.failure_mode == "schema_drift"
    assert finding.argument == expected[1].lstrip("/")


def test_missing_required_names_each_missing_parameter(checker) -> None:
    arguments = {k: v for k, v in GOOD.items() if k not in ("cabin", "flight")}
    assert sorted(codes(checker.check(call(arguments)))) == [
        ("missing_required", "/cabin"),
        ("missing_required", "/flight"),
    ]


def test_an_invented_key_suggests_a_hallucinated_argument(checker) -> None:
    (finding,) = checker.check(call({**GOOD, "confirm": True}))
    assert (finding.code, finding.pointer, finding.value) == ("unexpected_property", "/confirm", True)
    assert finding.failure_mode == "hallucinated_argument"


def test_an_unknown_tool_suggests_a_wrong_tool_with_the_closest_names(checker) -> None:
    (finding,) = checker.check(call(GOOD, tool="book_flights"))
    assert finding.code == "unknown_tool"
    assert finding.failure_mode == "wrong_tool"
    assert finding.evidence["closest"][0] == "book_flight"
    (other,) = checker.check(call(GOOD, tool="Get_User"))
    assert other.evidence["closest"] == ["get_user"]


def test_arguments_that_do_not_parse_or_are_not_an_object(checker) -> None:
    (bad,) = checker.check(call(None, arguments_raw='{"user_id": ', arguments_error="unexpected end of input"))
    assert bad.code == "unparseable_arguments"
    assert "unexpected end" in bad.message
    (listed,) = checker.check(call(["mia"]))
    assert listed.code == "arguments_not_object"


def test_respond_steps_are_not_schema_checked(checker) -> None:
    assert checker.check(CallView(index=0, kind="respond", arguments={"content": "hi"})) == []


def test_validators_are_compiled_once_per_registry_hash() -> None:
    first = schema.schema_checker("hash-x", [BOOK])
    assert schema.schema_checker("hash-x") is first
    assert schema.schema_checker("hash-y", [LOOKUP]) is not first


def test_draft_07_schemas_are_checked_with_their_own_dialect() -> None:
    old = ToolView(
        name="t",
        parameters={
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"n": {"type": "integer", "exclusiveMaximum": 5}},
        },
    )
    (finding,) = schema.schema_checker("draft7", [old]).check(call({"n": 5}, tool="t"))
    assert finding.code == "out_of_range"


# --- grounding ---------------------------------------------------------------------------------


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def test_values_the_agent_was_given_are_grounded() -> None:
    calls = [
        call({"user_id": "mia_li_3668"}, tool="get_user", state=_user("I am mia_li_3668"), observation='{"x": 1}'),
    ]
    assert grounding.grounding_check_run(goal="", calls=calls) == []


def test_an_identifier_seen_nowhere_is_ungrounded() -> None:
    calls = [call({"user_id": "mia_li_3669"}, tool="get_user", state=_user("I am mia_li_3668"))]
    (finding,) = grounding.grounding_check_run(goal="", calls=calls)
    assert (finding.code, finding.pointer, finding.value) == ("ungrounded_value", "/user_id", "mia_li_3669")
    assert finding.failure_mode == "hallucinated_argument"


def test_values_from_earlier_observations_and_derived_sums_are_grounded() -> None:
    seen = '{"flights": [{"flight_number": "HAT001", "price": 185}, {"flight_number": "HAT002", "price": 120}]}'
    calls = [
        call({"origin": "JFK"}, tool="search", state=_user("From New York please"), observation=seen, index=0),
        call({"flight": "HAT001", "amount": 370}, tool="pay", index=1),  # 2 × 185
        call({"flight": "hat-002", "amount": 305}, tool="pay", index=2),  # 185 + 120; case and separators
    ]
    assert grounding.grounding_check_run(goal="", calls=calls) == []


def test_the_agent_repeating_its_own_invention_does_not_ground_it() -> None:
    calls = [
        call({"order_id": "ORD9981"}, tool="get_order", index=0, state=_user("where is my order?")),
        call({"order_id": "ORD9981"}, tool="cancel_order", index=1),
    ]
    assert [f.step_index for f in grounding.grounding_check_run(goal="", calls=calls)] == [0, 1]


def test_enum_values_small_numbers_dates_and_free_text_are_not_checked() -> None:
    calls = [
        call(
            {
                "user_id": "mia_li_3668",
                "cabin": "economy",
                "passengers": 3,
                "date": "2024-05-21",
                "reason": "plans changed",
            },
            state=_user("mia_li_3668 here, three of us, the 21st"),
        )
    ]
    assert grounding.grounding_check_run(goal="", calls=calls, tools={"book_flight": BOOK}) == []


def test_a_value_that_contradicts_an_earlier_observation_shows_both_places() -> None:
    observed = '{"reservation_id": "ZFA04Y", "status": "confirmed", "total_price": 340}'
    calls = [
        call(
            {"reservation_id": "ZFA04Y"}, tool="get_reservation", state=_user("my booking ZFA04Y"), observation=observed
        ),
        call({"reservation_id": "ZFA04Y", "total_price": 430}, tool="refund", index=1),
    ]
    (finding,) = grounding.grounding_check_run(goal="", calls=calls)
    assert finding.code == "contradicts_observation"
    assert finding.step_index == 1 and finding.pointer == "/total_price"
    assert finding.evidence["observed_at"]["step"] == 0
    assert finding.evidence["observed_at"]["observed"] == 340
    assert finding.evidence["observed_at"]["pointer"] == "/total_price"


def test_names_must_come_from_somewhere() -> None:
    calls = [call({"first_name": "Yusuf", "last_name": "Rossi"}, tool="add_passenger", state=_user("Add Yusuf Rossi"))]
    assert grounding.grounding_check_run(goal="", calls=calls) == []
    invented = [call({"first_name": "Yusuf", "last_name": "Hernandez"}, tool="add_passenger", state=_user("Add Yusuf"))]
    assert [f.pointer for f in grounding.grounding_check_run(goal="", calls=invented)] == ["/last_name"]


# --- comparison and replay ------------------------------------------------------------------


def test_comparison_is_bytes_first_then_structure() -> None:
    assert compare_observations('{"a": 1}', '{"a": 1}').how == "bytes"
    assert compare_observations('{"a": 1, "b": [1, 2]}', '{"b":[1,2],"a":1.0}').how == "structure"
    differs = compare_observations('{"a": 1, "t": "x"}', '{"a": 2, "t": "y"}', volatile=["t"])
    assert not differs.same and [d["pointer"] for d in differs.diff] == ["/a"]
    assert compare_observations("ok  done", "ok done").how == "text"
    assert json_diff({"a": {"b": 1}}, {"a": {}}) == [
        {"pointer": "/a/b", "recorded": 1, "replayed": None, "only_in": "recorded"}
    ]


def _airline_run(env, seed: int) -> list[CallView]:
    """A real run: calls made on the environment, observations as it answered."""
    state = env.reset(seed)
    user_id = next(iter(state["users"]))
    reservation_id = state["users"][user_id]["reservations"][0]
    plan = [
        ("get_user_details", {"user_id": user_id}),
        ("get_reservation_details", {"reservation_id": reservation_id}),
    ]
    return [
        call(arguments, tool=name, index=i, observation=env.call(state, name, arguments))
        for i, (name, arguments) in enumerate(plan)
    ]


def test_environment_replay_matches_a_faithful_run_and_flags_a_tampered_observation() -> None:
    env = environment_get("airline")
    calls = _airline_run(env, 7)
    replayed = environment_replay(env, state=env.reset(7), calls=calls)
    assert environment_findings(calls, replayed).findings == []
    doctored = orjson.loads(calls[1].observation)
    doctored["cabin"] = "business" if doctored["cabin"] != "business" else "economy"
    calls[1].observation = orjson.dumps(doctored).decode()
    (finding,) = environment_findings(calls, environment_replay(env, state=env.reset(7), calls=calls)).findings
    assert finding.code == "replay_mismatch" and finding.step_index == 1
    assert [d["pointer"] for d in finding.evidence["diff"]] == ["/cabin"]


def test_mock_store_compares_with_other_runs_and_reports_conflicts() -> None:
    tools = {"get_user": LOOKUP, "book_flight": BOOK}
    mine = [
        call({"user_id": "u1"}, tool="get_user", index=0, observation='{"name": "Mia"}', step_id=10),
        call(GOOD, tool="book_flight", index=1, observation="{}", step_id=11),
        call({"user_id": "u2"}, tool="get_user", index=2, observation='{"name": "Bo"}', step_id=12),
    ]
    lookups = mock_lookups(mine, tools, seed=None)
    assert [c.index for c, _ in lookups] == [0]  # reads after the first write are state-dependent: not looked up
    key = lookups[0][1]
    same = mock_replay(lookups, {key: [('{"name":"Mia"}', 99)]}, own_steps={10, 11, 12})
    assert same.findings == [] and same.calls[0]["how"] == "structure"
    other = mock_replay(lookups, {key: [('{"name": "Ana"}', 99)]}, own_steps={10, 11, 12})
    assert [f.code for f in other.findings] == ["replay_mismatch"]
    conflict = mock_replay(lookups, {key: [('{"name": "Ana"}', 98), ('{"name": "Mia"}', 99)]}, own_steps={10})
    assert [f.code for f in conflict.findings] == ["mock_conflict"]
    own = mock_replay(lookups, {key: [('{"name": "Ana"}', 10)]}, own_steps={10})
    assert own.findings == []  # a run is never compared with itself


# --- final-state reward -----------------------------------------------------------------------


def test_tau_bench_output_matching_lowercases_and_drops_commas() -> None:
    assert rewards.outputs_said(["1,000", "Economy"], ["It costs 1000 in economy."]) == {
        "1,000": False,
        "Economy": True,
    }
    assert rewards.outputs_said(["1000"], ["It costs 1,000."]) == {"1000": True}


def test_final_state_reward_is_one_for_the_gold_actions_and_zero_with_a_diff_for_a_wrong_write() -> None:
    env = environment_get("airline")
    state = env.reset(7)
    user_id = next(u for u, v in state["users"].items() if v["reservations"])
    gold = [{"name": "send_certificate", "arguments": {"user_id": user_id, "amount": 100}}]
    fresh = lambda: env.reset(7)  # noqa: E731
    right = [call(gold[0]["arguments"], tool="send_certificate", index=0)]
    ok = rewards.final_state_reward(env, fresh_state=fresh, gold=gold, calls=right, expected_outputs=[], replies=[])
    assert ok["reward"] == 1.0 and ok["state_match"] and ok["state_diff"] == []
    wrong = [call({"user_id": user_id, "amount": 150}, tool="send_certificate", index=0)]
    bad = rewards.final_state_reward(env, fresh_state=fresh, gold=gold, calls=wrong, expected_outputs=[], replies=[])
    assert bad["reward"] == 0.0 and not bad["state_match"]
    gold_side = [d["gold"]["amount"] for d in bad["state_diff"] if d.get("only_in") == "gold"]
    agent_side = [d["agent"]["amount"] for d in bad["state_diff"] if d.get("only_in") == "agent"]
    assert (gold_side, agent_side) == ([100], [150])
    said = rewards.final_state_reward(
        env, fresh_state=fresh, gold=gold, calls=right, expected_outputs=["certificate"], replies=["Sent, no problem."]
    )
    assert said["reward"] == 0.0 and said["outputs"] == {"certificate": False}


def test_a_date_is_only_flagged_when_an_observation_gives_the_same_flight_another_date() -> None:
    observed = '{"reservation_id": "ZFA04Y", "flights": [{"flight_number": "HAT045", "date": "2024-05-28"}]}'
    base = call(
        {"reservation_id": "ZFA04Y"}, tool="get_reservation", state=_user("booking ZFA04Y"), observation=observed
    )
    right = call({"flight_number": "HAT045", "date": "2024-05-28"}, tool="get_flight_status", index=1)
    wrong = call({"flight_number": "HAT045", "date": "2024-05-29"}, tool="get_flight_status", index=1)
    other = call({"flight_number": "HAT046", "date": "2024-05-30"}, tool="get_flight_status", index=1)
    assert grounding.grounding_check_run(goal="", calls=[base, right]) == []
    (finding,) = grounding.grounding_check_run(goal="", calls=[base, wrong])
    assert (finding.code, finding.pointer) == ("contradicts_observation", "/date")
    assert finding.evidence["observed_at"]["pointer"] == "/flights/0/date"
    assert [f.pointer for f in grounding.grounding_check_run(goal="", calls=[base, other])] == ["/flight_number"]


def test_keys_a_tool_does_not_declare_are_invented_even_without_additional_properties() -> None:
    loose = ToolView(
        name="search",
        parameters={
            "type": "object",
            "properties": {"query": {"type": "string"}, "filters": {"type": "object", "properties": {"lang": {}}}},
        },
    )
    open_schema = ToolView(
        name="open", parameters={"type": "object", "properties": {"q": {}}, "additionalProperties": True}
    )
    checker = schema.schema_checker("loose-registry", [loose, open_schema])
    found = checker.check(call({"query": "x", "limit": 5, "filters": {"lang": "en", "region": "eu"}}, tool="search"))
    assert sorted((f.code, f.pointer) for f in found) == [
        ("unexpected_property", "/filters/region"),
        ("unexpected_property", "/limit"),
    ]
    assert all(f.failure_mode == "hallucinated_argument" for f in found)
    assert checker.check(call({"q": "x", "anything": 1}, tool="open")) == []


def test_a_number_the_agent_worked_out_in_the_open_is_grounded_but_an_id_it_stated_is_not() -> None:
    reply = CallView(index=0, kind="respond", arguments={"content": "So $1,625 - $1,327 = $298 goes on the card."})
    pay = call({"payment_id": "mc_991", "amount": 298}, tool="pay", index=1, state=_user("my card mc_991"))
    assert grounding.grounding_check_run(goal="", calls=[reply, pay]) == []
    stated = CallView(index=0, kind="respond", arguments={"content": "Your order is ORD5512."})
    use = call({"order_id": "ORD5512"}, tool="cancel", index=1)
    assert [f.pointer for f in grounding.grounding_check_run(goal="", calls=[stated, use])] == ["/order_id"]


def test_rules_without_a_class_of_their_own_are_schema_violations() -> None:
    tool = ToolView(
        name="transfer",
        parameters={
            "type": "object",
            "properties": {"source": {"type": "string"}, "target": {"type": "string", "not": {"const": "self"}}},
            "dependentRequired": {"source": ["target"]},
        },
    )
    checker = schema.schema_checker("violations", [tool])
    (negated,) = checker.check(call({"source": "a", "target": "self"}, tool="transfer"))
    assert (negated.code, negated.pointer, negated.rule.split(":")[0]) == ("schema_violation", "/target", "not")
    (dependent,) = checker.check(call({"source": "a"}, tool="transfer"))
    assert (dependent.code, dependent.rule.split(":")[0]) == ("schema_violation", "dependentRequired")
