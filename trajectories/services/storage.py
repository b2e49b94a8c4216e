"""Turning parsed runs into rows: one batch, one transaction, every trajectory whole or absent.

PostgreSQL takes the rows through COPY (the fast path); other databases through bulk_create.
Both write the same values.
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson
import psycopg
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone
from psycopg import adapt, pq
from psycopg._copy_base import format_row_binary  # what Copy.write_row renders a binary row with
from psycopg.abc import Transformer
from psycopg.copy import LibpqWriter
from psycopg.postgres import types as pg_types

from core.models import Project
from trajectories.blobs import Packed, PayloadPacker, pack
from trajectories.chat import ChatStep, StoredStep, as_stored, chat_blob
from trajectories.formats.base import ParsedRun, RawRecord, RecordError, RunStep
from trajectories.formats.canonical import canonical_json, content_json, run_to_dict, sha256_hex, spans
from trajectories.formats.scrub import SCRUBBED, scrub
from trajectories.formats.times import parse_iso
from trajectories.hooks import StoredRun, fire_runs_stored
from trajectories.models import Goal, PayloadDictionary, SourceFile, Step, SweTask, Trajectory, TrajectoryStatus

# COPY data is handed to libpq without waiting for the server until this much is pending: the
# server then ingests rows while we build the next ones, instead of both taking turns.
COPY_FLUSH_BYTES = 8 << 20
COPY_BLOCK_BYTES = 256 << 10  # rendered rows are handed to psycopg in blocks of about this size
# What a refused write raises: Django's wrapper, or psycopg's own error from COPY on the raw cursor.
DB_ERRORS = (DatabaseError, psycopg.Error)
# …unless the database is gone, which no record is to blame for: then the import stops (and can
# be run again: what was committed comes back as duplicates).
LOST_CONNECTION = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)


@dataclass(slots=True)
class PreparedRun:
    record: RawRecord
    run: ParsedRun
    content_sha256: str
    payload_sha256: str
    payload: bytes  # the record's bytes, compressed (trajectories.blobs)
    spans: list[tuple[int, int]]
    times: list[tuple[datetime | None, datetime | None]]
    # Each step's state and arguments as the JSON text stored (canonical JSON, NUL scrubbed; None
    # for arguments that are None): dumped once, for the content hash, the spans and the rows.
    step_json: list[tuple[str, str | None]]
    secrets: set[str]  # values scrubbed out of the metadata (and so out of the stored bytes)
    dictionary_id: int | None = None  # the PayloadDictionary the payload is compressed against
    dictionary: bytes | None = None  # its bytes, on the first run that needs it (the writer stores them)
    nul_free: bool = False  # no text of the run holds NUL: nothing to clean when its rows are rendered
    chat: bytes | None = None  # the steps as chat messages (trajectories.chat), as Trajectory.chat keeps them

    # What the writer and the import loop read, named alike on RenderedRun.
    @property
    def where(self) -> str:
        return self.record.where

    @property
    def line(self) -> int:
        return self.record.line

    @property
    def goal(self) -> dict[str, Any] | None:
        return self.run.goal

    @property
    def goal_text(self) -> str:
        return self.run.goal_text

    @property
    def task_ref(self) -> dict[str, Any] | None:
        return self.run.task or self.run.task_hint

    @property
    def scrubbed(self) -> dict[str, int]:
        return self.run.scrubbed

    @property
    def step_count(self) -> int:
        return len(self.run.steps)

    @property
    def sections(self) -> dict[str, Any]:
        return self.run.sections

    @property
    def size(self) -> int:
        """Roughly the memory it holds: the record's bytes (its parsed form is of the same order)."""
        return len(self.record.raw)


@dataclass(slots=True)
class RenderedRun:
    """A prepared run already rendered as COPY text (by a parse worker, see imports): what the
    writer still needs to look up goals, tasks and duplicates, and the rows, with nothing per step.

    `trajectory_tail` is the trajectory row from `source_file_id` on (TRAJECTORY_FIELDS[3:]) in
    binary COPY format; the writer puts the id, project, goal and task before it and `created_at`
    after it.
    `step_rows` are the step rows in binary COPY format, each with 0 for its trajectory id, which
    the writer puts in at `step_offsets` (where each row's id is, from the start of `step_rows`).
    In the worker both byte fields are PickleBuffers: the pipe carries them out of band (import_workers),
    and the writer gets them as bytes, neither copied into nor out of a pickle.
    """

    where: str
    line: int
    content_sha256: str
    goal: dict[str, Any] | None
    goal_text: str
    task_ref: dict[str, Any] | None
    scrubbed: dict[str, int]
    secrets: set[str]
    step_count: int
    unknown: int
    trajectory_tail: bytes | pickle.PickleBuffer
    step_rows: bytes | pickle.PickleBuffer
    step_offsets: list[int]
    sections: dict[str, Any] = field(default_factory=dict)  # ParsedRun.sections
    dictionary_id: int | None = None  # as on PreparedRun
    dictionary: bytes | None = None

    @property
    def size(self) -> int:
        return memoryview(self.trajectory_tail).nbytes + memoryview(self.step_rows).nbytes


