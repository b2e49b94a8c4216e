"""OpenAI chat SFT lines built by PostgreSQL: the same bytes as `OpenAISftExporter.rows` written as canonical
JSON (sorted keys, no spaces), with far less work per step — PostgreSQL escapes each piece (`to_json`) and
joins a trajectory's messages in step order, Python only writes the finished line.

Two queries per chunk of trajectories. The first puts each step's messages side by side: a reply, or a call
with its result right after it (the result of the trajectory's last step cut, as a row ends on an assistant
message). It is exact for every trajectory whose model turns have one call each. A trajectory where a turn
makes several calls (their results must follow all of its calls) is flagged and read again by the second
query, which groups the steps into turns first.

A call's `arguments` is the arguments' jsonb text (corrected where `apply_corrections` says so): what
`json.dumps` writes for the value `rows` reads from the database, keys in the same order. `drop_wrong` is not
done here (the exporter uses `rows`).
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import psycopg
from django.db import connection
from psycopg import sql

# the steps' facts every piece is built from; <<fix>> is the corrected-arguments join or nothing
_ARGS = "CASE WHEN s.arguments IS NOT NULL AND jsonb_typeof(s.arguments) = 'object' THEN s.arguments<<fix>> END"
_CALL_ID = "CASE WHEN s.tool_call_id <> '' THEN s.tool_call_id ELSE 'call_' || s.index END"
_MESSAGE = """concat('{"content":', to_json(<<m>>->>'content'), ',"role":"', <<m>>->>'role', '"},')"""
_KEPT = "<<m>>->>'role' IN ('system', 'user', 'assistant') AND jsonb_typeof(<<m>>->'content') = 'string'"
# a state of one message (the usual one) is read in place, a longer one element by element
_STATE = """CASE WHEN jsonb_typeof(s.state) <> 'array' OR s.state = '[]' THEN NULL
  WHEN jsonb_array_length(s.state) = 1 THEN CASE WHEN <<kept_first>> THEN <<first>> END
  ELSE (SELECT string_agg(<<message>>, '' ORDER BY o) FROM jsonb_array_elements(s.state) WITH ORDINALITY AS e(m, o)
    WHERE <<kept>>) END"""
_REPLY = """concat('{"content":', CASE WHEN jsonb_typeof(s.arguments->'content') = 'string'
    THEN to_json(s.arguments->>'content') ELSE to_json(s.plan) END, ',"role":"assistant"}')"""
_HEAD = """concat('{"content":', CASE WHEN s.plan <> '' THEN to_json(s.plan)::text ELSE 'null' END,
    ',"role":"assistant","tool_calls":[')"""
_FUNCTION = """concat('{"function":{"arguments":',
    to_json(CASE WHEN jsonb_typeof(s.arguments) = 'object' THEN (<<args>>)::text ELSE COALESCE(NULLIF(s.arguments_raw, ''), '{}') END),
    ',"name":', to_json(s.tool_name), '},"id":', to_json(<<call_id>>), ',"type":"function"}')"""
_RESULT = """concat(',{"content":', to_json(COALESCE(s.observation, '')), ',"role":"tool","tool_call_id":',
    to_json(<<call_id>>), '}')"""
_CONTINUES = """s.kind = 'tool_call' AND lag(s.kind) OVER w = 'tool_call' AND s.turn_id <> ''
    AND lag(s.turn_id) OVER w = s.turn_id AND (s.state IS NULL OR s.state = '[]')"""
_FIRST_USER = """lag(s.index) OVER w IS NULL AND jsonb_typeof(s.state) = 'array' AND s.state @> '[{"role": "user"}]'"""
_FIX = """LEFT JOIN LATERAL (
    SELECT jsonb_object_agg(substr(c.field, 11), c.value) AS fix FROM audit_consensus c
    WHERE c.step_id = s.id AND c.field LIKE 'corrected:%%' AND s.arguments ? substr(c.field, 11)
  ) f ON jsonb_typeof(s.arguments) = 'object'"""
_STEPS = "trajectories_step s <<join>> WHERE s.trajectory_id = ANY(%(ids)s) WINDOW w AS (PARTITION BY s.trajectory_id ORDER BY s.index)"
# a row: the trajectory's manifest facts, whether a turn has several calls, the line
_ROW = """SELECT t.id, t.rollout_id, t.content_sha256, t.payload_sha256, t.source_format, t.importer_version, a.several,
  convert_to(concat('{"messages":[', CASE WHEN NOT a.first_user AND COALESCE(t.goal_text, '') <> ''
    THEN concat('{"content":', to_json(t.goal_text), ',"role":"user"},') END,
    a.body, '],"tools":', %(tools)s::text, '}', chr(10)), 'UTF8')
FROM (SELECT x.t, <<several>> AS several, bool_or(x.first_user) AS first_user,
  string_agg(<<piece>>, ',' ORDER BY <<order>>) AS body FROM (<<inner>>) x GROUP BY x.t) a
JOIN trajectories_trajectory t ON t.id = a.t ORDER BY t.id"""

_PLAIN_STEPS = """SELECT s.trajectory_id AS t, s.index, <<continues>> AS cont, <<first_user>> AS first_user,
  concat(<<state>>, CASE WHEN s.kind <> 'tool_call' THEN <<reply>> ELSE concat(<<head>>, <<function>>, ']}',
    CASE WHEN lead(s.index) OVER w IS NOT NULL THEN <<result>> END) END) AS piece
FROM <<steps>>"""

_TURN_STEPS = """SELECT t, index, first_user, state, head, function, result, call,
  sum(CASE WHEN cont THEN 0 ELSE 1 END) OVER (PARTITION BY t ORDER BY index) AS turn
