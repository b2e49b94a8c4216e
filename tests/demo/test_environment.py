"""The airline environment and the generated rollouts (no database)."""

from __future__ import annotations

import collections
import json

import pytest
from jsonschema import Draft202012Validator

from demo import rollouts
from verification.environments import ENVIRONMENTS, AirlineEnvironment, is_error, register_environment, replay

ENV = ENVIRONMENTS["airline"]
SEED = 7


@pytest.fixture
def state():
    return ENV.reset(SEED)


def _writable(state, cabin=None):
    """A future, active, non-basic reservation whose flights are on sale."""
    for r in state["reservations"].values():
        days = [state["flights"][s["flight_number"]]["dates"][s["date"]] for s in r["flights"]]
        on_sale = all(d["status"] == "available" for d in days) and all(s["date"] > "2024-05-16" for s in r["flights"])
        seats = cabin is None or all(d["available_seats"][cabin] >= len(r["passengers"]) for d in days)
        if r["cabin"] != "basic_economy" and r["insurance"] == "no" and on_sale and seats:
            return r
    raise AssertionError("no suitable reservation")


def _card(state, user_id):
    return next(m for m in state["users"][user_id]["payment_methods"] if m.startswith("credit_card_"))


def test_reset_is_deterministic_and_fresh():
    a, b = ENV.reset(SEED), AirlineEnvironment().reset(SEED)
    assert ENV.state_hash(a) == ENV.state_hash(b)
    assert ENV.state_hash(ENV.reset(SEED + 1)) != ENV.state_hash(a)
    a["users"].clear()
    assert ENV.reset(SEED)["users"], "reset must hand out a fresh copy"
    json.dumps(b)  # JSON-serialisable


def test_ids_look_real(state):
    rid = next(iter(state["reservations"]))
    uid = next(iter(state["users"]))
    assert len(rid) == 6 and rid.isalnum() and rid == rid.upper()
    assert uid.rsplit("_", 1)[1].isdigit()
    assert all(number.startswith("HAT") and len(number) == 6 for number in state["flights"])


def test_specs_are_valid_function_tools():
    specs = ENV.tool_specs()
    assert len(specs) >= 7
    for spec in specs:
        assert spec["type"] == "function"
        assert spec["side_effects"] in {"none", "read", "write", "destructive"}
        assert isinstance(spec["latency_p99_ms"], int)
        parameters = spec["function"]["parameters"]
        Draft202012Validator.check_schema(parameters)
        assert parameters["additionalProperties"] is False
    kinds = {spec["side_effects"] for spec in specs}
    assert {"read", "write", "destructive", "none"} <= kinds


def test_reads_do_not_change_state(state):
    before = ENV.state_hash(state)
    rid = next(iter(state["reservations"]))
    r = state["reservations"][rid]
    assert json.loads(ENV.call(state, "get_reservation_details", {"reservation_id": rid}))["reservation_id"] == rid
    assert json.loads(ENV.call(state, "get_user_details", {"user_id": r["user_id"]}))["user_id"] == r["user_id"]
    seg = r["flights"][0]
    found = json.loads(
        ENV.call(
            state,
            "search_direct_flight",
            {"origin": seg["origin"], "destination": seg["destination"], "date": "2024-05-25"},
        )
    )
    assert all(f["origin"] == seg["origin"] for f in found)
    assert json.loads(
        ENV.call(state, "get_flight_status", {"flight_number": seg["flight_number"], "date": seg["date"]})
    )["status"]
    assert ENV.call(state, "calculate", {"expression": "2 * (162 + 364)"}) == "1052.0"
    assert json.loads(ENV.call(state, "transfer_to_human_agents", {"summary": "help"}))["status"] == "transferred"
    assert ENV.state_hash(state) == before


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("get_reservation_details", {"reservation_id": "ZZZZZZ"}, "reservation ZZZZZZ not found"),
        ("get_user_details", {"user_id": "nobody_0000"}, "user nobody_0000 not found"),
        ("get_user_details", {"customer_id": "x"}, "invalid arguments"),
        ("cancel_reservation", {"reservation_id": "ZZZZZZ", "confirm": True}, "Additional properties"),
        ("calculate", {"expression": "__import__('os')"}, "only numbers"),
        ("no_such_tool", {}, "unknown tool"),
        ("get_flight_status", {"flight_number": "HAT999", "date": "2024-05-20"}, "flight HAT999 not found"),
    ],
)
def test_errors_are_observations(state, tool, arguments, message):
    before = ENV.state_hash(state)
    observation = ENV.call(state, tool, arguments)
    assert observation.startswith("Error: ") and message in observation
    assert ENV.state_hash(state) == before