Prepared = PreparedRun | RenderedRun


def _parse_time(value: str, step: int, name: str) -> datetime:
    try:
        moment = parse_iso(value) if isinstance(value, str) else None
    except TypeError:  # a str subclass that is not hashable
        moment = None
    if moment is None:
        raise RecordError(f"not an ISO 8601 date-time: {value!r}", pointer=f"/steps/{step}/timing/{name}")
    return moment


INT4_MAX = 2**31 - 1
# Identifiers that must fit their column whole: cutting one could merge two different things.


def _check_run(run: ParsedRun) -> None:
    """RecordError for values no column can take (lengths, 32-bit integers)."""
    for label, value, limit in (
        ("model", run.model, 200),
        ("scaffold", run.scaffold, 100),
        ("rollout id", run.rollout_id, 200),
        ("goal id", (run.goal or {}).get("external_id") or "", 200),
    ):
        if len(value) > limit:
            raise RecordError(f"the {label} is {len(value)} characters long; at most {limit} are kept")
    if run.trial is not None and not -INT4_MAX <= run.trial <= INT4_MAX:
        raise RecordError(f"trial {run.trial} is out of range (at most {INT4_MAX})")
    for i, step in enumerate(run.steps):  # every step of every record: the usual case costs one test a rule
        if len(step.tool_name) > 200 or len(step.tool_call_id) > 200 or len(step.turn_id) > 100:
            for label, text, limit in (
                ("tool name", step.tool_name, 200),
                ("tool call id", step.tool_call_id, 200),
                ("turn id", step.turn_id, 100),
            ):
                if len(text) > limit:
                    raise RecordError(f"step {i}: the {label} is {len(text)} characters long; at most {limit} are kept")
        if step.prompt_tokens is not None or step.completion_tokens is not None:
            for label, count in (("prompt tokens", step.prompt_tokens), ("completion tokens", step.completion_tokens)):
                if count is not None and not 0 <= count <= INT4_MAX:
                    raise RecordError(f"step {i}: {label} {count} is out of range (0 to {INT4_MAX})")


def _clean_run(run: ParsedRun, *, content_clean: bool) -> None:
    """NUL out of every text the database keeps (the stored payload keeps the original bytes).
    `content_clean`: the run's content JSON holds no NUL, so only the texts it may leave out are looked at
    (an importer's message about the arguments, and a call id where there is no tool name)."""
    if content_clean:
        for step in run.steps:
            if step.arguments_error:
                step.arguments_error = _clean_text(step.arguments_error) or ""
            if step.tool_call_id and not step.tool_name:
                step.tool_call_id = _clean_text(step.tool_call_id) or ""
        return
    run.model, run.scaffold, run.rollout_id = (_clean_text(v) or "" for v in (run.model, run.scaffold, run.rollout_id))
    if run.goal and _holds_nul(run.goal):
        run.goal = _scrub_nul(run.goal)
    if run.task and _holds_nul(run.task):
        run.task = _scrub_nul(run.task)
    for step in run.steps:
        step.tool_name = _clean_text(step.tool_name) or ""
        step.tool_call_id = _clean_text(step.tool_call_id) or ""
        step.turn_id = _clean_text(step.turn_id) or ""
        step.arguments_error = _clean_text(step.arguments_error) or ""


def _scrub_payload(raw: bytes, secrets: set[str]) -> bytes:
    """The record's bytes with each secret replaced by "[scrubbed]", wherever it is written: as a
    JSON string, or inside one (a config serialised into a string escapes its quotes)."""
    for secret in secrets:
        raw = raw.replace(orjson.dumps(secret)[1:-1], SCRUBBED.encode())
    return raw


