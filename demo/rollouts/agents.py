"""The scripted agents: each airline goal played by each model, bent to a behaviour (success,
a wrong argument, a wrong tool, giving up, recovering from an error), and the τ-bench-style reward."""

from __future__ import annotations

import json
import random
import string
from collections.abc import Iterator
from typing import Any

from demo.rollouts.airline_goals import _build_goals
from demo.rollouts.common import new_call_id
from demo.rollouts.setting import (
    BEHAVIOURS,
    ENV,
    MODELS,
    SCAFFOLD,
    SYSTEM_PROMPT,
    WRITE_TOOLS,
    Calls,
    Goal,
    ModelProfile,
    Say,
    Script,
    User,
    _call,
    _final,
)
from verification.environments import is_error, replay

# --- public API -----------------------------------------------------------------------------------


def tool_specs() -> list[dict[str, Any]]:
    """The airline desk's tools: OpenAI function specs plus side effects and latency p99."""
    return ENV.tool_specs()


def tool_use_runs(seed: int = 7) -> Iterator[dict[str, Any]]:
    """Every goal × model × trial (2–4 trials per goal), as OpenAI chat records."""
    for index, goal in enumerate(_build_goals(seed)):
        gold_hash = replay(ENV, seed=seed, calls=goal.gold).state_hash
        for model in MODELS:
            for trial in range(1, 2 + index % 3 + 1):
                yield _rollout(goal, model, trial, seed, gold_hash)