def test_bad_enum_and_wrong_type_are_rejected(state):
    r = _writable(state)
    card = _card(state, r["user_id"])
    flights = [{"flight_number": s["flight_number"], "date": s["date"]} for s in r["flights"]]
    bad_enum = ENV.call(
        state,
        "update_reservation_flights",
        {"reservation_id": r["reservation_id"], "cabin": "busines", "flights": flights, "payment_id": card},
    )
    assert bad_enum.startswith("Error: ") and "'busines' is not one of" in bad_enum
    wrong_type = ENV.call(
        state,
        "update_reservation_baggages",
        {"reservation_id": r["reservation_id"], "total_baggages": "3", "nonfree_baggages": 1, "payment_id": card},
    )
    assert "is not of type 'integer'" in wrong_type


def test_writes_change_state(state):
    r = _writable(state, "business")
    rid, uid = r["reservation_id"], r["user_id"]
    card = _card(state, uid)
    flights = [{"flight_number": s["flight_number"], "date": s["date"]} for s in r["flights"]]
    upgraded = json.loads(
        ENV.call(
            state,
            "update_reservation_flights",
            {"reservation_id": rid, "cabin": "business", "flights": flights, "payment_id": card},
        )
    )
    assert upgraded["cabin"] == "business" and state["reservations"][rid]["cabin"] == "business"
    bags = json.loads(
        ENV.call(
            state,
            "update_reservation_baggages",
            {
                "reservation_id": rid,
                "total_baggages": r["total_baggages"] + 2,
                "nonfree_baggages": r["nonfree_baggages"] + 2,
                "payment_id": card,
            },
        )
    )
    assert bags["payment_history"][-1] == {"payment_id": card, "amount": 100}
    cert = json.loads(ENV.call(state, "send_certificate", {"user_id": uid, "amount": 150}))
    assert state["users"][uid]["payment_methods"][cert["certificate_id"]]["amount"] == 150
    cancelled = json.loads(ENV.call(state, "cancel_reservation", {"reservation_id": rid}))
    assert cancelled["status"] == "cancelled"
    assert ENV.call(state, "cancel_reservation", {"reservation_id": rid}) == f"Error: reservation {rid} is cancelled"


def test_booking_checks_payment_and_creates_reservation(state):
    uid = next(iter(state["users"]))
    user = state["users"][uid]
    number, flight = next((n, f) for n, f in state["flights"].items())
    date = "2024-05-25"
    price = flight["dates"][date]["prices"]["economy"]
    args = {
        "user_id": uid,
        "origin": flight["origin"],
        "destination": flight["destination"],
        "flight_type": "one_way",
        "cabin": "economy",
        "flights": [{"flight_number": number, "date": date}],
        "passengers": [
            {"first_name": user["name"]["first_name"], "last_name": user["name"]["last_name"], "dob": user["dob"]}
        ],
        "payment_methods": [{"payment_id": _card(state, uid), "amount": price - 1}],
        "total_baggages": 0,
        "nonfree_baggages": 0,
        "insurance": "no",
    }
    assert "does not add up" in ENV.call(state, "book_reservation", args)
    args["payment_methods"][0]["amount"] = price
    booked = json.loads(ENV.call(state, "book_reservation", args))
    assert booked["reservation_id"] in state["reservations"]
    assert booked["reservation_id"] in user["reservations"]


def test_basic_economy_policy(state):
    r = next(r for r in state["reservations"].values() if r["cabin"] == "basic_economy" and r["insurance"] == "no")
    flights = [{"flight_number": s["flight_number"], "date": "2024-05-30"} for s in r["flights"]]
    card = _card(state, r["user_id"])
    change = ENV.call(
        state,
        "update_reservation_flights",
        {"reservation_id": r["reservation_id"], "cabin": "basic_economy", "flights": flights, "payment_id": card},
    )
    assert change == "Error: basic economy flights cannot be modified"
    assert "within 24 hours" in ENV.call(state, "cancel_reservation", {"reservation_id": r["reservation_id"]})


def test_register_environment():
    class Other(AirlineEnvironment):
        name = "airline-copy"

    env = register_environment(Other())
    try:
        assert ENVIRONMENTS["airline-copy"] is env
    finally:
        del ENVIRONMENTS["airline-copy"]


# --- goals and rollouts ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def goals():
    return rollouts.goals(SEED)


@pytest.fixture(scope="module")
def runs():
    return list(rollouts.tool_use_runs(SEED))


def test_goals_cover_three_bands(goals):
    assert len(goals) >= 30
    bands = collections.Counter(g["band"] for g in goals)
    assert set(bands) == {"atomic", "composite", "ambiguous"} and min(bands.values()) >= 5
    assert len({g["goal_id"] for g in goals}) == len(goals)
    for g in goals:
        assert g["prompt"] and g["tags"] and g["expected_actions"]
        assert all(set(a) == {"name", "arguments"} for a in g["expected_actions"])
    assert rollouts.goals(SEED) == goals