def prepare(record: RawRecord, run: ParsedRun, packer: PayloadPacker | None = None) -> PreparedRun:
    """Validate, hash, compress and locate a parsed run; RecordError for what cannot be stored.
    `packer` compresses the payload (the import's, see blobs.PayloadPacker); without one, alone.

    All of this is done without the database, so the import does it on its reading thread,
    leaving the writing thread to feed PostgreSQL (see imports._ReadAhead). Secrets in the
    metadata are scrubbed here, from the metadata and from the stored payload alike.
    """
    _check_run(run)
    try:
        dumped = [
            (canonical_json(step.state), None if step.arguments is None else canonical_json(step.arguments))
            for step in run.steps
        ]
        content_text = content_json(run_to_dict(run, dumped))
        others = [orjson.dumps(run.metadata), orjson.dumps(run.alternatives)]  # the outcome is in the content
    except TypeError:
        raise RecordError(
            "the record holds a value that cannot be stored (a lone surrogate escape or an integer beyond 64 bits)"
        ) from None
    content = sha256_hex(content_text)
    # Every text the rows keep is in the content's JSON or in these, where orjson writes NUL as an escape:
    # without one, there is nothing to clean (the usual case), and nothing is looked at text by text.
    nul_free = "\x00" not in run.goal_text and all(b"\\u0000" not in text for text in (content_text, *others))
    run.metadata, found = scrub(run.metadata, pointer="/metadata")
    run.scrubbed = found.where
    _clean_run(run, content_clean=nul_free)
    times = [
        (
            None if step.started_at is None else _parse_time(step.started_at, i, "started_at"),
            None if step.ended_at is None else _parse_time(step.ended_at, i, "ended_at"),
        )
        for i, step in enumerate(run.steps)
    ]
    raw = _scrub_payload(record.raw, found.values) if found.values else record.raw
    arguments_texts = [None if arguments is None else arguments.decode() for _, arguments in dumped]
    if nul_free:
        step_json = [(state.decode(), text) for (state, _), text in zip(dumped, arguments_texts, strict=True)]
    else:
        step_json = [
            (_stored_json(state, step.state), None if arguments is None else _stored_json(arguments, step.arguments))
            for (state, arguments), step in zip(dumped, run.steps, strict=True)
        ]
    located = spans(run, arguments_texts)
    # compressed last: a packer's new dictionary comes with this run, which nothing after may refuse
    packed = packer.pack(raw) if packer is not None else Packed(pack(raw), None, None)
    chat_steps = _chat_steps(run, nul_free)
    # the steps as they are (the usual case): their arguments' text is the one just dumped for their rows
    texts = arguments_texts if chat_steps is run.steps else None
    chat = chat_blob(chat_steps, packer.pack_beside if packer is not None else pack, texts)
    return PreparedRun(
        record=record,
        run=run,
        content_sha256=content,
        payload_sha256=sha256_hex(raw),
        payload=packed.blob,
        secrets=found.values,
        spans=located,
        times=times,
        step_json=step_json,
        dictionary_id=packed.dictionary_id,
        dictionary=packed.dictionary,
        nul_free=nul_free,
        chat=chat,
    )


def _chat_steps(run: ParsedRun, nul_free: bool) -> Sequence[ChatStep]:
    """The run's steps as stored: NUL cleaned out of their texts, and their arguments' numbers as jsonb keeps
    them on PostgreSQL (`run.steps` itself where both leave them as they are, the usual case)."""
    postgres = connection.vendor == "postgresql"
    arguments = [step.arguments if not postgres else as_stored(step.arguments) for step in run.steps]
    if nul_free and all(a is s.arguments for a, s in zip(arguments, run.steps, strict=True)):
        return run.steps
    return [
        StoredStep(
            kind=step.kind,
            turn_id=step.turn_id[:100],
            state=step.state if nul_free else _scrub_nul(step.state),
            plan=step.plan if nul_free else _clean_text(step.plan) or "",
            tool_name=step.tool_name[:200],
            tool_call_id=step.tool_call_id[:200],
            arguments=value if nul_free else _scrub_nul(value),
            arguments_raw=step.arguments_raw if nul_free else _clean_text(step.arguments_raw),
            observation=step.observation if nul_free else _clean_text(step.observation),
        )
        for step, value in zip(run.steps, arguments, strict=True)
    ]


def _stored_json(dumped: bytes, value: Any) -> str:
    """The JSON text a jsonb column gets for `value`, dumped as `dumped` (PostgreSQL cannot keep
    NUL in jsonb text; orjson writes each as the escape "\\u0000")."""
    if b"\\u0000" in dumped:
        return orjson.dumps(_scrub_nul(value)).decode()
    return dumped.decode()