def agent_calls(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's tool calls in order, as {name, arguments}."""
    return [
        {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
        for m in record["messages"]
        if m["role"] == "assistant"
        for c in m.get("tool_calls") or []
    ]


def reward_of(
    record: dict[str, Any], *, expected_actions: list[dict[str, Any]], expected_outputs: list[str], seed: int
) -> float:
    """τ-bench-style: final states equal (both replayed from scratch) and the expected outputs said."""
    gold_hash = replay(ENV, seed=seed, calls=expected_actions).state_hash
    return _reward(record, expected_outputs, seed, gold_hash)


def _reward(record: dict[str, Any], expected_outputs: list[str], seed: int, gold_hash: str) -> float:
    if replay(ENV, seed=seed, calls=agent_calls(record)).state_hash != gold_hash:
        return 0.0
    return 1.0 if _said(record["messages"], expected_outputs) else 0.0


def _said(messages: list[dict[str, Any]], outputs: list[str]) -> bool:
    replies = " ".join(
        (m.get("content") or "") for m in messages if m["role"] == "assistant" and not m.get("tool_calls")
    ).lower()
    return all(output.lower() in replies for output in outputs)


# --- scripted agents ------------------------------------------------------------------------------

_CONFIRMATIONS = ["Yes, please go ahead.", "yes", "Yes, do it.", "Confirmed, go ahead.", "Yes please!"]
_GIVE_UP = [
    "I'm sorry, but I'm not able to complete this request with the tools I have. Please contact our reservations team.",
    "Unfortunately I can't help with that change here. Is there anything else I can do for you?",
]
_RETRY = [
    "That call failed ({reason}). I'll correct the arguments and call {name} again.",
    "The tool rejected my call: {reason}. Fixing it and retrying.",
    "I made a mistake there ({reason}); retrying {name} with the right arguments.",
]
_APOLOGY = [
    "I'm sorry — the system returned an error and I couldn't complete this. Please try again later.",
    "Something went wrong on my side and the request did not go through. Could you try again in a few minutes?",
]


class _Rollout:
    """One run in progress: the transcript, the environment state, the run's own random source."""

    def __init__(self, goal: Goal, model: ModelProfile, trial: int, seed: int) -> None:
        self.goal, self.model = goal, model
        self.rng = random.Random(f"{seed}:{goal.goal_id}:{model.name}:{trial}")
        self.state = ENV.reset(seed)
        self.messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": goal.prompt},
        ]
        self.chars = len(SYSTEM_PROMPT) + len(goal.prompt)

    def _usage(self, text: str) -> dict[str, int]:
        self.chars += len(text)
        return {"prompt_tokens": self.chars // 4, "completion_tokens": max(1, len(text) // 4)}

    def calls(self, calls: list[dict[str, Any]], plan: str, *, show_plan: bool | None = None) -> list[str]:
        show = self.rng.random() < self.model.plan_rate if show_plan is None else show_plan
        tool_calls: list[dict[str, Any]] = [
            {
                "id": new_call_id(self.rng),
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
            }
            for c in calls
        ]
        message: dict[str, Any] = {"role": "assistant", "content": plan if show else None, "tool_calls": tool_calls}
        if self.model.reasoning and not show:
            message["reasoning_content"] = plan
        message["usage"] = self._usage(plan + "".join(c["function"]["arguments"] for c in tool_calls))
        self.messages.append(message)
        observations = []
        for call, tool_call in zip(calls, tool_calls, strict=True):
            observation = ENV.call(self.state, call["name"], call["arguments"])
            self.chars += len(observation)
            self.messages.append(
                {"role": "tool", "tool_call_id": tool_call["id"], "name": call["name"], "content": observation}
            )
            observations.append(observation)
        return observations

    def say(self, text: str) -> None:
        self.messages.append({"role": "assistant", "content": text, "usage": self._usage(text)})

    def user(self, turn: User) -> None:
        text = self.rng.choice(_CONFIRMATIONS) if turn.confirm else turn.text
        self.messages.append({"role": "user", "content": text})
        self.chars += len(text)


def _behaviour(model: ModelProfile, band: str, rng: random.Random) -> str:
    weights = list(model.weights)
    if band == "ambiguous":
        weights[0] *= 0.7
    return rng.choices(BEHAVIOURS, weights=weights)[0]


def _first_write(script: Script) -> tuple[int, int] | None:
    for i, item in enumerate(script):
        if isinstance(item, Calls):
            for j, call in enumerate(item.calls):
                if call["name"] in WRITE_TOOLS:
                    return i, j
    return None


def _first_call(script: Script) -> tuple[int, int]:
    return next((i, 0) for i, item in enumerate(script) if isinstance(item, Calls))


def _give_up_at(script: Script) -> int:
    """Where a quitting agent stops: before asking to confirm a write, else before its last call."""
    confirm = next((i for i, item in enumerate(script) if isinstance(item, Say) and item.confirm), None)
    if confirm is not None:
        return confirm
    return max(i for i, item in enumerate(script) if isinstance(item, Calls))


_ID_KEYS = ("reservation_id", "user_id", "payment_id")
_RENAMES = {"reservation_id": "reservation_number", "user_id": "customer_id", "payment_id": "payment_method"}


def _typo(value: str, rng: random.Random) -> str:
    """Two neighbours swapped, or one character mistyped."""
    chars = list(value)
    i = rng.randrange(len(chars) - 1)
    if chars[i] != chars[i + 1] and rng.random() < 0.5:
        chars[i], chars[i + 1] = chars[i + 1], chars[i]
    else:
        pool = (
            string.digits
            if chars[i].isdigit()
            else string.ascii_uppercase
            if chars[i].isupper()
            else string.ascii_lowercase
        )
        chars[i] = rng.choice(pool.replace(chars[i], ""))
    return "".join(chars)


def _corrupt(call: dict[str, Any], state: dict[str, Any], rng: random.Random) -> tuple[dict[str, Any], str]:
    """A wrong version of `call` that the environment rejects, and what kind of mistake it is."""
    args = dict(call["arguments"])
    kinds = ["invented_key"]
    if any(k in args for k in _ID_KEYS):
        kinds += ["typo_id", "typo_id"]
    if "cabin" in args:
        kinds += ["bad_enum", "bad_enum"]
    if any(isinstance(v, int) and not isinstance(v, bool) for v in args.values()):
        kinds += ["wrong_type", "wrong_type"]
    kind = rng.choice(kinds)
    if kind == "typo_id":
        key = next(k for k in _ID_KEYS if k in args)
        known = state["reservations"] if key == "reservation_id" else state["users"] if key == "user_id" else {}
        wrong = _typo(args[key], rng)
        while wrong in known or wrong == args[key]:
            wrong = _typo(wrong, rng)
        args[key] = wrong
    elif kind == "bad_enum":
        args["cabin"] = rng.choice(["busines", "Business", "first", "premium_economy"])
    elif kind == "wrong_type":
        key = next(k for k, v in args.items() if isinstance(v, int) and not isinstance(v, bool))
        args[key] = str(args[key])
    else:
        id_key = next((k for k in _ID_KEYS if k in args), None)
        if id_key is not None and rng.random() < 0.5:
            args[_RENAMES[id_key]] = args.pop(id_key)
        else:
            args["confirm"] = True
    return {"name": call["name"], "arguments": args}, kind


def _wrong_tool(call: dict[str, Any]) -> dict[str, Any]:
    """A plausible but wrong tool for what `call` meant to do."""
    a = call["arguments"]
    swaps: dict[str, Any] = {
        "get_reservation_details": lambda: _call("get_user_details", user_id=a["reservation_id"]),
        "get_user_details": lambda: _call("get_reservation_details", reservation_id=a["user_id"]),
        "search_direct_flight": lambda: _call("get_flight_status", **a),
        "get_flight_status": lambda: _call("search_direct_flight", **a),
        "update_reservation_flights": lambda: _call("cancel_reservation", reservation_id=a["reservation_id"]),
        "update_reservation_baggages": lambda: _call("add_checked_bags", reservation_id=a["reservation_id"], bags=1),
        "cancel_reservation": lambda: _call("get_reservation_details", reservation_id=a["reservation_id"]),
        "send_certificate": lambda: _call("get_user_details", user_id=a["user_id"]),
        "book_reservation": lambda: _call(
            "search_direct_flight", origin=a["origin"], destination=a["destination"], date=a["flights"][0]["date"]
        ),
    }
    return swaps.get(call["name"], lambda: _call("transfer_to_human_agents", summary="The user needs help."))()


def _play(run: _Rollout, behaviour: str) -> dict[str, Any]:
    """Play the goal's script, bending it to `behaviour`; returns what was injected, if anything."""
    script = run.goal.script
    write = _first_write(script)
    target = write or _first_call(script)
    if behaviour == "recover":
        spots = [
            (i, j)
            for i, item in enumerate(script)
            if isinstance(item, Calls)
            for j, c in enumerate(item.calls)
            if c["name"] != "calculate"
        ]
        target = run.rng.choice(spots)
    stop = _give_up_at(script) if behaviour == "give_up" else None
    for i, item in enumerate(script):
        if i == stop:
            return _give_up(run)
        if isinstance(item, User):
            run.user(item)
        elif isinstance(item, Say):
            run.say(item.text)
        elif i != target[0] or behaviour in ("success", "give_up"):
            run.calls(item.calls, item.plan)
        elif behaviour == "recover":
            return _recover(run, item, target[1], i)
        else:
            return _fail(run, item, target[1], behaviour, is_write=write is not None)
    return {}


def _give_up(run: _Rollout) -> dict[str, Any]:
    if run.rng.random() < 0.5:
        summary = f"User asks: {run.goal.prompt[:160]} I could not complete it."
        run.calls([_call("transfer_to_human_agents", summary=summary)], "This is beyond what I can do; hand over.")
        run.say("I've transferred you to a human agent, who will pick this up shortly.")
    else:
        run.say(run.rng.choice(_GIVE_UP))
    return {"kind": "premature_termination"}


def _fail(run: _Rollout, item: Calls, j: int, behaviour: str, *, is_write: bool) -> dict[str, Any]:
    """A mistake the agent does not notice: it apologises vaguely or claims success anyway."""
    calls = list(item.calls)
    if behaviour == "wrong_tool":
        calls[j], kind = _wrong_tool(calls[j]), "wrong_tool"
    else:
        calls[j], kind = _corrupt(calls[j], run.state, run.rng)
    observation = run.calls(calls, item.plan)[j]
    if is_write and (not is_error(observation) or run.rng.random() < 0.5):
        run.say(_final(run.goal.script))  # hallucinated success
    else:
        run.say(run.rng.choice(_APOLOGY))
    return {"kind": kind, "call": calls[j]["name"]}


def _recover(run: _Rollout, item: Calls, j: int, i: int) -> dict[str, Any]:
    """Make a mistake, read the error, retry correctly, then finish the script."""
    calls = list(item.calls)
    intended = calls[j]
    if intended["name"] in ("get_reservation_details", "get_user_details") and run.rng.random() < 0.3:
        calls[j], kind = _wrong_tool(intended), "wrong_tool"
    else:
        calls[j], kind = _corrupt(intended, run.state, run.rng)
    observation = run.calls(calls, item.plan)[j]
    reason = observation.removeprefix("Error: ")
    run.calls([intended], run.rng.choice(_RETRY).format(reason=reason, name=intended["name"]), show_plan=True)
    for later in run.goal.script[i + 1 :]:
        if isinstance(later, User):
            run.user(later)
        elif isinstance(later, Say):
            run.say(later.text)
        else:
            run.calls(later.calls, later.plan)
    return {"kind": kind, "call": intended["name"], "recovered": True}


def _rollout(goal: Goal, model: ModelProfile, trial: int, seed: int, gold_hash: str) -> dict[str, Any]:
    run = _Rollout(goal, model, trial, seed)
    behaviour = _behaviour(model, goal.band, run.rng)
    injected = _play(run, behaviour)
    tools = [{"type": "function", "function": spec["function"]} for spec in ENV.tool_specs()]
    record: dict[str, Any] = {"messages": run.messages, "tools": tools}
    metadata: dict[str, Any] = {
        "model": model.name,
        "scaffold": SCAFFOLD,
        "rollout_id": f"{goal.goal_id}/{model.name}/{trial}",
        "trial": trial,
        "reward": _reward(record, goal.expected_outputs, seed, gold_hash),
        "goal_id": goal.goal_id,
        "band": goal.band,
        "tags": goal.tags,
        "environment": ENV.name,
        "env_seed": seed,
        "demo_behaviour": behaviour,
    }
    if injected:
        metadata["demo_injected"] = injected
    record["metadata"] = metadata
    return record
