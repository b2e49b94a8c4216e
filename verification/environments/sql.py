"""A SQL sandbox: a small shop database as JSON state, queried through SQLite in memory.

Two tools: `run_sql` (read-only: one SELECT or WITH statement; answers {"columns", "rows"}) and
`execute_sql` (one INSERT, UPDATE or DELETE; changes the state; answers {"changed": n}).
Every call loads the state into a fresh in-memory SQLite database, so calls are independent and
replayable; the state stays plain JSON, hashable like any other environment's. The agent's SQL is
untrusted: SQLite's authorizer refuses anything but reading (and, for execute_sql, writing rows
of the shop's own tables) — no ATTACH, no PRAGMA, no schema changes, no functions that load code.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Mapping
from typing import Any

from verification.environments.base import Environment, Handler, ToolError, tool_spec

TABLES: dict[str, list[tuple[str, str]]] = {
    "customers": [("id", "INTEGER"), ("name", "TEXT"), ("city", "TEXT")],
    "products": [("id", "INTEGER"), ("name", "TEXT"), ("price", "REAL")],
    "orders": [("id", "INTEGER"), ("customer_id", "INTEGER"), ("product_id", "INTEGER"), ("quantity", "INTEGER")],
}
MAX_ROWS = 1000
MAX_STEPS = 20_000_000
_READ = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
_WRITE = {sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE}
_BLOCKED_FUNCTIONS = {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"}


def _seed_state(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    cities = ["Austin", "Boston", "Denver", "Miami", "Seattle"]
    names = ["Ana", "Bo", "Chidi", "Dana", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun"]
    customers = [[i + 1, name, rng.choice(cities)] for i, name in enumerate(names)]
    products = [[i + 1, f"item-{i + 1:02d}", round(rng.uniform(2, 80), 2)] for i in range(12)]
    orders = [
        [i + 1, rng.randint(1, len(customers)), rng.randint(1, len(products)), rng.randint(1, 5)] for i in range(40)
    ]
    return {"tables": {"customers": customers, "products": products, "orders": orders}}


class SqlEnvironment(Environment):
    name = "sql-shop"

    def tool_specs(self) -> list[dict[str, Any]]:
        query = {"type": "string", "minLength": 1, "description": "One SQL statement."}
        return [
            tool_spec(
                name="run_sql",
                description="Run one read-only SQL query (SELECT or WITH) on the shop database.",
                properties={"query": query},
                required=["query"],
                side_effects="read",
                latency_p99_ms=500,
            ),
            tool_spec(
                name="execute_sql",
                description="Run one INSERT, UPDATE or DELETE on the shop database.",
                properties={"statement": query},
                required=["statement"],
                side_effects="write",
                latency_p99_ms=500,
            ),
        ]

    def reset(self, seed: int) -> dict[str, Any]:
        return _seed_state(seed)

    def handlers(self) -> Mapping[str, Handler]:
        return {"run_sql": self._run_sql, "execute_sql": self._execute_sql}

    def _connect(self, state: dict[str, Any], *, write: bool) -> sqlite3.Connection:
        db = sqlite3.connect(":memory:")
        for table, columns in TABLES.items():
            db.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in columns)})")
            marks = ", ".join("?" * len(columns))
            db.executemany(f"INSERT INTO {table} VALUES ({marks})", state["tables"][table])  # noqa: S608

        def authorize(action: int, arg1: str | None, arg2: str | None, *_: Any) -> int:
            if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _BLOCKED_FUNCTIONS:
                return sqlite3.SQLITE_DENY
            if action in _READ or (write and action in _WRITE and arg1 in TABLES):
                return sqlite3.SQLITE_OK
            return sqlite3.SQLITE_DENY

        db.set_authorizer(authorize)
        db.set_progress_handler(self._budget(), 1000)
        return db

    @staticmethod
    def _budget() -> Any:
        """Stop a statement after about MAX_STEPS virtual-machine steps (a runaway recursive query)."""
        ticks = [0]

        def tick() -> int:
            ticks[0] += 1
            return 1 if ticks[0] > MAX_STEPS // 1000 else 0

        return tick

    def _run_sql(self, state: dict[str, Any], query: str) -> dict[str, Any]:
        db = self._connect(state, write=False)
        try:
            cursor = db.execute(query)
            rows = cursor.fetchmany(MAX_ROWS + 1)
        except (sqlite3.Error, sqlite3.Warning) as exc:
            raise ToolError(f"SQL error: {exc}") from None
        finally:
            db.close()
        if len(rows) > MAX_ROWS:
            raise ToolError(f"the query returns more than {MAX_ROWS} rows")
        columns = [d[0] for d in cursor.description or []]
        return {"columns": columns, "rows": [list(r) for r in rows]}

    def _execute_sql(self, state: dict[str, Any], statement: str) -> dict[str, Any]:
        db = self._connect(state, write=True)
        try:
            changed = db.execute(statement).rowcount
            for table, columns in TABLES.items():
                order = ", ".join(c for c, _ in columns)
                state["tables"][table] = [list(r) for r in db.execute(f"SELECT {order} FROM {table} ORDER BY rowid")]  # noqa: S608
        except (sqlite3.Error, sqlite3.Warning) as exc:
            raise ToolError(f"SQL error: {exc}") from None
        finally:
            db.close()
        return {"changed": changed}
