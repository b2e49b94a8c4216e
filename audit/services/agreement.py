"""Agreement figures of a project, recomputed from the labels in the database (never cached sums).

The target figure (`Rules.definition`): each label is compared with its target — the gold value
where the step is gold, else the leave-one-out consensus of the other annotators (their common
value when at least two of them agree and no other value ties) — and the pairs are pooled into
one contingency table per scope, whose Cohen's κ is the figure. Tool-use projects pool argument
validity (valid / invalid; unsure is missing) and environment feedback (success / partial /
failure) as one nominal variable with the categories of both fields kept apart; coding projects
pool the five reasoning axes with quadratic weights over the fixed labels 1–5. Rubric axes,
failure-mode tags (one binary κ each, and set-level α with MASI) and multi-rater coefficients
(Krippendorff's α, Fleiss' κ, Gwet's AC1, raw agreement) are reported beside it.

Scopes: the project; each capability slice (tool, difficulty band, failure mode, model, step
kind); each annotator against the target and against gold; each annotator pair on co-rated
items; and each annotator within each slice (for calibration). Everything pools within the
scope; κs are never averaged. Labels are read in one pass with PostgreSQL's binary COPY into
numpy arrays; SQLite reads them through the cursor.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property, partial
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from django.db import connection, transaction
from django.utils import timezone

from annotation.models import CalibrationRequirement, GoldItem
from audit.agreement import (
    bootstrap_ci,
    cohen_kappa_stack,
    coincidence_matrix,
    domain_bootstrap_ci,
    fleiss_kappa,
    gwet_ac1,
    krippendorff_alpha,
    masi_distance,
)
from audit.models import AgreementRun, AgreementSnapshot, CalibrationFlag
from audit.rules import CODING_TARGET_AXES, Rules, rules_for
from core.models import Project, ProjectKind
from core.services import audit_record
from trajectories.models import Step

ENV_CODES = {"success": 0, "partial": 1, "failure": 2}
ARG_CODES = {"valid": 0, "invalid": 1}
NONE_TAG = "none"
SEED = 20261201


# --- reading the labels ------------------------------------------------------------------------------


@dataclass
class LabelArrays:
    """One row per submitted step label (gold assignments included, flagged)."""

    trajectory: npt.NDArray[np.int64]
    step: npt.NDArray[np.int64]
    annotator: npt.NDArray[np.int64]
    gold: npt.NDArray[np.bool_]
    submitted: npt.NDArray[np.int64]
    env: npt.NDArray[np.int64]  # −1 missing
    reward: npt.NDArray[np.int64]  # 0..2 for −1..+1, −1 missing
    rubric: npt.NDArray[np.int64]  # (n, axes), 0 missing, else 1..5
    tags: npt.NDArray[np.int64]  # bit i = taxonomy tag i; the last bit = "none"
    arg_step: npt.NDArray[np.int64]  # argument verdict rows
    arg_annotator: npt.NDArray[np.int64]
    arg_gold: npt.NDArray[np.bool_]
    arg_key: npt.NDArray[np.int64]
    arg_code: npt.NDArray[np.int64]
    axes: list[str]
    tag_keys: list[str]

    @property
    def rows(self) -> int:
        return int(self.step.size)

    @cached_property
    def step_units(self) -> tuple[npt.NDArray[np.int64], int]:
        """The dense index of each row's step (the rows are in step order), shared by every per-step field."""
        return dense(self.step)

    def restrict(self, trajectory_ids: npt.NDArray[np.int64]) -> LabelArrays:
        """Only the labels of these trajectories (a batch)."""
        keep = np.isin(self.trajectory, trajectory_ids)
        steps = np.unique(self.step[keep])
        arg_keep = np.isin(self.arg_step, steps)
        per_label = ("trajectory", "step", "annotator", "gold", "submitted", "env", "reward", "rubric", "tags")
        per_arg = ("arg_step", "arg_annotator", "arg_gold", "arg_key", "arg_code")
        return replace(
            self,
            **{name: getattr(self, name)[keep] for name in per_label},
            **{name: getattr(self, name)[arg_keep] for name in per_arg},
        )


def _pg_packed_ints(sql: str, params: Iterable[Any], widths: list[int]) -> npt.NDArray[Any]:
    """Rows of NOT NULL integer columns packed by PostgreSQL into one bytea (int4send / int8send, big-endian),
    read as one value and parsed by numpy — no per-row work in Python (binary COPY hands over one chunk
    per row, which costs microseconds each)."""
    names = [f"c{i}" for i in range(len(widths))]
    packed = " || ".join(f"int{w}send({n})" for n, w in zip(names, widths, strict=True))
    query = f"SELECT string_agg({packed}, ''::bytea) FROM ({sql}) s({', '.join(names)})"  # noqa: S608 (no user text)
    with connection.cursor() as cursor:
        cursor.execute("SET jit = off")  # compiling these two scans costs more than it saves
        try:
            # psycopg's own server-side-binding cursor: a binary result, so the bytea arrives as bytes, not hex
            with psycopg.Cursor(cursor.cursor.connection) as raw:
                raw.execute(query, list(params), binary=True)
                (data,) = raw.fetchone() or (b"",)
        finally:
            cursor.execute("RESET jit")
    dtype = np.dtype([(n, f">i{w}") for n, w in zip(names, widths, strict=True)])
    return np.frombuffer(bytes(data or b""), dtype=dtype)


def _pg_packed_parallel(jobs: list[tuple[str, list[Any], list[int]]]) -> list[list[npt.NDArray[np.int64]]]:
    """Each query on a connection of its own, at the same time, when no transaction of the caller's must be
    seen (a worker or a command); inside one, on the caller's connection, one after the other."""

    def columns(rows: npt.NDArray[Any], n: int) -> list[npt.NDArray[np.int64]]:
        return [rows[f"c{i}"].astype(np.int64) for i in range(n)]

    if connection.in_atomic_block or len(jobs) < 2:
        return [columns(_pg_packed_ints(sql, params, widths), len(widths)) for sql, params, widths in jobs]

    def run(job: tuple[str, list[Any], list[int]]) -> list[npt.NDArray[np.int64]]:
        try:
            return columns(_pg_packed_ints(*job), len(job[2]))
        finally:
            connection.close()  # this thread's own connection

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(run, jobs))