def test_gold_actions_replay_to_reward_one_and_a_wrong_write_to_zero(goals):
    write_goals = [g for g in goals if any(a["name"] in rollouts.WRITE_TOOLS for a in g["expected_actions"])]
    assert write_goals
    for g in goals:
        gold = replay(ENV, seed=SEED, calls=g["expected_actions"])
        assert not any(is_error(o) for o in gold.observations), g["goal_id"]
    g = write_goals[0]
    record = {"messages": [{"role": "assistant", "content": " ".join(g["expected_outputs"])}]}
    calls = g["expected_actions"]
    record["messages"].insert(
        0,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{i}",
                    "type": "function",
                    "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
                }
                for i, c in enumerate(calls)
            ],
        },
    )
    assert rollouts.reward_of(record, expected_actions=calls, expected_outputs=g["expected_outputs"], seed=SEED) == 1.0
    wrong = [c for c in calls if c["name"] not in rollouts.WRITE_TOOLS]
    record["messages"][0]["tool_calls"] = record["messages"][0]["tool_calls"][: len(wrong)]
    assert rollouts.reward_of(record, expected_actions=calls, expected_outputs=g["expected_outputs"], seed=SEED) == 0.0


def test_runs_models_trials_and_behaviours(goals, runs):
    models = {r["metadata"]["model"] for r in runs}
    assert len(models) == 3
    per_goal_model = collections.Counter((r["metadata"]["goal_id"], r["metadata"]["model"]) for r in runs)
    assert set(per_goal_model.values()) <= {2, 3, 4} and len(per_goal_model) == 3 * len(goals)
    behaviours = collections.Counter(r["metadata"]["demo_behaviour"] for r in runs)
    assert set(behaviours) == set(rollouts.BEHAVIOURS)
    rewards = {(r["metadata"]["demo_behaviour"], r["metadata"]["reward"]) for r in runs}
    assert ("success", 1.0) in rewards and ("recover", 1.0) in rewards
    assert {b for b, reward in rewards if reward == 0.0} == {"wrong_argument", "wrong_tool", "give_up"}
    assert len({r["metadata"]["rollout_id"] for r in runs}) == len(runs)


def test_runs_are_openai_chat_with_real_observations(goals, runs):
    by_id = {g["goal_id"]: g for g in goals}
    parallel = plans = 0
    for run in runs[::7]:
        messages = run["messages"]
        assert messages[0]["role"] == "system" and messages[1]["role"] == "user"
        calls = {}
        for m in messages:
            if m["role"] == "assistant" and m.get("tool_calls"):
                parallel += len(m["tool_calls"]) > 1
                plans += bool(m.get("content"))
                for c in m["tool_calls"]:
                    assert c["id"].startswith("call_")
                    calls[c["id"]] = c
            if m["role"] == "tool":
                assert m["tool_call_id"] in calls
        g = by_id[run["metadata"]["goal_id"]]
        recomputed = rollouts.reward_of(
            run, expected_actions=g["expected_actions"], expected_outputs=g["expected_outputs"], seed=SEED
        )
        assert recomputed == run["metadata"]["reward"]
    assert parallel and plans


def test_runs_are_deterministic(runs):
    again = list(rollouts.tool_use_runs(SEED))
    assert again == runs


def test_coding_task_and_runs():
    task = rollouts.coding_task()
    assert task["instance_id"] == "demo__paginate-1" and len(task["base_commit"]) == 40
    assert task["patch"].startswith("diff --git a/pagekit/paginate.py")
    assert task["FAIL_TO_PASS"] and task["PASS_TO_PASS"]
    runs = list(rollouts.coding_runs())
    assert len(runs) >= 6
    rewards = {r["metadata"]["reward"] for r in runs}
    assert rewards == {0.0, 1.0}
    names = {spec["function"]["name"] for spec in rollouts.coding_tool_specs()}
    assert {"open", "edit", "search_file", "bash", "submit"} <= names
    for run in runs:
        assert run["metadata"]["scaffold"] == "swe-agent" and run["metadata"]["instance_id"] == task["instance_id"]
        called = [
            c["function"]["name"]
            for m in run["messages"]
            if m["role"] == "assistant"
            for c in m.get("tool_calls") or []
        ]
        assert set(called) <= names and called[-1] == "submit"
        if run["metadata"]["reward"] == 1.0:
            assert run["metadata"]["model_patch"] == task["patch"]
    outputs = "\n".join(m["content"] for r in runs for m in r["messages"] if m["role"] == "tool")
    assert "FAILED tests/test_paginate.py::test_exact_multiple_has_no_empty_page" in outputs
    assert "4 passed" in outputs
