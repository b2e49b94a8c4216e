"""Verifiable rewards, τ-bench style: final database state and expected outputs.

reward = 1 when the state reached by replaying the run's calls on a fresh `env.reset(seed)`
(`fresh_state()` gives one)
hashes the same as the state reached by replaying the goal's gold actions on another fresh
one, and every expected output appears in one of the agent's replies (τ-bench: lower-cased,
commas removed from the reply); else 0. Where the states differ, the diff says how.
Optionally (the project lists SQL tools): the rows of the run's last call to such a tool must
equal, as a multiset, the rows the gold actions' last call to it returned.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from verification.checks.base import CallView, canonical
from verification.checks.compare import json_diff
from verification.environments import Environment

VERSION = "final-state-1"


def outputs_said(expected: Iterable[str], replies: Iterable[str]) -> dict[str, bool]:
    said = [reply.lower().replace(",", "") for reply in replies]
    return {output: any(str(output).lower() in reply for reply in said) for output in expected}


def _rows(observation: str) -> Counter[bytes] | None:
    try:
        value = orjson.loads(observation)
    except orjson.JSONDecodeError:
        return None
    rows = value.get("rows") if isinstance(value, dict) else value
    if not isinstance(rows, list):
        return None
    return Counter(canonical(row) for row in rows)


def final_state_reward(
    env: Environment,
    *,
    fresh_state: Callable[[], dict[str, Any]],
    gold: list[dict[str, Any]],
    calls: list[CallView],
    expected_outputs: list[str],
    replies: list[str],
    sql_tools: Iterable[str] = (),
) -> dict[str, Any]:
    """Plain data: reward, state hashes, the state diff, outputs found, and the SQL comparison."""
    gold_state = fresh_state()
    gold_observations = [
        (action["name"], env.call(gold_state, action["name"], action.get("arguments", {}))) for action in gold
    ]
    agent_state = fresh_state()
    agent_observations = []
    for call in calls:
        if call.kind == "tool_call":
            arguments = call.arguments if call.arguments is not None else call.arguments_raw
            agent_observations.append((call.tool_name, env.call(agent_state, call.tool_name, arguments), call.index))
    gold_hash, agent_hash = env.state_hash(gold_state), env.state_hash(agent_state)
    outputs = outputs_said(expected_outputs, replies)
    result: dict[str, Any] = {
        "gold_state_hash": gold_hash,
        "agent_state_hash": agent_hash,
        "state_match": gold_hash == agent_hash,
        "state_diff": [] if gold_hash == agent_hash else json_diff(gold_state, agent_state, limit=50),
        "outputs": outputs,
    }
    reward = 1.0 if result["state_match"] and all(outputs.values()) else 0.0
    sql = [name for name in sql_tools if any(n == name for n, _ in gold_observations)]
    if sql:
        gold_rows = next((_rows(obs) for n, obs in reversed(gold_observations) if n in sql), None)
        agent_last = next(((obs, step) for n, obs, step in reversed(agent_observations) if n in sql), None)
        agent_rows = _rows(agent_last[0]) if agent_last else None
        match = gold_rows is not None and agent_rows is not None and gold_rows == agent_rows
        result["sql"] = {
            "tools": sql,
            "match": match,
            "step": agent_last[1] if agent_last else None,
            "gold_rows": sum(gold_rows.values()) if gold_rows is not None else None,
            "agent_rows": sum(agent_rows.values()) if agent_rows is not None else None,
        }
        if not match:
            reward = 0.0
    result["reward"] = reward
    # the state diff is in gold → agent terms
    for item in result["state_diff"]:
        item["gold"] = item.pop("recorded")
        item["agent"] = item.pop("replayed")
        if "only_in" in item:
            item["only_in"] = "gold" if item["only_in"] == "recorded" else "agent"
    return result