def _fetch(sql_pg: str, sql_lite: str, params: list[Any], widths: list[int]) -> list[npt.NDArray[np.int64]]:
    if connection.vendor == "postgresql":
        return _pg_packed_parallel([(sql_pg, params, widths)])[0]
    with connection.cursor() as cursor:
        cursor.execute(sql_lite, params)
        fetched = cursor.fetchall()
    if not fetched:
        return [np.zeros(0, dtype=np.int64) for _ in widths]
    table = np.array(fetched, dtype=np.int64)
    return [table[:, i] for i in range(len(widths))]


def _arg_hash(name: str) -> int:
    return zlib.crc32(name.encode()) - 2**31


def _pg_labels(
    project: Project, value_columns: list[str], value_params: list[Any], value_widths: list[int]
) -> tuple[list[npt.NDArray[np.int64]], list[npt.NDArray[np.int64]]]:
    """PostgreSQL: the labels' values and argument verdicts keyed by assignment (no join per label row), and
    the assignments' facts once each — three queries, on connections of their own at the same time."""
    mine = (
        " WHERE l.assignment_id IN (SELECT a.id FROM annotation_assignment a JOIN trajectories_trajectory t"
        " ON t.id = a.trajectory_id WHERE t.project_id = %s AND a.status = 'submitted')"
    )
    # The columns are this module's own expressions; every value from a project is a parameter.
    head = "SELECT l.assignment_id::int8, l.step_id::int8, "
    values = f"{head}{', '.join(value_columns)} FROM annotation_steplabel l{mine}"
    arguments = (
        f"{head}hashtext(e.key), (CASE e.value WHEN 'valid' THEN 0 WHEN 'invalid' THEN 1 ELSE -1 END)::int"
        f" FROM annotation_steplabel l CROSS JOIN LATERAL jsonb_each_text(l.argument_verdicts) e{mine}"
    )
    facts = (
        "SELECT a.id::int8, a.trajectory_id::int8, a.annotator_id::int8, a.is_gold::int,"
        " COALESCE((EXTRACT(EPOCH FROM a.submitted_at) * 1000000)::int8, 0)"
        " FROM annotation_assignment a JOIN trajectories_trajectory t ON t.id = a.trajectory_id"
        " WHERE t.project_id = %s AND a.status = 'submitted'"
    )
    label_cols, arg_cols, fact_cols = _pg_packed_parallel(
        [
            (values, [*value_params, project.pk], [8, 8, *value_widths]),
            (arguments, [project.pk], [8, 8, 4, 4]),
            (facts, [project.pk], [8, 8, 8, 4, 8]),
        ]
    )
    order = np.argsort(fact_cols[0])
    ids, trajectory, annotator, gold, submitted = (c[order] for c in fact_cols)

    def of(assignment: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return np.clip(np.searchsorted(ids, assignment), 0, max(ids.size - 1, 0))

    at = of(label_cols[0])
    labels = [trajectory[at], label_cols[1], annotator[at], gold[at], submitted[at], *label_cols[2:]]
    at = of(arg_cols[0])
    args = [arg_cols[1], annotator[at], gold[at], arg_cols[2], arg_cols[3]]
    return labels, args


def load_labels(project: Project) -> LabelArrays:
    axes = [str(a.get("key")) for a in project.rubric_axes if isinstance(a, dict)]
    tag_keys = [str(t.get("key")) for t in project.failure_taxonomy if isinstance(t, dict)] + [NONE_TAG]
    pg = connection.vendor == "postgresql"
    env = "CASE l.env_feedback WHEN 'success' THEN 0 WHEN 'partial' THEN 1 WHEN 'failure' THEN 2 ELSE -1 END"
    if pg:
        rubric = ["COALESCE((l.rubric->>%s)::int, 0)" for _ in axes]
        tags = " + ".join(f"((l.failure_modes ? %s)::int::int8 << {i})" for i in range(len(tag_keys))) or "0"
        submitted = "COALESCE((EXTRACT(EPOCH FROM a.submitted_at) * 1000000)::int8, 0)"
        gold = "a.is_gold::int"
    else:
        rubric = ["COALESCE(CAST(json_extract(l.rubric, '$.' || json_quote(%s)) AS INTEGER), 0)" for _ in axes]
        tags = (
            " + ".join(
                f"((EXISTS (SELECT 1 FROM json_each(l.failure_modes) f WHERE f.value = %s)) << {i})"  # noqa: S608 (i is an int)
                for i in range(len(tag_keys))
            )
            or "0"
        )
        submitted = "COALESCE(CAST((julianday(a.submitted_at) - 2440587.5) * 86400000000 AS INTEGER), 0)"
        gold = "a.is_gold"
    columns = [
        "a.trajectory_id::int8" if pg else "a.trajectory_id",
        "l.step_id::int8" if pg else "l.step_id",
        "a.annotator_id::int8" if pg else "a.annotator_id",
        gold,
        submitted,
        f"({env})::int" if pg else env,
        "COALESCE(l.process_reward + 1, -1)::int" if pg else "COALESCE(l.process_reward + 1, -1)",
        *rubric,
        f"({tags})::int8" if pg else tags,
    ]
    where = (
        " FROM annotation_steplabel l JOIN annotation_assignment a ON a.id = l.assignment_id"
        " JOIN trajectories_trajectory t ON t.id = a.trajectory_id"
        " WHERE t.project_id = %s AND a.status = 'submitted'"
    )
    select = "SELECT " + ", ".join(columns) + where
    params: list[Any] = [*axes, *tag_keys, project.pk]
    widths = [8, 8, 8, 4, 8, 4, 4, *([4] * len(axes)), 8]
    if not pg:
        params = [*axes, *tag_keys, project.pk]
    if pg:
        cols, arg_cols = _pg_labels(project, columns[5:], params[:-1], widths[5:])
    else:
        cols = _fetch(select, select, params, widths)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT l.step_id, a.annotator_id, a.is_gold, e.key,"
                " CASE e.value WHEN 'valid' THEN 0 WHEN 'invalid' THEN 1 ELSE -1 END"
                " FROM annotation_steplabel l JOIN annotation_assignment a ON a.id = l.assignment_id"
                " JOIN trajectories_trajectory t ON t.id = a.trajectory_id, json_each(l.argument_verdicts) e"
                " WHERE t.project_id = %s AND a.status = 'submitted'",
                [project.pk],
            )
            fetched = cursor.fetchall()
        arg_cols = [
            np.array([row[i] if i != 3 else _arg_hash(row[3]) for row in fetched], dtype=np.int64) for i in range(5)
        ]
    order = np.argsort(cols[1], kind="stable")  # by step, whatever order the rows came in: units contiguous
    cols = [c[order] for c in cols]
    order = np.argsort(arg_cols[0] * 2**32 + (arg_cols[3] & 0xFFFFFFFF), kind="stable")  # by step and argument
    arg_cols = [c[order] for c in arg_cols]
    n_axes = len(axes)
    return LabelArrays(
        trajectory=cols[0],
        step=cols[1],
        annotator=cols[2],
        gold=cols[3].astype(bool),
        submitted=cols[4],
        env=cols[5],
        reward=cols[6],
        rubric=np.stack(cols[7 : 7 + n_axes], axis=1) if n_axes else np.zeros((cols[0].size, 0), dtype=np.int64),
        tags=cols[7 + n_axes],
        arg_step=arg_cols[0],
        arg_annotator=arg_cols[1],
        arg_gold=arg_cols[2].astype(bool),
        arg_key=arg_cols[3],
        arg_code=arg_cols[4],
        axes=axes,
        tag_keys=tag_keys,
    )