def _clean_text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; it is stored as U+FFFD (the payload keeps the original)."""
    if value is None or "\x00" not in value:
        return value
    return value.replace("\x00", "\ufffd")


def _holds_nul(value: Any) -> bool:
    """Is there a NUL in any string of `value`? orjson writes each as the escape "\\u0000"."""
    try:
        return b"\\u0000" in orjson.dumps(value)
    except TypeError:  # not plain JSON: let _scrub_nul look at every part
        return True


def _scrub_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_scrub_nul(v) for v in value]
    if isinstance(value, dict):
        return {_scrub_nul(k): _scrub_nul(v) for k, v in value.items()}
    return value


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    data = orjson.dumps(value)
    if b"\\u0000" in data:
        data = orjson.dumps(_scrub_nul(value))
    return data.decode()


@dataclass(slots=True)
class BatchResult:
    trajectory_ids: list[int]
    steps: int
    duplicates: int
    unknown_tool_calls: int
    rejected: list[RecordError] = field(default_factory=list)  # records the database refused


class BatchWriter:
    """Writes prepared runs of one project; goals, tasks and tools are resolved per batch."""

    def __init__(
        self,
        *,
        project: Project,
        source_file: SourceFile | None,
        importer_name: str,
        importer_version: str,
        tools: dict[str, int] | None,
    ) -> None:
        self.project = project
        self.source_file = source_file
        self.importer_name = importer_name
        self.importer_version = importer_version
        self.tools = tools  # name → Tool id of the active frozen registry; None when there is none
        self.use_copy = connection.vendor == "postgresql"
        self._dictionaries: dict[int, bytes] = {}  # the import's payload dictionaries, by id
        self._stored_dictionaries: set[int] = set()  # those committed

    def allocate_dictionary_ids(self, count: int) -> list[int | None]:
        """Ids for the payload dictionaries of `count` packers (PostgreSQL hands them out ahead of the
        rows; elsewhere there are none, and payloads are compressed alone)."""
        if not self.use_copy:
            return [None] * count
        return list(_next_ids(PayloadDictionary._meta.db_table, count))

    def render(self, prepared: PreparedRun, tx: RowTransformers) -> RenderedRun:
        """The run's rows in binary COPY format, as `_copy` would render them (the same values, the
        same types: `tx` is `row_transformers()`): done by a parse worker, so that the writer has
        nothing left per step."""
        unknown = self._unknown(prepared.run)
        tail = _tail(self._trajectory_values(prepared, None, None, unknown), tx.trajectory)
        rows, offsets = self._step_rows(prepared, tx.steps)
        return RenderedRun(
            where=prepared.where,
            line=prepared.line,
            content_sha256=prepared.content_sha256,
            goal=prepared.goal,
            goal_text=prepared.goal_text,
            task_ref=prepared.task_ref,
            scrubbed=prepared.scrubbed,
            secrets=prepared.secrets,
            step_count=prepared.step_count,
            unknown=unknown,
            trajectory_tail=pickle.PickleBuffer(tail),
            step_rows=pickle.PickleBuffer(rows),
            step_offsets=offsets,
            sections=prepared.run.sections,
            dictionary_id=prepared.dictionary_id,
            dictionary=prepared.dictionary,
        )

    def write(self, batch: list[Prepared]) -> BatchResult:
        """Write the batch in one transaction. Should the database refuse it, write the records one
        by one, so that only the refused ones are lost, each reported where it was in the file.
        A record the runs-stored hook refuses (RecordError) is lost the same way, with the hook's reason."""
        for p in batch:  # a new payload dictionary comes with one run, which may be refused or a duplicate
            if p.dictionary is not None and p.dictionary_id is not None:
                self._dictionaries[p.dictionary_id] = p.dictionary
                p.dictionary = None
        try:
            return self._write(batch)
        except LOST_CONNECTION:
            raise
        except (*DB_ERRORS, RecordError):
            pass  # find the record(s) it refused
        total = BatchResult([], 0, 0, 0)
        for prepared in batch:
            try:
                one = self._write([prepared])
            except LOST_CONNECTION:
                raise
            except RecordError as exc:
                exc.where = exc.where or prepared.where
                exc.line = exc.line or prepared.line
                total.rejected.append(exc)
                continue
            except DB_ERRORS as exc:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                total.rejected.append(
                    RecordError(
                        f"the database refused this record: {reason}",
                        where=prepared.where,
                        line=prepared.line,
                    )
                )
                continue
            total.trajectory_ids += one.trajectory_ids
            total.steps += one.steps
            total.duplicates += one.duplicates
            total.unknown_tool_calls += one.unknown_tool_calls
        return total

    def _write(self, batch: list[Prepared]) -> BatchResult:
        with transaction.atomic():
            fresh, duplicates = self._drop_duplicates(batch)
            if not fresh:
                return BatchResult([], 0, duplicates, 0)
            needed = {p.dictionary_id for p in fresh if p.dictionary_id is not None} - self._stored_dictionaries
            PayloadDictionary.objects.bulk_create(
                [PayloadDictionary(id=i, project=self.project, data=self._dictionaries[i]) for i in sorted(needed)]
            )
            goal_ids = self._goal_ids(fresh)
            task_ids = self._task_ids(fresh)
            if self.use_copy:
                ids, steps, unknown = self._copy(fresh, goal_ids, task_ids)
            else:  # rendered runs come from the parse workers, which only PostgreSQL imports use
                ids, steps, unknown = self._bulk_create(
                    [p for p in fresh if isinstance(p, PreparedRun)], goal_ids, task_ids
                )
            stored = [StoredRun(i, p.sections, p.where, p.line) for p, i in zip(fresh, ids, strict=True) if p.sections]
            if stored:
                fire_runs_stored(self.project, stored)
        self._stored_dictionaries |= needed
        return BatchResult(ids, steps, duplicates, unknown)

    def _drop_duplicates(self, batch: list[Prepared]) -> tuple[list[Prepared], int]:
        hashes = {p.content_sha256 for p in batch}
        fresh, seen = [], self._stored_hashes(hashes)
        for prepared in batch:
            if prepared.content_sha256 in seen:
                continue
            seen.add(prepared.content_sha256)
            fresh.append(prepared)
        return fresh, len(batch) - len(fresh)

    def _stored_hashes(self, hashes: set[str]) -> set[str]:
        """Which of these content hashes the project holds already. On PostgreSQL each (project, hash) pair is
        looked up in the unique index on them. The planner is kept to that index: a table that an import fills
        has no statistics yet, and it would read every row of the project instead, batch after batch (an
        import's lookups grew with the square of its size). The project goes in beside each hash: as a
        constant, the planner would take it for a selective condition and scan the project's index."""
        if not self.use_copy:
            return set(
                Trajectory.objects.filter(project=self.project, content_sha256__in=hashes).values_list(
                    "content_sha256", flat=True
                )
            )
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true)"
            )
            cursor.execute(
                "SELECT t.content_sha256 FROM unnest(%s::bigint[], %s::text[]) AS h(project_id, sha) "
                "JOIN trajectories_trajectory t ON t.project_id = h.project_id AND t.content_sha256 = h.sha",
                [[self.project.pk] * len(hashes), list(hashes)],
            )
            found = {row[0] for row in cursor.fetchall()}
            cursor.execute("SET LOCAL enable_seqscan TO DEFAULT; SET LOCAL enable_bitmapscan TO DEFAULT")
        return found

    def _goal_ids(self, runs: list[Prepared]) -> list[int | None]:
        by_external: dict[str, Prepared] = {}
        by_prompt: dict[str, Prepared] = {}
        keys: list[tuple[str, str]] = []
        for p in runs:
            external = (p.goal or {}).get("external_id") or ""
            if external:
                by_external.setdefault(external, p)
                keys.append(("e", external))
            elif p.goal_text:
                digest = sha256_hex(p.goal_text.encode("utf-8", "surrogatepass"))
                by_prompt.setdefault(digest, p)
                keys.append(("p", digest))
            else:
                keys.append(("", ""))
        found: dict[tuple[str, str], int] = {}
        for goal_id, external in Goal.objects.filter(
            project=self.project, external_id__in=list(by_external)
        ).values_list("id", "external_id"):
            found[("e", external)] = goal_id
        for goal_id, digest in (
            Goal.objects.filter(project=self.project, prompt_sha256__in=list(by_prompt))
            .order_by("id")
            .values_list("id", "prompt_sha256")
        ):
            found.setdefault(("p", digest), goal_id)
        missing = [(("e", k), p) for k, p in by_external.items() if ("e", k) not in found]
        missing += [(("p", k), p) for k, p in by_prompt.items() if ("p", k) not in found]
        if missing:
            goals = [
                Goal(
                    project=self.project,
                    external_id=key[1] if key[0] == "e" else "",
                    prompt=_clean_text(p.goal_text) or "",
                    prompt_sha256=sha256_hex(p.goal_text.encode("utf-8", "surrogatepass")),
                    band=(p.goal or {}).get("band", ""),
                    tags=(p.goal or {}).get("tags", []),
                    expected_actions=(p.goal or {}).get("expected_actions"),
                    expected_outputs=(p.goal or {}).get("expected_outputs"),
                )
                for key, p in missing
            ]
            created = Goal.objects.bulk_create(goals)
            for (key, _), goal in zip(missing, created, strict=True):
                found[key] = goal.pk
        return [found.get(key) if key[0] else None for key in keys]

    def _task_ids(self, runs: list[Prepared]) -> list[int | None]:
        tasks = [p.task_ref for p in runs]
        wanted = {t["instance_id"] for t in tasks if t}
        if not wanted:
            return [None] * len(runs)
        found = dict(
            SweTask.objects.filter(project=self.project, instance_id__in=wanted).values_list("instance_id", "id")
        )
        return [found.get(t["instance_id"]) if t else None for t in tasks]

    def _tool_of(self, step: RunStep) -> tuple[int | None, bool | None]:
        if step.kind != "tool_call" or self.tools is None:
            return None, None
        tool_id = self.tools.get(step.tool_name)
        return tool_id, tool_id is not None

    def _trajectory_values(
        self, p: PreparedRun, goal_id: int | None, task_id: int | None, unknown: int
    ) -> dict[str, Any]:
        run = p.run
        reward = run.outcome.get("reward") if isinstance(run.outcome, dict) else None
        return {
            "project_id": self.project.pk,
            "goal_id": goal_id,
            "swe_task_id": task_id,
            "source_file_id": self.source_file.pk if self.source_file else None,
            "source_pointer": p.record.where[:100],
            "source_format": self.importer_name,
            "importer_version": self.importer_version,
            "model_name": run.model[:200],
            "scaffold": run.scaffold[:100],
            "rollout_id": run.rollout_id[:200],
            "trial": run.trial,
            "goal_text": _clean_text(run.goal_text) or "",
            "content_sha256": p.content_sha256,
            "payload": p.payload,
            "payload_sha256": p.payload_sha256,
            "chat": p.chat,
            "final_answer": _clean_text(run.final_answer) or "",
            "outcome_reward": float(reward)
            if isinstance(reward, int | float) and not isinstance(reward, bool)
            else None,
            "outcome": run.outcome,
            "metadata": run.metadata,
            "alternatives": run.alternatives,
            "status": TrajectoryStatus.IMPORTED,
            "step_count": len(run.steps),
            "unknown_tool_count": unknown,
        }

    def _step_row(self, p: PreparedRun, i: int, step: RunStep, state: Any, arguments: Any) -> tuple[Any, ...]:
        """The step's values in STEP_FIELDS order, with its JSON columns as given."""
        tool_id, known = self._tool_of(step)
        started, ended = p.times[i]
        start, end = p.spans[i]
        clean = p.nul_free
        return (
            i,
            step.kind,
            step.turn_id[:100],
            state,
            step.plan if clean else _clean_text(step.plan),
            step.tool_name[:200],
            step.tool_call_id[:200],
            tool_id,
            known,
            arguments,
            step.arguments_raw if clean else _clean_text(step.arguments_raw),
            step.arguments_error[:300],
            step.observation if clean else _clean_text(step.observation),
            step.reflection if clean else _clean_text(step.reflection),
            step.success_flag,
            started,
            ended,
            step.latency_ms,
            step.prompt_tokens,
            step.completion_tokens,
            step.cost_usd,
            start,
            end,
        )

    def _step_rows(self, p: PreparedRun, tx: Transformer) -> tuple[bytearray, list[int]]:
        """The run's step rows in binary COPY format with 0 for their trajectory id, and where in them
        each row's id is (psycopg's C row writer, with `step_transformer()`'s dumpers)."""
        rows = bytearray()
        offsets = []
        for i, (step, (state, arguments)) in enumerate(zip(p.run.steps, p.step_json, strict=True)):
            offsets.append(len(rows) + _ID_AT)
            format_row_binary((0, *self._step_row(p, i, step, state, arguments)), tx, rows)
        return rows, offsets

    @staticmethod
    def step_transformer() -> Transformer:
        """What renders step rows in binary COPY format: a dumper of each column's type (STEP_TYPES),
        the jsonb columns taking the JSON text that `prepare` dumped."""
        return _transformer([STEP_TYPES.get(name, "text") for name in ("trajectory_id", *STEP_FIELDS)])

    @classmethod
    def row_transformers(cls) -> RowTransformers:
        """The step rows' transformer and that of a trajectory row's tail (TRAJECTORY_FIELDS[3:], its jsonb
        fields as JSON text): made where the database connection is, before parse workers fork."""
        tail = _transformer([TRAJECTORY_TYPES.get(name, "text") for name in TRAJECTORY_FIELDS[3:]])
        return RowTransformers(cls.step_transformer(), tail)

    def _unknown(self, run: ParsedRun) -> int:
        if self.tools is None:
            return 0
        return sum(1 for s in run.steps if s.kind == "tool_call" and s.tool_name not in self.tools)

    def _bulk_create(
        self, runs: list[PreparedRun], goal_ids: list[int | None], task_ids: list[int | None]
    ) -> tuple[list[int], int, int]:
        trajectories = []
        unknown_total = 0
        for p, goal_id, task_id in zip(runs, goal_ids, task_ids, strict=True):
            unknown = self._unknown(p.run)
            unknown_total += unknown
            values = self._trajectory_values(p, goal_id, task_id, unknown)
            for key in ("metadata", "outcome", "alternatives"):
                values[key] = _scrub_nul(values[key])
            trajectories.append(Trajectory(**values))
        Trajectory.objects.bulk_create(trajectories, batch_size=500)
        steps = []
        for p, trajectory in zip(runs, trajectories, strict=True):
            for i, step in enumerate(p.run.steps):
                row = self._step_row(p, i, step, _scrub_nul(step.state), _scrub_nul(step.arguments))
                values = dict(zip(STEP_FIELDS, row, strict=True))
                steps.append(Step(trajectory_id=trajectory.pk, **values))
        Step.objects.bulk_create(steps, batch_size=1000)
        return [t.pk for t in trajectories], len(steps), unknown_total

    def _copy(
        self, runs: list[Prepared], goal_ids: list[int | None], task_ids: list[int | None]
    ) -> tuple[list[int], int, int]:
        now = timezone.now()
        ids = _next_ids(Trajectory._meta.db_table, len(runs))
        with connection.cursor() as wrapper:
            cursor = wrapper.cursor
            unknown_total = 0
            # Rows are rendered here with the function Copy.write_row uses (or come rendered from
            # a parse worker) and handed over in blocks with Copy.write.
            # The trajectory rows go in binary COPY format: the payload (a compressed blob of a few
            # KB per record) is sent as it is, where text COPY would send it as escaped hex, twice
            # its size, for the server to parse character by character.
            with cursor.copy(
                f"COPY {Trajectory._meta.db_table} ({TRAJECTORY_COLUMNS}) FROM STDIN (FORMAT BINARY)",
                writer=self._writer(cursor),
            ) as copy:
                tx = self.row_transformers() if any(isinstance(p, PreparedRun) for p in runs) else None
                out = bytearray(_BINARY_SIGNATURE)
                end = _binary_value("timestamptz", now)
                for p, trajectory_id, goal_id, task_id in zip(runs, ids, goal_ids, task_ids, strict=True):
                    out += _BINARY_ROW
                    out += _binary_value("int8", trajectory_id)
                    out += _binary_value("int8", self.project.pk)
                    out += _binary_value("int8", goal_id)
                    out += _binary_value("int8", task_id)
                    if isinstance(p, RenderedRun):
                        unknown_total += p.unknown
                        out += p.trajectory_tail
                    else:
                        unknown = self._unknown(p.run)
                        unknown_total += unknown
                        assert tx is not None
                        out += _tail(self._trajectory_values(p, goal_id, task_id, unknown), tx.trajectory)
                    out += end
                    if len(out) >= COPY_BLOCK_BYTES:
                        copy.write(out)
                        out = bytearray()
                out += _BINARY_TRAILER
                copy.write(out)
            count = 0
            # Step rows go in binary COPY format too: psycopg renders them faster than COPY text (no
            # escaping), and PostgreSQL reads them faster (no parsing of escapes, numbers and dates).
            with cursor.copy(
                f"COPY {Step._meta.db_table} ({STEP_COLUMNS}) FROM STDIN (FORMAT BINARY)",
                writer=self._writer(cursor),
            ) as copy:
                out = bytearray(_BINARY_SIGNATURE)
                rows: bytes | bytearray | pickle.PickleBuffer
                for p, trajectory_id in zip(runs, ids, strict=True):
                    if isinstance(p, RenderedRun):
                        rows, offsets = p.step_rows, p.step_offsets
                    else:
                        assert tx is not None
                        rows, offsets = self._step_rows(p, tx.steps)
                    start = len(out)
                    out += rows
                    for offset in offsets:  # each row's trajectory id, in place of its 0
                        _ID.pack_into(out, start + offset, trajectory_id)
                    count += p.step_count
                    if len(out) >= COPY_BLOCK_BYTES:
                        copy.write(out)
                        out = bytearray()
                out += _BINARY_TRAILER
                copy.write(out)
        return ids, count, unknown_total

    @staticmethod
    def _writer(cursor: Any) -> LibpqWriter:
        return LibpqWriter(cursor, flush_threshold=COPY_FLUSH_BYTES)