FROM (SELECT s.trajectory_id AS t, s.index, <<continues>> AS cont, <<first_user>> AS first_user, <<state>> AS state,
  s.kind = 'tool_call' AS call, CASE WHEN s.kind = 'tool_call' THEN <<head>> ELSE <<reply>> END AS head,
  CASE WHEN s.kind = 'tool_call' THEN <<function>> END AS function,
  CASE WHEN s.kind = 'tool_call' THEN <<result>> END AS result
  FROM <<steps>>) numbered"""
_TURNS = """SELECT t, turn, bool_or(first_user) AS first_user, max(turn) OVER (PARTITION BY t) AS last,
  concat((array_agg(state ORDER BY index))[1], (array_agg(head ORDER BY index))[1],
    CASE WHEN bool_or(call) THEN concat(string_agg(function, ',' ORDER BY index), ']}') END) AS text,
  string_agg(result, '' ORDER BY index) AS results
FROM (<<steps>>) turns GROUP BY t, turn"""


def _fill(template: str, **parts: str) -> str:
    for name, value in parts.items():
        template = template.replace(f"<<{name}>>", value)
    return template


def _queries(*, corrections: bool) -> tuple[str, str]:
    args = _fill(_ARGS, fix=" || COALESCE(f.fix, '{}')" if corrections else "")
    parts = {
        "continues": _CONTINUES,
        "first_user": _FIRST_USER,
        "state": _fill(
            _STATE,
            kept_first=_fill(_KEPT, m="(s.state->0)"),
            first=_fill(_MESSAGE, m="(s.state->0)"),
            kept=_fill(_KEPT, m="m"),
            message=_fill(_MESSAGE, m="m"),
        ),
        "reply": _REPLY,
        "head": _HEAD,
        "function": _fill(_FUNCTION, args=args, call_id=_CALL_ID),
        "result": _fill(_RESULT, call_id=_CALL_ID),
        "steps": _fill(_STEPS, join=_FIX if corrections else ""),
    }
    plain = _fill(_ROW, several="bool_or(x.cont)", piece="x.piece", order="x.index", inner=_fill(_PLAIN_STEPS, **parts))
    turns = _fill(
        _ROW,
        several="true",
        piece="concat(x.text, CASE WHEN x.turn < x.last THEN x.results END)",
        order="x.turn",
        inner=_fill(_TURNS, steps=_fill(_TURN_STEPS, **parts)),
    )
    return plain, turns


QUERIES = {corrections: _queries(corrections=corrections) for corrections in (False, True)}

Line = tuple[tuple[str, str, str, str, str], bytes]  # (the manifest's facts of the trajectory, the line)


def sft_lines(cursor: psycopg.Cursor[Any], ids: list[int], *, tools: str, corrections: bool) -> list[Line]:
    """The lines of a chunk of trajectories, in id order, on a psycopg cursor (binary results)."""
    plain, turns = QUERIES[corrections]
    params = {"ids": ids, "tools": tools}
    rows = cursor.execute(plain, params, binary=True).fetchall()
    several = [row[0] for row in rows if row[6]]
    if several:
        again = {row[0]: row for row in cursor.execute(turns, {**params, "ids": several}, binary=True).fetchall()}
        rows = [again[row[0]] if row[6] else row for row in rows]
    return [
        ((rollout or str(pk), content, payload, importer, version), line)
        for pk, rollout, content, payload, importer, version, _, line in rows
    ]


def read_in_parallel(
    chunks: Iterable[list[int]], read: Callable[[psycopg.Cursor[Any], list[int]], list[Line]], *, connections: int = 2
) -> Iterator[tuple[int, list[Line]]]:
    """(trajectories in the chunk, its lines) for each chunk in order, `connections` chunks read at a time on as
    many connections sharing one snapshot (PostgreSQL builds the lines; two of its processes do it at once).
    Inside a transaction (the data may be this connection's alone) the chunks are read on this connection."""
    connection.ensure_connection()
    if connection.in_atomic_block or connections < 2:
        with psycopg.Cursor(connection.connection) as cursor:
            for ids in chunks:
                yield len(ids), read(cursor, ids)
        return
    params = {k: v for k, v in connection.get_connection_params().items() if k != "cursor_factory"}
    opened: list[psycopg.Connection[Any]] = []
    try:
        for _ in range(connections):
            conn = psycopg.connect(**params)
            conn.isolation_level, conn.read_only = psycopg.IsolationLevel.REPEATABLE_READ, True
            # prepared at once (Django's settings prepare nothing): planned afresh for each chunk, with its ids
            # as constants, the queries took PostgreSQL longer to plan and run than their prepared plan does
            conn.prepare_threshold = 0
            opened.append(conn)
        row = opened[0].execute("SELECT pg_export_snapshot()").fetchone()
        for conn in opened[1:]:
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(row[0] if row else "")))
        free: queue.SimpleQueue[psycopg.Connection[Any]] = queue.SimpleQueue()
        for conn in opened:
            free.put(conn)

        def job(ids: list[int]) -> list[Line]:
            conn = free.get()
            try:
                with psycopg.Cursor(conn) as cursor:
                    return read(cursor, ids)
            finally:
                free.put(conn)

        with ThreadPoolExecutor(max_workers=connections, thread_name_prefix="export-read") as pool:
            pending: deque[tuple[int, Future[list[Line]]]] = deque()
            for ids in chunks:
                pending.append((len(ids), pool.submit(job, ids)))
                if len(pending) > connections:  # at most one chunk waits read while the others are being read
                    n, future = pending.popleft()
                    yield n, future.result()
            while pending:
                n, future = pending.popleft()
                yield n, future.result()
    finally:
        for conn in opened:
            conn.close()