# --- pairing each label with its target ------------------------------------------------------------------


@dataclass
class Votes:
    """One row per label of one (pooled) variable: its unit, annotator, code and target."""

    unit: npt.NDArray[np.int64]
    step: npt.NDArray[np.int64]
    trajectory: npt.NDArray[np.int64]
    annotator: npt.NDArray[np.int64]
    gold: npt.NDArray[np.bool_]
    submitted: npt.NDArray[np.int64]
    code: npt.NDArray[np.int64]  # −1 missing
    target: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    target_is_gold: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    q: int = 0
    n_units: int = 0


def dense(keys: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], int]:
    """0, 1, 2 … for the distinct keys, and how many: O(n) when the keys are sorted (labels are read in
    step order), a sort otherwise."""
    if keys.size == 0:
        return np.zeros(0, dtype=np.int64), 0
    if bool(np.all(keys[1:] >= keys[:-1])):
        index = np.concatenate(([0], np.cumsum(keys[1:] != keys[:-1])))
        return index.astype(np.int64), int(index[-1]) + 1
    uniq, index = np.unique(keys, return_inverse=True)
    return index.reshape(-1).astype(np.int64), int(uniq.size)


def counts_per(index: npt.NDArray[np.int64], n: int, code: npt.NDArray[np.int64], q: int) -> npt.NDArray[np.int64]:
    """(n, q) counts of `code` per `index` — np.bincount, many times faster than np.add.at."""
    return np.bincount(index * q + code, minlength=n * q).reshape(n, q)


def with_targets(v: Votes, q: int, gold_code: npt.NDArray[np.int64]) -> Votes:
    """Leave-one-out consensus of the other (non-gold) annotators, or the gold code of the unit."""
    if v.n_units:  # already dense and in order (the per-step fields)
        contiguous, unit, n_units = True, v.unit, v.n_units
    else:
        contiguous = bool(np.all(v.unit[1:] >= v.unit[:-1]))
        unit, n_units = dense(v.unit)
    live = (~v.gold) & (v.code >= 0)
    sizes = np.bincount(unit, minlength=n_units)
    if contiguous and unit.size and int(sizes.max()) <= 3:
        target = _three_rater_targets(unit, sizes, live, v.code)
    else:
        counts = counts_per(unit[live], n_units, v.code[live], q)
        others = counts[unit]
        own = live.nonzero()[0]
        others[own, v.code[own]] -= 1
        top = others.max(axis=1) if q else np.zeros(unit.size, dtype=np.int64)
        ties = (others == top[:, None]).sum(axis=1)
        target = np.where((top >= 2) & (ties == 1), others.argmax(axis=1), -1)
    target = np.where(v.gold, -1, target)  # a gold assignment is judged against gold only
    is_gold = gold_code >= 0
    target = np.where(is_gold, gold_code, target)
    v.target, v.target_is_gold, v.q = target.astype(np.int64), is_gold, q
    v.unit = unit  # dense from here on (sorted when the keys were)
    v.n_units = n_units
    return v