class RowTransformers(NamedTuple):
    steps: Transformer
    trajectory: Transformer


def _transformer(types: list[str]) -> Transformer:
    """A transformer that renders rows of these PostgreSQL types in binary COPY format (this connection's
    dumpers, jsonb taking JSON text)."""
    connection.ensure_connection()
    conn = connection.connection
    adapters = adapt.AdaptersMap(conn.adapters)
    adapters.register_dumper(_JsonText, _JsonTextBinaryDumper)

    class Context:  # an AdaptContext: this connection's, with the dumper of JSON text
        def __init__(self) -> None:
            self.adapters = adapters
            self.connection = conn

    tx = adapt.Transformer(Context())
    tx.set_dumper_types([pg_types[kind].oid for kind in types], pq.Format.BINARY)
    return tx


def _next_ids(table: str, count: int) -> list[int]:
    """`count` ids from the table's id sequence (PostgreSQL), taken ahead of the rows."""
    with connection.cursor() as cursor:
        sequence = _sequences.get(table)
        if sequence is None:  # looked up once: in the query, it was looked up for every id
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
            sequence = _sequences[table] = cursor.fetchone()[0]
        cursor.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)", [sequence, count])
        return [row[0] for row in cursor.fetchall()]


_sequences: dict[str, str] = {}  # table → its id sequence


