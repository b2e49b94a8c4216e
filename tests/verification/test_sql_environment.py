"""The SQL sandbox environment and the SQL result-equality signal."""

from __future__ import annotations

import orjson
import pytest

from tests.trajectories.fixtures_util import run_import
from trajectories.models import Goal, Trajectory
from trajectories.services.registries import registry_create, registry_freeze
from verification.checks import rewards
from verification.checks.base import CallView
from verification.environments import environment_get, replay
from verification.models import CheckRun
from verification.services import replay_config_set, trajectory_verify

SEED = 3
GOLD = "SELECT name FROM customers WHERE city = 'Austin' ORDER BY name"


@pytest.fixture
def env():
    return environment_get("sql-shop")


def test_queries_read_the_seeded_shop(env) -> None:
    state = env.reset(SEED)
    answer = orjson.loads(env.call(state, "run_sql", {"query": "SELECT COUNT(*) AS n FROM orders"}))
    assert answer == {"columns": ["n"], "rows": [[len(state["tables"]["orders"])]]}
    assert env.reset(SEED) == env.reset(SEED) != env.reset(SEED + 1)


@pytest.mark.parametrize(
    "query",
    [
        "DELETE FROM orders",
        "DROP TABLE customers",
        "ATTACH DATABASE '/tmp/x.db' AS x",
        "PRAGMA writable_schema = 1",
        "SELECT load_extension('/tmp/evil')",
        "CREATE TABLE t (x)",
    ],
)
def test_the_read_tool_refuses_anything_but_reading(env, query) -> None:
    state = env.reset(SEED)
    before = env.state_hash(state)
    assert env.call(state, "run_sql", {"query": query}).startswith("Error: SQL error:")
    assert env.state_hash(state) == before


def test_a_runaway_query_is_stopped(env) -> None:
    state = env.reset(SEED)
    endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT COUNT(*) FROM n"
    assert env.call(state, "run_sql", {"query": endless}).startswith("Error: SQL error: interrupted")


def test_writes_change_the_state_and_replay_deterministically(env) -> None:
    calls = [{"name": "execute_sql", "arguments": {"statement": "UPDATE products SET price = price * 2 WHERE id = 1"}}]
    first, second = replay(env, seed=SEED, calls=calls), replay(env, seed=SEED, calls=calls)
    assert first.state_hash == second.state_hash != replay(env, seed=SEED, calls=[]).state_hash
    assert orjson.loads(first.observations[0]) == {"changed": 1}
    assert env.call(env.reset(SEED), "execute_sql", {"statement": "DROP TABLE orders"}).startswith("Error: SQL error")


def _run_sql(query: str, index: int = 0) -> CallView:
    return CallView(index=index, kind="tool_call", tool_name="run_sql", arguments={"query": query})


def test_result_rows_are_compared_as_a_multiset(env) -> None:
    gold = [{"name": "run_sql", "arguments": {"query": GOLD}}]
    same = "SELECT c.name FROM customers AS c WHERE c.city IN ('Austin') ORDER BY c.name DESC"
    common = {"env": env, "fresh_state": lambda: env.reset(SEED), "gold": gold, "expected_outputs": [], "replies": []}
    ok = rewards.final_state_reward(calls=[_run_sql(same)], sql_tools=["run_sql"], **common)
    assert ok["sql"]["match"] and ok["reward"] == 1.0
    wrong = rewards.final_state_reward(
        calls=[_run_sql(same), _run_sql("SELECT name FROM customers WHERE city = 'Boston'", 1)],
        sql_tools=["run_sql"],
        **common,
    )
    assert not wrong["sql"]["match"] and wrong["sql"]["step"] == 1 and wrong["reward"] == 0.0
    ignored = rewards.final_state_reward(calls=[_run_sql("SELECT 1")], sql_tools=[], **common)
    assert "sql" not in ignored and ignored["reward"] == 1.0  # not configured: the state alone decides


def _record(rollout: str, query: str, observation: str) -> bytes:
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "run_sql", "arguments": orjson.dumps({"query": query}).decode()},
    }
    return (
        orjson.dumps(
            {
                "messages": [
                    {"role": "user", "content": "Who are our customers in Austin?"},
                    {"role": "assistant", "content": "", "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": "c1", "content": observation},
                    {"role": "assistant", "content": "Here they are."},
                ],
                "metadata": {"model": "m", "goal_id": "austin-customers", "rollout_id": rollout},
            }
        )
        + b"\n"
    )


def test_the_sql_signal_end_to_end(project, pm, env) -> None:
    registry = registry_freeze(actor=pm, registry=registry_create(actor=pm, project=project, tools=env.tool_specs()))
    replay_config_set(actor=pm, registry=registry, environment="sql-shop", default_seed=SEED, sql_tools=["run_sql"])
    Goal.objects.create(
        project=project,
        external_id="austin-customers",
        prompt="Who are our customers in Austin?",
        expected_actions=[{"name": "run_sql", "arguments": {"query": GOLD}}],
        expected_outputs=[],
        prompt_sha256="x",
    )
    good, bad = GOLD.replace("ORDER BY name", ""), "SELECT name FROM customers WHERE city = 'Miami'"
    data = b"".join(
        _record(name, q, env.call(env.reset(SEED), "run_sql", {"query": q}))
        for name, q in (("good", good), ("bad", bad))
    )
    run_import(project, data)
    by_query = {t.rollout_id: t for t in Trajectory.objects.filter(project=project)}
    assert trajectory_verify(trajectory_id=by_query["good"].pk, kinds=["final_state", "replay"]) == {
        "final_state": "created",
        "replay": "created",
    }
    trajectory_verify(trajectory_id=by_query["bad"].pk, kinds=["final_state"])
    right, wrong = by_query["good"], by_query["bad"]
    right.refresh_from_db()
    wrong.refresh_from_db()
    assert (right.verified_reward, wrong.verified_reward) == (1.0, 0.0)
    check = CheckRun.objects.get(trajectory=wrong, kind="final_state")
    (finding,) = check.findings.all()
    assert finding.code == "sql_result_mismatch" and finding.step.index == 0
    assert CheckRun.objects.get(trajectory=right, kind="replay").findings.count() == 0