def _three_rater_targets(
    unit: npt.NDArray[np.int64], sizes: npt.NDArray[np.int64], live: npt.NDArray[np.bool_], code: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """The same rule when no unit has more than three labels and each unit's rows are contiguous (the usual
    case): the other two labels' common value — two gathers per row instead of a row of counts."""
    start = np.concatenate(([0], np.cumsum(sizes)[:-1]))[unit]
    offset = np.arange(unit.size) - start
    full = sizes[unit] == 3
    first = np.where(full, start + np.where(offset == 0, 1, 0), 0)
    second = np.where(full, start + np.where(offset == 2, 1, 2), 0)
    a = np.where(live[first], code[first], -1)
    b = np.where(live[second], code[second], -2)
    return np.where(full & (a >= 0) & (a == b), a, -1)


def tables(
    keys: npt.NDArray[np.int64], n_keys: int, a: npt.NDArray[np.int64], b: npt.NDArray[np.int64], q: int
) -> np.ndarray:
    flat = np.bincount((keys * q + a) * q + b, minlength=n_keys * q * q)
    return flat.reshape(n_keys, q, q).astype(np.float64)


@dataclass
class Figure:
    value: float | None
    reason: str
    n_items: int
    raw: float | None
    ac1: float | None = None
    ci: tuple[float | None, float | None] = (None, None)


def kappa_figures(stack: np.ndarray, weights: str | None, min_items: int) -> list[Figure]:
    """κ of every table of a stack with raw agreement and the "not enough data" guard."""
    flat = stack.reshape(-1, stack.shape[-2], stack.shape[-1])
    ks = cohen_kappa_stack(flat, weights)
    n = flat.sum(axis=(1, 2))
    diag = np.trace(flat, axis1=1, axis2=2)
    out = []
    for i in range(flat.shape[0]):
        items = int(n[i])
        raw = float(diag[i] / items) if items else None
        if items == 0:
            out.append(Figure(None, "no pairable values", 0, None))
        elif np.isnan(ks.kappa[i]):
            out.append(Figure(None, "no variance", items, raw))
        elif items < min_items:
            out.append(Figure(None, "not enough data", items, raw))
        else:
            out.append(Figure(float(ks.kappa[i]), "", items, raw))
    return out


def pair_tables(v: Votes) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Co-rated (non-gold) labels of every annotator pair, as one table per pair."""
    live = (~v.gold) & (v.code >= 0)
    unit, annotator, code = v.unit[live], v.annotator[live], v.code[live]
    if not bool(np.all(unit[1:] >= unit[:-1])):
        order = np.argsort(unit, kind="stable")
        unit, annotator, code = unit[order], annotator[order], code[order]
    lo_a: list[np.ndarray] = []
    hi_a: list[np.ndarray] = []
    lo_c: list[np.ndarray] = []
    hi_c: list[np.ndarray] = []
    for d in range(1, 9):
        if unit.size <= d:
            break
        same = unit[d:] == unit[:-d]
        if not same.any():
            break
        lo_a.append(annotator[:-d][same])
        hi_a.append(annotator[d:][same])
        lo_c.append(code[:-d][same])
        hi_c.append(code[d:][same])
    if not lo_a:
        return [], np.zeros((0, v.q, v.q))
    a1, a2, c1, c2 = (np.concatenate(x) for x in (lo_a, hi_a, lo_c, hi_c))
    swap = a1 > a2  # each pair once, the lower id first
    a1, a2 = np.where(swap, a2, a1), np.where(swap, a1, a2)
    c1, c2 = np.where(swap, c2, c1), np.where(swap, c1, c2)
    ids = np.flatnonzero(np.bincount(np.concatenate([a1, a2])))
    lut = np.zeros(int(ids.max()) + 1, dtype=np.int64)
    lut[ids] = np.arange(ids.size)
    pair = lut[a1] * ids.size + lut[a2]
    stack = tables(pair, ids.size * ids.size, c1, c2, v.q)
    used = np.flatnonzero(stack.sum(axis=(1, 2)))
    keys = [(int(ids[k // ids.size]), int(ids[k % ids.size])) for k in used]
    return keys, stack[used]


# --- the computation -----------------------------------------------------------------------------------------


@dataclass
class Scoped:
    scope: str
    slice_key: str
    measure: str
    coefficient: str
    figure: Figure
    annotator: int | None = None
    other: int | None = None


@dataclass
class Computation:
    snapshots: list[Scoped]
    rows: int
    point_ms: int
    bootstrap_ms: int = 0
    calibration: list[tuple[int, str, float, float, int]] = field(default_factory=list)


def _gold_codes(project: Project, labels: LabelArrays) -> dict[str, dict[tuple[int, int], int]]:
    """Gold reference codes per field: {field: {(step id, arg hash or 0): code}}."""
    out: dict[str, dict[tuple[int, int], int]] = {"arg": {}, "env": {}, **{f"rubric:{a}": {} for a in labels.axes}}
    golds = list(GoldItem.objects.filter(trajectory__project=project).values_list("trajectory_id", "reference"))
    if not golds:
        return out
    steps = {
        (t, i): s
        for s, t, i in Step.objects.filter(trajectory_id__in=[g[0] for g in golds]).values_list(
            "id", "trajectory_id", "index"
        )
    }
    names: set[str] = set()
    for _, ref in golds:
        for labels_ in ref.values() if isinstance(ref, dict) else []:
            if isinstance(labels_, dict):
                names.update((labels_.get("argument_verdicts") or {}).keys())
    hashes = _pg_hashes(sorted(names))
    for trajectory_id, ref in golds:
        for key, values in ref.items() if isinstance(ref, dict) else []:
            step = steps.get((trajectory_id, int(key))) if str(key).isdigit() else None
            if step is None or not isinstance(values, dict):
                continue
            for name, verdict in (values.get("argument_verdicts") or {}).items():
                if verdict in ARG_CODES:
                    out["arg"][(step, hashes[name])] = ARG_CODES[verdict]
            if values.get("env_feedback") in ENV_CODES:
                out["env"][(step, 0)] = ENV_CODES[values["env_feedback"]]
            for axis, score in (values.get("rubric") or {}).items():
                if f"rubric:{axis}" in out and score in (1, 2, 3, 4, 5):
                    out[f"rubric:{axis}"][(step, 0)] = int(score) - 1
    return out


def _pg_hashes(names: list[str]) -> dict[str, int]:
    if not names:
        return {}
    if connection.vendor != "postgresql":
        return {n: _arg_hash(n) for n in names}
    with connection.cursor() as cursor:
        cursor.execute("SELECT k, hashtext(k) FROM unnest(%s::text[]) k", [names])
        return dict(cursor.fetchall())


def _lookup(keys_a: np.ndarray, keys_b: np.ndarray, table: dict[tuple[int, int], int]) -> np.ndarray:
    if not table:
        return np.full(keys_a.size, -1, dtype=np.int64)
    return np.array([table.get((int(a), int(b)), -1) for a, b in zip(keys_a, keys_b, strict=True)], dtype=np.int64)


def _gold_vector(steps: np.ndarray, keys: np.ndarray, table: dict[tuple[int, int], int]) -> np.ndarray:
    """Gold code per row; only rows of gold steps are looked up."""
    out = np.full(steps.size, -1, dtype=np.int64)
    if not table:
        return out
    gold_steps = np.array(sorted({s for s, _ in table}), dtype=np.int64)
    rows = np.isin(steps, gold_steps).nonzero()[0]
    out[rows] = _lookup(steps[rows], keys[rows], table)
    return out


def target_votes(
    labels: LabelArrays, rules: Rules, gold: dict[str, dict[tuple[int, int], int]]
) -> tuple[Votes, dict[str, Votes]]:
    """The votes of the project's target variable (see the module docstring), and of the fields in it."""
    if rules.kind == ProjectKind.CODING:
        axes = [a for a in CODING_TARGET_AXES if a in labels.axes] or labels.axes
        parts = {f"rubric:{axis}": rubric_votes(labels, axis, gold) for axis in axes}
        return _concat(list(parts.values()), q=5), parts
    arg = Votes(
        unit=labels.arg_step * 2**32 + (labels.arg_key & 0xFFFFFFFF),
        step=labels.arg_step,
        trajectory=np.zeros(0, dtype=np.int64),
        annotator=labels.arg_annotator,
        gold=labels.arg_gold,
        submitted=np.zeros(0, dtype=np.int64),
        code=labels.arg_code,
    )
    arg = with_targets(arg, 2, _gold_vector(labels.arg_step, labels.arg_key, gold["arg"]))
    env = step_votes(labels, labels.env)
    env = with_targets(env, 3, _gold_vector(labels.step, np.zeros_like(labels.step), gold["env"]))
    # the arguments' trajectories and times come from their step's labels
    pos = np.searchsorted(labels.step, arg.step)
    pos = np.clip(pos, 0, max(labels.step.size - 1, 0))
    arg.trajectory = labels.trajectory[pos] if labels.step.size else arg.step
    arg.submitted = _submitted_of(labels, arg.step, arg.annotator)
    shifted = replace(
        env, code=np.where(env.code >= 0, env.code + 2, -1), target=np.where(env.target >= 0, env.target + 2, -1)
    )
    return _concat([arg, shifted], q=5), {"argument": arg, "env_feedback": env}


def _submitted_of(labels: LabelArrays, steps: np.ndarray, annotators: np.ndarray) -> np.ndarray:
    if not steps.size or not labels.step.size:
        return np.zeros(steps.size, dtype=np.int64)
    key = labels.step * 2**20 + labels.annotator
    order = np.argsort(key)
    pos = np.searchsorted(key[order], steps * 2**20 + annotators)
    pos = np.clip(pos, 0, key.size - 1)
    return labels.submitted[order][pos]


def step_votes(labels: LabelArrays, codes: np.ndarray) -> Votes:
    unit, n_units = labels.step_units
    return Votes(
        unit=unit,
        n_units=n_units,
        step=labels.step,
        trajectory=labels.trajectory,
        annotator=labels.annotator,
        gold=labels.gold,
        submitted=labels.submitted,
        code=codes,
    )


def rubric_votes(labels: LabelArrays, axis: str, gold: dict[str, dict[tuple[int, int], int]]) -> Votes:
    i = labels.axes.index(axis)
    v = step_votes(labels, labels.rubric[:, i] - 1)
    return with_targets(v, 5, _gold_vector(labels.step, np.zeros_like(labels.step), gold.get(f"rubric:{axis}", {})))


def _concat(parts: list[Votes], q: int) -> Votes:
    def cat(name: str) -> Any:
        return np.concatenate([getattr(p, name) for p in parts])

    offsets = np.cumsum([0] + [p.n_units for p in parts])
    return Votes(
        unit=np.concatenate([p.unit + offsets[i] for i, p in enumerate(parts)]),
        n_units=int(offsets[-1]),
        step=cat("step"),
        trajectory=cat("trajectory"),
        annotator=cat("annotator"),
        gold=cat("gold"),
        submitted=cat("submitted"),
        code=cat("code"),
        target=cat("target"),
        target_is_gold=cat("target_is_gold"),
        q=q,
    )


def _judged(v: Votes) -> np.ndarray:
    return (v.code >= 0) & (v.target >= 0)


def scope_figures(v: Votes, *, measure: str, weights: str | None, rules: Rules, slices: SliceIndex) -> list[Scoped]:
    """Project, annotator (vs target and vs gold), pair, slice and annotator × slice figures of one variable."""
    out: list[Scoped] = []
    m = _judged(v)
    annotators = np.flatnonzero(np.bincount(v.annotator)) if v.annotator.size else np.zeros(0, dtype=np.int64)
    lut = np.zeros(int(annotators.max()) + 1 if annotators.size else 1, dtype=np.int64)
    lut[annotators] = np.arange(annotators.size)
    a_index = lut[v.annotator]
    coefficient = "cohen_kappa_quadratic" if weights == "quadratic" else "cohen_kappa"
    own, target = v.code[m], v.target[m]
    project_table = tables(np.zeros(int(m.sum()), dtype=np.int64), 1, own, target, v.q)
    out.append(Scoped("project", "", measure, coefficient, kappa_figures(project_table, weights, rules.min_items)[0]))
    per_annotator = tables(a_index[m], annotators.size, own, target, v.q)
    for a, fig in zip(annotators, kappa_figures(per_annotator, weights, rules.min_items), strict=True):
        out.append(Scoped("annotator", "", measure, coefficient, fig, annotator=int(a)))
    g = m & v.target_is_gold
    per_gold = tables(a_index[g], annotators.size, v.code[g], v.target[g], v.q)
    for a, fig in zip(annotators, kappa_figures(per_gold, weights, rules.min_items), strict=True):
        if fig.n_items:
            out.append(Scoped("annotator_gold", "", measure, coefficient, fig, annotator=int(a)))
    pairs, pair_stack = pair_tables(v)
    for (x, y), fig in zip(pairs, kappa_figures(pair_stack, weights, rules.min_items), strict=True):
        out.append(Scoped("pair", "", measure, coefficient, fig, annotator=x, other=y))
    for dim in ("tool", "band", "model", "kind", "failure"):
        code, names = slices.row_codes(v.step, dim)
        n_s = len(names)
        per_slice = tables(code[m], n_s, own, target, v.q)
        for name, fig in zip(names, kappa_figures(per_slice, weights, rules.min_items), strict=True):
            if fig.n_items:
                out.append(Scoped("slice", f"{dim}:{name or '—'}", measure, coefficient, fig))
        cross = tables(code[m] * annotators.size + a_index[m], n_s * annotators.size, own, target, v.q)
        for k, fig in enumerate(kappa_figures(cross, weights, rules.min_items)):
            if fig.value is not None:
                out.append(
                    Scoped(
                        "annotator_slice",
                        f"{dim}:{names[k // annotators.size] or '—'}",
                        measure,
                        coefficient,
                        fig,
                        annotator=int(annotators[k % annotators.size]),
                    )
                )
    return out


def slice_facts(project: Project) -> tuple[list[np.ndarray], dict[str, list[str]]]:
    """Per step id of the project: its kind, tool, model and band, as codes, and the names of the codes."""
    steps = Step.objects.filter(trajectory__project=project).order_by()
    combos = list(steps.values_list("kind", "tool_name", "trajectory__model_name", "trajectory__goal__band").distinct())
    dims = ("kind", "tool", "model", "band")
    names = {dim: sorted({str(c[i] or "") for c in combos}) for i, dim in enumerate(dims)}
    if connection.vendor == "postgresql":
        sql = (
            "SELECT s.id::int8, COALESCE(array_position(%s::text[], s.kind::text), 1)::int - 1,"
            " COALESCE(array_position(%s::text[], s.tool_name::text), 1)::int - 1,"
            " COALESCE(array_position(%s::text[], t.model_name::text), 1)::int - 1,"
            " COALESCE(array_position(%s::text[], COALESCE(g.band, '')::text), 1)::int - 1"
            " FROM trajectories_step s JOIN trajectories_trajectory t ON t.id = s.trajectory_id"
            " LEFT JOIN trajectories_goal g ON g.id = t.goal_id WHERE t.project_id = %s"
        )
        cols = _pg_packed_parallel([(sql, [*(names[d] for d in dims), project.pk], [8, 4, 4, 4, 4])])[0]
    else:
        rows = list(steps.values_list("id", "kind", "tool_name", "trajectory__model_name", "trajectory__goal__band"))
        index = {d: {n: i for i, n in enumerate(names[d])} for d in dims}
        cols = [np.array([r[0] for r in rows], dtype=np.int64)] + [
            np.array([index[d][str(r[i + 1] or "")] for r in rows], dtype=np.int64) for i, d in enumerate(dims)
        ]
    return cols, names


def _on_own_connection(function: Callable[..., Any], *args: Any) -> Any:
    try:
        return function(*args)
    finally:
        connection.close()  # this thread's own


class SliceIndex:
    """Slice codes of step ids: tool, band, model and step kind (one each), and failure mode — the tag
    a majority of the step's annotators chose (a step with several such tags counts under its first)."""

    DIMENSIONS = ("tool", "band", "model", "kind", "failure")

    def __init__(self, facts: tuple[list[np.ndarray], dict[str, list[str]]], labels: LabelArrays) -> None:
        cols, names = facts
        dims = ("kind", "tool", "model", "band")
        order = np.argsort(cols[0], kind="stable")
        self.ids = cols[0][order]
        self.dims: dict[str, tuple[np.ndarray, list[str]]] = {
            d: (cols[i + 1][order], names[d]) for i, d in enumerate(dims)
        }
        tags = labels.tag_keys
        failure = np.full(self.ids.size, len(tags), dtype=np.int64)  # the last code: no majority tag
        live = ~labels.gold
        if self.ids.size and live.any():
            pos = np.clip(np.searchsorted(self.ids, labels.step[live]), 0, self.ids.size - 1)
            for bit in range(len(tags) - 1, -1, -1):
                votes = np.bincount(pos, weights=(labels.tags[live] >> bit) & 1, minlength=self.ids.size)
                failure = np.where(votes >= 2, bit, failure)
        self.dims["failure"] = (failure, [*tags, ""])

    def row_codes(self, steps: np.ndarray, dim: str) -> tuple[np.ndarray, list[str]]:
        codes, names = self.dims[dim]
        if not self.ids.size:
            return np.zeros(steps.size, dtype=np.int64), names
        pos = np.clip(np.searchsorted(self.ids, steps), 0, self.ids.size - 1)
        return codes[pos], names

    def masks(self, steps: np.ndarray) -> list[tuple[str, np.ndarray]]:
        out: list[tuple[str, np.ndarray]] = []
        for dim in self.DIMENSIONS:
            codes, names = self.row_codes(steps, dim)
            out += [(f"{dim}:{name or '—'}", codes == k) for k, name in enumerate(names)]
        return out


def multi_rater(v: Votes, *, measure: str, level: str, q: int) -> list[Scoped]:
    """Krippendorff's α, Fleiss' κ, Gwet's AC1 and raw agreement of the non-gold labels, project-wide."""
    live = (~v.gold) & (v.code >= 0)
    unit, n_units = (v.unit, v.n_units) if v.n_units else dense(v.unit)  # with_targets left it dense
    counts = counts_per(unit[live], n_units, v.code[live], q).astype(np.float64)
    size = counts.sum(axis=1)
    counts, size = counts[size > 0], size[size > 0]
    paired = counts[size >= 2]
    n_items = int(paired.shape[0])
    alpha = krippendorff_alpha(coincidence_matrix(paired), n_items=n_items, level=level)  # type: ignore[arg-type]
    ac1 = gwet_ac1(counts) if counts.size else None
    raw = ac1.p_o if ac1 is not None else None  # Gwet's p_a: the mean agreement of the items with two or more
    out = [
        Scoped(
            "project",
            "",
            measure,
            f"krippendorff_alpha_{level}",
            Figure(alpha.value, alpha.reason or "", n_items, raw, ac1.value if ac1 else None),
        )
    ]
    full = counts[size == size.max()] if n_items else paired
    fleiss = fleiss_kappa(full) if full.size else None
    if fleiss is not None:
        out.append(
            Scoped(
                "project", "", measure, "fleiss_kappa", Figure(fleiss.value, fleiss.reason or "", fleiss.n_items, raw)
            )
        )
    return out


def tag_figures(labels: LabelArrays, rules: Rules) -> list[Scoped]:
    """One binary κ per failure-mode tag (vs leave-one-out consensus) and set-level α with MASI."""
    out: list[Scoped] = []
    has_tags = labels.tags > 0
    for bit, key in enumerate(labels.tag_keys):
        codes = np.where(has_tags, (labels.tags >> bit) & 1, -1)
        v = with_targets(step_votes(labels, codes), 2, np.full(labels.step.size, -1, dtype=np.int64))
        m = _judged(v)
        fig = kappa_figures(
            tables(np.zeros(int(m.sum()), dtype=np.int64), 1, v.code[m], v.target[m], 2), None, rules.min_items
        )[0]
        out.append(Scoped("project", "", f"tag:{key}", "cohen_kappa", fig))
    live = (~labels.gold) & has_tags
    sets = np.flatnonzero(np.bincount(labels.tags[live])) if live.any() else np.zeros(0, dtype=np.int64)
    if sets.size:
        lut = np.zeros(int(sets.max()) + 1, dtype=np.int64)
        lut[sets] = np.arange(sets.size)
        unit, n_units = dense(labels.step[live])
        counts = counts_per(unit, n_units, lut[labels.tags[live]], int(sets.size)).astype(np.float64)
        frozen = [frozenset(b for b in range(len(labels.tag_keys)) if (int(s) >> b) & 1) for s in sets]
        delta = np.array([[masi_distance(x, y) for y in frozen] for x in frozen])
        paired = counts[counts.sum(axis=1) >= 2]
        alpha = krippendorff_alpha(coincidence_matrix(paired), n_items=int(paired.shape[0]), delta=delta)
        out.append(
            Scoped(
                "project",
                "",
                "failure_modes",
                "krippendorff_alpha_masi",
                Figure(alpha.value, alpha.reason or "", alpha.n_items, None),
            )
        )
    return out


def field_figures(votes: Votes, measure: str, weights: str | None, level: str, rules: Rules) -> list[Scoped]:
    """One label field, project-wide: Cohen's κ against the leave-one-out target, and the multi-rater figures."""
    m = _judged(votes)
    coefficient = "cohen_kappa_quadratic" if weights == "quadratic" else "cohen_kappa"
    table = tables(np.zeros(int(m.sum()), dtype=np.int64), 1, votes.code[m], votes.target[m], votes.q)
    out = [Scoped("project", "", measure, coefficient, kappa_figures(table, weights, rules.min_items)[0])]
    return out + multi_rater(votes, measure=measure, level=level, q=votes.q)


def compute(project: Project, *, bootstrap: bool = True, trajectory_ids: list[int] | None = None) -> Computation:
    """Every scope's point estimates (and, with `bootstrap`, the cluster-bootstrap intervals of the target);
    with `trajectory_ids`, of those trajectories only (a batch)."""
    started = time.perf_counter()
    rules = rules_for(project)
    if connection.vendor == "postgresql" and not connection.in_atomic_block:  # the steps' facts meanwhile
        with ThreadPoolExecutor(max_workers=1) as pool:
            facts_future = pool.submit(_on_own_connection, slice_facts, project)
            labels = load_labels(project)
            facts = facts_future.result()
    else:
        labels = load_labels(project)
        facts = slice_facts(project)
    if trajectory_ids is not None:
        labels = labels.restrict(np.asarray(trajectory_ids, dtype=np.int64))
    slices = SliceIndex(facts, labels)
    gold = _gold_codes(project, labels)
    target, parts = target_votes(labels, rules, gold)
    weights = "quadratic" if rules.kind == ProjectKind.CODING else None

    def rubric(axis: str) -> list[Scoped]:
        votes = parts.get(f"rubric:{axis}") or rubric_votes(labels, axis, gold)
        return field_figures(votes, f"rubric:{axis}", "quadratic", "ordinal", rules)

    def reward() -> list[Scoped]:
        votes = with_targets(step_votes(labels, labels.reward), 3, np.full(labels.step.size, -1, dtype=np.int64))
        return field_figures(votes, "process_reward", "quadratic", "ordinal", rules)

    tasks: list[Callable[[], list[Scoped]]] = [
        partial(scope_figures, target, measure="target", weights=weights, rules=rules, slices=slices)
    ]
    if rules.kind == ProjectKind.TOOL_USE:
        tasks += [
            partial(multi_rater, target, measure="target", level="nominal", q=5),
            partial(field_figures, parts["argument"], "argument", None, "nominal", rules),
            partial(field_figures, parts["env_feedback"], "env_feedback", None, "nominal", rules),
        ]
    tasks += [partial(rubric, axis) for axis in labels.axes]
    tasks += [reward, partial(tag_figures, labels, rules)]
    # independent measures on two threads: numpy lets go of the GIL in its array loops
    with ThreadPoolExecutor(max_workers=2) as pool:
        snapshots = [s for part in pool.map(lambda task: task(), tasks) for s in part]
    result = Computation(snapshots=snapshots, rows=labels.rows, point_ms=int((time.perf_counter() - started) * 1000))
    if bootstrap:
        t0 = time.perf_counter()
        _bootstrap(result, target, weights, rules, slices)
        result.calibration = _calibration(target, weights, rules, slices)
        result.bootstrap_ms = int((time.perf_counter() - t0) * 1000)
    return result


def _cluster_tables(v: Votes, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    _, cluster = np.unique(v.trajectory[mask], return_inverse=True)
    n = int(cluster.max()) + 1 if cluster.size else 0
    return tables(cluster, n, v.code[mask], v.target[mask], v.q), np.arange(n)


def _interval(
    v: Votes, mask: np.ndarray, weights: str | None, rules: Rules, level: float = 0.95
) -> tuple[float | None, float | None]:
    stats, ids = _cluster_tables(v, mask)
    if ids.size < 2:
        return None, None
    ci = bootstrap_ci(
        stats, ids, lambda t: cohen_kappa_stack(t, weights).kappa, B=rules.bootstrap_resamples, seed=SEED, level=level
    )
    return ci.low, ci.high


def _bootstrap(result: Computation, v: Votes, weights: str | None, rules: Rules, slices: SliceIndex) -> None:
    """Intervals of the target for the project, each annotator and each slice, from one set of resamples of
    the trajectories (each scope a domain of the same sample)."""
    judged = _judged(v)
    in_slice = dict(slices.masks(v.step))
    cluster, n_clusters = dense(np.where(judged, v.trajectory, -1))
    q = v.q
    wanted: list[Scoped] = []
    domains: list[tuple[np.ndarray, np.ndarray]] = []
    for s in result.snapshots:
        if s.measure != "target" or s.figure.value is None or s.scope not in ("project", "annotator", "slice"):
            continue
        if not s.coefficient.startswith("cohen"):
            continue
        mask = judged
        if s.scope == "annotator":
            mask = judged & (v.annotator == s.annotator)
        elif s.scope == "slice":
            mask = judged & in_slice[s.slice_key]
        flat = np.bincount(
            (cluster[mask] * q + v.code[mask]) * q + v.target[mask], minlength=n_clusters * q * q
        ).reshape(n_clusters, q, q)
        present = np.flatnonzero(flat.sum(axis=(1, 2)))
        wanted.append(s)
        domains.append((present, flat[present].astype(np.float64)))
    if not wanted:
        return
    intervals = domain_bootstrap_ci(
        domains,
        n_clusters,
        lambda t: cohen_kappa_stack(t, weights).kappa,
        B=rules.bootstrap_resamples,
        seed=SEED,
    )
    for s, ci in zip(wanted, intervals, strict=True):
        s.figure.ci = (ci.low, ci.high)


def _calibration(
    v: Votes, weights: str | None, rules: Rules, slices: SliceIndex
) -> list[tuple[int, str, float, float, int]]:
    """(annotator, slice, κ, upper 90% bound, items) for every annotator × slice whose last `window` items
    (a rolling window, most recent first) put the upper bound below the threshold."""
    out = []
    judged = _judged(v)
    window = rules.calibration_window
    scopes = [("project", np.ones(v.step.size, dtype=bool)), *slices.masks(v.step)]
    for annotator in np.unique(v.annotator[judged]):
        mine = judged & (v.annotator == annotator)
        for key, in_slice in scopes:
            rows = (mine & in_slice).nonzero()[0]
            if rows.size < window:
                continue
            recent = rows[np.lexsort((-v.unit[rows], -v.submitted[rows]))[:window]]  # newest first, then by unit
            mask = np.zeros(v.step.size, dtype=bool)
            mask[recent] = True
            fig = kappa_figures(
                tables(np.zeros(window, dtype=np.int64), 1, v.code[mask], v.target[mask], v.q), weights, 1
            )[0]
            _, high = _interval(v, mask, weights, rules, level=0.90)
            if fig.value is not None and high is not None and high < rules.threshold:
                out.append((int(annotator), key, fig.value, high, window))
    return out


# --- storing -----------------------------------------------------------------------------------------------------


def project_agreement_compute(
    *, project_id: int, bootstrap: bool = True, queued_at: float | None = None
) -> AgreementRun | None:
    """Recompute and store every scope's figures; raise calibration flags (and their gold requirement).

    With `queued_at` (the time the request was queued), a run that started later already saw every
    label this request was for: nothing is done and None is returned. The labels are read outside the
    storing transaction (in parallel where the caller holds none); the run is stored in one transaction.
    """
    project = Project.objects.get(pk=project_id)
    if queued_at is not None:
        newer = AgreementRun.objects.filter(
            project=project, started_at__gt=datetime.fromtimestamp(queued_at, tz=UTC)
        ).exists()
        if newer:
            return None
    started = timezone.now()
    result = compute(project, bootstrap=bootstrap)
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).values_list("pk").first()
        return _store(project, started, result)


def _store(project: Project, started: datetime, result: Computation) -> AgreementRun:
    rules = rules_for(project)
    run = AgreementRun.objects.create(
        project=project,
        started_at=started,
        label_rows=result.rows,
        point_ms=result.point_ms,
        bootstrap_ms=result.bootstrap_ms,
        definition=rules.definition,
    )
    AgreementSnapshot.objects.bulk_create(
        [
            AgreementSnapshot(
                run=run,
                project=project,
                scope=s.scope,
                slice_key=s.slice_key[:200],
                measure=s.measure,
                annotator_id=s.annotator,
                other_id=s.other,
                coefficient=s.coefficient,
                value=s.figure.value,
                reason=s.figure.reason[:80],
                n_items=s.figure.n_items,
                raw_agreement=s.figure.raw,
                ac1=s.figure.ac1,
                ci_low=s.figure.ci[0],
                ci_high=s.figure.ci[1],
            )
            for s in result.snapshots
        ],
        batch_size=2000,
    )
    for annotator, key, value, high, items in result.calibration:
        if CalibrationFlag.objects.filter(
            project=project, annotator_id=annotator, slice_key=key, cleared_at__isnull=True
        ).exists():
            continue
        flag = CalibrationFlag.objects.create(
            project=project, annotator_id=annotator, slice_key=key, value=value, upper_bound=high, n_items=items
        )
        CalibrationRequirement.objects.get_or_create(
            project=project, annotator_id=annotator, slice_key=key, active=True
        )
        audit_record(
            actor=None,
            verb="calibration.flag",
            target=flag,
            project=project,
            after={"annotator": annotator, "slice": key, "kappa": value, "upper_bound": high, "items": items},
        )
    return run


@transaction.atomic
def calibration_flag_clear(*, actor: Any, flag: CalibrationFlag) -> CalibrationFlag:
    locked = CalibrationFlag.objects.select_for_update().get(pk=flag.pk)
    if locked.cleared_at is not None:
        return locked
    now = timezone.now()
    locked.cleared_at = now
    locked.cleared_by = actor
    locked.save(update_fields=["cleared_at", "cleared_by"])
    CalibrationRequirement.objects.filter(
        project_id=locked.project_id, annotator_id=locked.annotator_id, slice_key=locked.slice_key, active=True
    ).update(active=False, cleared_at=now)
    audit_record(
        actor=actor, verb="calibration.clear", target=locked, project=locked.project, after={"slice": locked.slice_key}
    )
    return locked