TRAJECTORY_FIELDS = (
    "project_id",
    "goal_id",
    "swe_task_id",
    "source_file_id",
    "source_pointer",
    "source_format",
    "importer_version",
    "model_name",
    "scaffold",
    "rollout_id",
    "trial",
    "goal_text",
    "content_sha256",
    "payload",
    "payload_sha256",
    "chat",
    "final_answer",
    "outcome_reward",
    "outcome",
    "metadata",
    "alternatives",
    "status",
    "step_count",
    "unknown_tool_count",
)
TRAJECTORY_COLUMNS = ", ".join(("id", *TRAJECTORY_FIELDS, "created_at"))


# Binary COPY (https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4): the
# header, each row's field count, each field as its length and bytes (-1 for NULL), the trailer.
_BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_BINARY_TRAILER = b"\xff\xff"
_BINARY_ROW = struct.pack(">h", 2 + len(TRAJECTORY_FIELDS))  # id, the fields, created_at
_BINARY_NULL = b"\xff\xff\xff\xff"
_INT8 = struct.Struct(">iq")
_ID = struct.Struct(">q")
_ID_AT = 2 + 4  # a step row's trajectory id: after the row's field count and the field's length
_INT4 = struct.Struct(">ii")
_FLOAT8 = struct.Struct(">id")
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# Each trajectory field's PostgreSQL type, as row_transformers() dumps it (and _binary_value writes it).
TRAJECTORY_TYPES = {
    "project_id": "int8",
    "goal_id": "int8",
    "swe_task_id": "int8",
    "source_file_id": "int8",
    "trial": "int4",
    "payload": "bytea",
    "chat": "bytea",
    "outcome_reward": "float8",
    "outcome": "jsonb",
    "metadata": "jsonb",
    "alternatives": "jsonb",
    "step_count": "int4",
    "unknown_tool_count": "int4",
}  # the others are text (varchar or text)
_TAIL_JSON = frozenset(name for name, kind in TRAJECTORY_TYPES.items() if kind == "jsonb")


def _binary_value(kind: str, value: Any) -> bytes:
    """One field in binary COPY format: `kind` is its type (TRAJECTORY_TYPES), `value` the Python
    value (for jsonb, the JSON value, dumped here as `_json_text` dumps it)."""
    if value is None:
        return _BINARY_NULL
    if kind == "int8":
        return _INT8.pack(8, value)
    if kind == "int4":
        return _INT4.pack(4, value)
    if kind == "float8":
        return _FLOAT8.pack(8, value)
    if kind == "timestamptz":
        return _INT8.pack(8, (value - _PG_EPOCH) // _MICROSECOND)
    if kind == "bytea":
        data = bytes(value)
    elif kind == "jsonb":
        data = b"\x01" + (_json_text(value) or "").encode()  # jsonb's binary form: version 1, then the text
    else:
        data = value.encode()
    return struct.pack(">i", len(data)) + data


def _tail(values: dict[str, Any], tx: Transformer) -> memoryview:
    """A trajectory row from `source_file_id` on (TRAJECTORY_FIELDS[3:]) in binary COPY format: psycopg's C
    row writer (`tx`, row_transformers().trajectory) renders them as a row, less its field count."""
    row = bytearray()
    format_row_binary(
        tuple(_json_text(values[f]) if f in _TAIL_JSON else values[f] for f in TRAJECTORY_FIELDS[3:]), tx, row
    )
    return memoryview(row)[2:]


STEP_FIELDS = (
    "index",
    "kind",
    "turn_id",
    "state",
    "plan",
    "tool_name",
    "tool_call_id",
    "tool_id",
    "tool_known",
    "arguments",
    "arguments_raw",
    "arguments_error",
    "observation",
    "reflection",
    "success_flag",
    "started_at",
    "ended_at",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "char_start",
    "char_end",
)
STEP_COLUMNS = ", ".join(("trajectory_id", *(f'"{c}"' for c in STEP_FIELDS)))
# Each step column's PostgreSQL type, as `step_transformer` dumps it; the others are text (varchar or text).
STEP_TYPES = {
    "trajectory_id": "int8",
    "index": "int4",
    "state": "jsonb",
    "tool_id": "int8",
    "tool_known": "bool",
    "arguments": "jsonb",
    "success_flag": "bool",
    "started_at": "timestamptz",
    "ended_at": "timestamptz",
    "latency_ms": "float8",
    "prompt_tokens": "int4",
    "completion_tokens": "int4",
    "cost_usd": "float8",
    "char_start": "int4",
    "char_end": "int4",
}


class _JsonText(str):
    """Only a key for `_JsonTextBinaryDumper` in an adapters map (rows carry plain str)."""


class _JsonTextBinaryDumper(adapt.Dumper):
    """JSON text, already dumped, as a jsonb field in binary format: version 1, then the text."""

    format = pq.Format.BINARY
    oid = pg_types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        return b"\x01" + obj.encode()
