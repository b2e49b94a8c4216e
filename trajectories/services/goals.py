"""Goal seeding (pipeline stage 2): goals by hand or in bulk (CSV, JSONL) and τ-bench tasks.

SWE-bench instances, leak lists and the contamination scan are in `trajectories.services.swe_tasks`.

Bulk imports never stop at a bad row: valid rows are written (in one transaction, after the whole
file has been read), invalid rows come back located (line, column or field, why). Re-importing a
file changes nothing: goals are matched by `external_id` (rows without one by prompt).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

import orjson
from django.core.exceptions import ValidationError
from django.db import transaction

from core.models import Project
from core.services import UserLike, audit_record
from trajectories.formats.base import RecordError
from trajectories.models import Band, Goal
from trajectories.services._rows import (
    MAX_FILE_BYTES,
    ImportReport,
    RowError,
    errors_of,
    has_nul,
    json_records,
    located,
    read_bounded,
)
from trajectories.services.swe_tasks import swe_tasks_import

MAX_TAGS = 50
MAX_TAG_LENGTH = 64
# Expected actions are stored as the project's [{name, arguments}] (τ-bench's kwargs are renamed);
# τ²-bench actions may also carry these keys, kept as given.
ACTION_EXTRA_KEYS = ("requestor", "compare_args", "action_id", "info")
GOAL_FIELDS = ("external_id", "prompt", "band", "tags", "expected_actions", "expected_outputs")
GOAL_ALIASES = {
    "id": "external_id",
    "goal_id": "external_id",
    "instruction": "prompt",
    "actions": "expected_actions",
    "outputs": "expected_outputs",
}
FORMATS = {
    "csv": "Goals, CSV",
    "jsonl": "Goals, JSONL (or a JSON array)",
    "tau-bench": "τ-bench tasks (JSON list, JSONL or a results file)",
    "swe-bench": "SWE-bench instances (JSON list or JSONL)",
}
_SLUG = re.compile(r"[a-z0-9][a-z0-9_.-]{0,39}")
csv.field_size_limit(MAX_FILE_BYTES)  # a long prompt is a goal, not a parse error (the file itself is bounded)


def prompt_sha256(prompt: str) -> str:
    """The same key the trajectory importer uses to find a run's goal by its text."""
    return hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).hexdigest()


# ---------------------------------------------------------------- goal validation


def _text_id(value: Any, errors: dict[str, str], name: str, limit: int) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        errors[name] = "must be a string"
        return ""
    value = value.strip()
    if len(value) > limit:
        errors[name] = f"must be at most {limit} characters (it has {len(value)})"
    elif any(ord(c) < 32 for c in value):
        errors[name] = "must not contain control characters"
    return value


def _clean_tags(value: Any, errors: dict[str, str]) -> list[str]:
    if value is None or value == "":
        return []
    if not isinstance(value, list):
        errors["tags"] = "must be a list of strings"
        return []
    tags: list[str] = []
    for i, tag in enumerate(value):
        if not isinstance(tag, str) or not tag.strip():
            errors["tags"] = f"tag {i + 1} must be a non-empty string"
            return []
        tag = " ".join(tag.split()).lower()
        if len(tag) > MAX_TAG_LENGTH or any(c in tag for c in ",;|") or any(ord(c) < 32 for c in tag):
            errors["tags"] = f"tag {tag[:MAX_TAG_LENGTH]!r}: at most {MAX_TAG_LENGTH} characters, no , ; or |"
            return []
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        errors["tags"] = f"at most {MAX_TAGS} tags (there are {len(tags)})"
    return tags


def _clean_actions(value: Any, errors: dict[str, str]) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        errors["expected_actions"] = "must be a JSON list of {name, arguments} objects"
        return None
    actions = []
    for i, action in enumerate(value):
        where = f"expected_actions/{i}"
        if not isinstance(action, dict):
            errors[where] = "must be an object {name, arguments}"
            return None
        unknown = sorted(set(action) - {"name", "arguments", "kwargs", *ACTION_EXTRA_KEYS})
        if unknown:
            errors[where] = f"unknown key {unknown[0]!r} (an action has name and arguments)"
            return None
        if "kwargs" in action and "arguments" in action:
            errors[where] = "give arguments or kwargs (τ-bench's name for them), not both"
            return None
        name = action.get("name")
        if not isinstance(name, str) or not name.strip():
            errors[f"{where}/name"] = "must be a non-empty string"
            return None
        key = "kwargs" if "kwargs" in action else "arguments"
        arguments = action.get(key)
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            errors[f"{where}/{key}"] = "must be an object"
            return None
        extra = {k: action[k] for k in ACTION_EXTRA_KEYS if k in action}
        actions.append({"name": name.strip(), "arguments": arguments, **extra})
    return actions


def _clean_outputs(value: Any, errors: dict[str, str]) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        errors["expected_outputs"] = "must be a JSON list of strings"
        return None
    for i, output in enumerate(value):
        if not isinstance(output, str):
            errors[f"expected_outputs/{i}"] = f'must be a string, not {type(output).__name__} (quote it: "{output}")'
            return None
    return list(value)


def goal_values_clean(raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Validated goal fields and {field or field/path: why} for what is wrong."""
    errors: dict[str, str] = {}
    prompt = raw.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        errors["prompt"] = "must be a non-empty string"
        prompt = ""
    band = raw.get("band") or ""
    if not isinstance(band, str) or band.strip().lower() not in {"", *Band.values}:
        errors["band"] = f"must be one of {', '.join(Band.values)} (or empty), not {band!r}"
        band = ""
    values = {
        "external_id": _text_id(raw.get("external_id"), errors, "external_id", 200),
        "prompt": prompt,
        "band": band.strip().lower(),
        "tags": _clean_tags(raw.get("tags"), errors),
        "expected_actions": _clean_actions(raw.get("expected_actions"), errors),
        "expected_outputs": _clean_outputs(raw.get("expected_outputs"), errors),
    }
    for name, value in values.items():
        if name not in errors and has_nul(value):
            errors[name] = "must not contain a NUL character"
    return values, errors


def _check_external_id_free(project: Project, external_id: str, goal_pk: int | None = None) -> None:
    if not external_id:
        return
    others = Goal.objects.filter(project=project, external_id=external_id)
    clash = (others.exclude(pk=goal_pk) if goal_pk is not None else others).first()
    if clash is not None:
        raise ValidationError({"external_id": f"goal #{clash.pk} already has the external id {external_id!r}"})


def _goal_record(goal: Goal) -> dict[str, Any]:
    return {name: getattr(goal, name) for name in GOAL_FIELDS}


@transaction.atomic
def goal_create(
    *,
    actor: UserLike,
    project: Project,
    prompt: str,
    band: str = "",
    tags: list[str] | None = None,
    expected_actions: Any = None,
    expected_outputs: Any = None,
    external_id: str = "",
) -> Goal:
    values, errors = goal_values_clean(
        {
            "prompt": prompt,
            "band": band,
            "tags": tags or [],
            "expected_actions": expected_actions,
            "expected_outputs": expected_outputs,
            "external_id": external_id,
        }
    )
    if errors:
        raise ValidationError(errors)
    _check_external_id_free(project, values["external_id"])
    goal = Goal.objects.create(project=project, prompt_sha256=prompt_sha256(values["prompt"]), **values)
    audit_record(actor=actor, verb="goal.create", target=goal, project=project, after=_goal_record(goal))
    return goal


@transaction.atomic
def goal_update(
    *,
    actor: UserLike,
    goal: Goal,
    prompt: str,
    band: str = "",
    tags: list[str] | None = None,
    expected_actions: Any = None,
    expected_outputs: Any = None,
    external_id: str = "",
) -> Goal:
    goal = Goal.objects.select_for_update().get(pk=goal.pk)
    values, errors = goal_values_clean(
        {
            "prompt": prompt,
            "band": band,
            "tags": tags or [],
            "expected_actions": expected_actions,
            "expected_outputs": expected_outputs,
            "external_id": external_id,
        }
    )
    if errors:
        raise ValidationError(errors)
    _check_external_id_free(goal.project, values["external_id"], goal.pk)
    changed = [name for name, value in values.items() if getattr(goal, name) != value]
    if not changed:
        return goal
    before = {name: getattr(goal, name) for name in changed}
    for name in changed:
        setattr(goal, name, values[name])
    if "prompt" in changed:
        goal.prompt_sha256 = prompt_sha256(goal.prompt)
        changed.append("prompt_sha256")
    goal.save(update_fields=changed)
    after = {name: values[name] for name in changed if name in values}
    audit_record(actor=actor, verb="goal.update", target=goal, project=goal.project, before=before, after=after)
    return goal


# ---------------------------------------------------------------- goals in bulk


@dataclass(slots=True)
class _GoalRow:
    where: str
    line: int | None
    values: dict[str, Any]


def _csv_cell_json(text: str, name: str, errors: dict[str, str]) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        errors[name] = f"not valid JSON: {exc.msg.split(':')[0]} (character {exc.pos + 1} of the cell)"
        return None


def _csv_cell(name: str, text: str, errors: dict[str, str]) -> Any:
    text = text.strip()
    if name in {"external_id", "band"}:
        return text
    if name == "prompt":
        return text
    if name == "tags":
        if text.startswith("["):
            return _csv_cell_json(text, name, errors)
        return [t for t in re.split(r"[;,|]", text) if t.strip()]
    if not text:
        return None
    if name == "expected_outputs" and not text.startswith("["):
        return [t.strip() for t in text.split(";") if t.strip()]
    return _csv_cell_json(text, name, errors)


def _goal_rows_csv(data: bytes, report: ImportReport) -> list[_GoalRow]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ValidationError(f"line {line}: not valid UTF-8 (byte 0x{data[exc.start]:02x})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except (csv.Error, StopIteration) as exc:
        raise ValidationError(f"line 1: cannot read the header row: {exc}") from None
    names: list[str] = []
    for column, cell in enumerate(header, start=1):
        name = GOAL_ALIASES.get(cell.strip().lower(), cell.strip().lower())
        if name not in GOAL_FIELDS:
            raise ValidationError(
                f"line 1, column {column}: unknown column {cell.strip()!r}; the columns are {', '.join(GOAL_FIELDS)}"
            )
        if name in names:
            raise ValidationError(f"line 1, column {column}: column {name!r} appears twice")
        names.append(name)
    if "prompt" not in names:
        raise ValidationError("line 1: the header needs a 'prompt' column")
    rows: list[_GoalRow] = []
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            report.errors.append(RowError(where=f"line {line}", line=line, message=f"cannot read the row: {exc}"))
            break
        if not any(c.strip() for c in cells):
            continue
        where = f"line {line}"
        if len(cells) != len(names):
            message = f"has {len(cells)} cells, the header has {len(names)} columns"
            report.errors.append(RowError(where=where, line=line, message=message))
            continue
        parse_errors: dict[str, str] = {}
        raw = {name: _csv_cell(name, cell, parse_errors) for name, cell in zip(names, cells, strict=True)}
        values, errors = goal_values_clean(raw)
        errors = parse_errors | {k: v for k, v in errors.items() if k.split("/")[0] not in parse_errors}
        if errors:
            for name, message in errors.items():
                column = names.index(name.split("/")[0]) + 1
                report.errors.append(RowError(where=where, line=line, message=message, field=name, column=column))
            continue
        rows.append(_GoalRow(where, line, values))
    return rows


def _goal_rows_json(data: bytes, report: ImportReport) -> list[_GoalRow]:
    rows: list[_GoalRow] = []
    for record, value in json_records(data):
        if isinstance(record, RecordError):
            report.errors.append(RowError(where=record.where, line=record.line, message=record.message))
            continue
        if not isinstance(value, dict):
            report.errors.append(located(record, f"expected an object, found {type(value).__name__}"))
            continue
        raw: dict[str, Any] = {}
        unknown = []
        for key, item in value.items():
            name = GOAL_ALIASES.get(key, key)
            if name in GOAL_FIELDS:
                raw[name] = item
            else:
                unknown.append(key)
        values, errors = goal_values_clean(raw)
        errors.update({key: f"unknown key; the keys are {', '.join(GOAL_FIELDS)}" for key in unknown})
        if errors:
            report.errors.extend(errors_of(record, errors))
            continue
        rows.append(_GoalRow(record.where, record.line, values))
    return rows


def _goal_rows_tau(data: bytes, report: ImportReport, *, env: str, band: str, tags: list[str]) -> list[_GoalRow]:
    """τ-bench tasks (FORMATS.md §1.1), or the tasks embedded in a results file (`info.task`)."""
    rows: list[_GoalRow] = []
    for record, value in json_records(data):
        if isinstance(record, RecordError):
            report.errors.append(RowError(where=record.where, line=record.line, message=record.message))
            continue
        if not isinstance(value, dict):
            report.errors.append(located(record, f"expected a task object, found {type(value).__name__}"))
            continue
        task, task_id = value, record.index
        if "instruction" not in value and isinstance(value.get("info"), dict):
            task_id = value.get("task_id", record.index)
            task = value["info"].get("task")
            if not isinstance(task, dict):
                why = value["info"].get("error")
                message = f"the run has no task (it failed: {str(why)[:200]})" if why else "no task at /info/task"
                report.errors.append(located(record, message, "info/task"))
                continue
        if isinstance(task_id, bool) or not isinstance(task_id, int | str):
            report.errors.append(located(record, "must be an integer or a string", "task_id"))
            continue
        raw = {
            "external_id": f"tau-bench:{env}:{task_id}" if env else f"tau-bench:{task_id}",
            "prompt": task.get("instruction"),
            "band": band,
            "tags": tags,
            "expected_actions": task.get("actions", []),
            "expected_outputs": task.get("outputs", []),
        }
        values, errors = goal_values_clean(raw)
        errors = {_tau_key(k): message for k, message in errors.items()}
        if errors:
            report.errors.extend(errors_of(record, errors))
            continue
        rows.append(_GoalRow(record.where, record.line, values))
    return rows


_TAU_KEYS = {"prompt": "instruction", "expected_actions": "actions", "expected_outputs": "outputs"}


def _tau_key(key: str) -> str:
    """A goal field path in the τ-bench task's own words ("expected_actions/1/name" → "actions/1/name")."""
    head, slash, rest = key.partition("/")
    return _TAU_KEYS.get(head, head) + slash + rest


def _goals_write(*, actor: UserLike, project: Project, rows: list[_GoalRow], report: ImportReport, source: str) -> None:
    """Create or update goals for valid rows: by external_id, else by prompt; identical rows change nothing."""
    firsts: dict[tuple[str, str], _GoalRow] = {}
    wanted: list[_GoalRow] = []
    for row in rows:
        v = row.values
        key = ("e", v["external_id"]) if v["external_id"] else ("p", prompt_sha256(v["prompt"]))
        first = firsts.get(key)
        if first is None:
            firsts[key] = row
            wanted.append(row)
        elif first.values == v:
            report.unchanged += 1  # e.g. one τ-bench task in every trial of a results file
        else:
            what = f"external id {v['external_id']!r}" if v["external_id"] else "prompt"
            message = f"same {what} as {first.where}, different content"
            report.errors.append(RowError(where=row.where, line=row.line, message=message, field="external_id"))
    by_external = {
        g.external_id: g
        for g in Goal.objects.filter(
            project=project, external_id__in=[r.values["external_id"] for r in wanted if r.values["external_id"]]
        )
    }
    hashes = {prompt_sha256(r.values["prompt"]) for r in wanted}
    by_prompt: dict[str, Goal] = {}
    for g in Goal.objects.filter(project=project, prompt_sha256__in=hashes).order_by("id"):
        current = by_prompt.get(g.prompt_sha256)
        if current is None or (current.external_id and not g.external_id):
            by_prompt[g.prompt_sha256] = g  # prefer a goal without an external id
    fresh: list[Goal] = []
    changed: dict[int, Goal] = {}
    changed_fields: set[str] = set()
    for row in wanted:
        v = row.values
        digest = prompt_sha256(v["prompt"])
        goal = by_external.get(v["external_id"]) if v["external_id"] else by_prompt.get(digest)
        if goal is None and v["external_id"]:
            adoptable = by_prompt.get(digest)
            if adoptable is not None and adoptable.external_id == "" and adoptable.pk not in changed:
                goal = adoptable  # a goal the trajectory importer made from a run's text: give it its id
        if goal is None:
            fresh.append(Goal(project=project, prompt_sha256=digest, **v))
            continue
        if not v["external_id"]:
            v = {**v, "external_id": goal.external_id}  # a row without an id never takes one away
        diff = [name for name in GOAL_FIELDS if getattr(goal, name) != v[name]]
        if not diff:
            report.unchanged += 1
            continue
        for name in diff:
            setattr(goal, name, v[name])
        goal.prompt_sha256 = digest
        changed[goal.pk] = goal
        changed_fields.update(diff)
    Goal.objects.bulk_create(fresh, batch_size=500)
    if changed:
        Goal.objects.bulk_update(list(changed.values()), [*sorted(changed_fields), "prompt_sha256"], batch_size=500)
    report.created += len(fresh)
    report.updated += len(changed)
    audit_record(
        actor=actor,
        verb="goal.import",
        target=project,
        project=project,
        after={
            "source": source,
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "rejected": report.rejected,
        },
    )


@transaction.atomic
def goals_import_csv(*, actor: UserLike, project: Project, stream: IO[bytes], name: str = "goals.csv") -> ImportReport:
    """Columns (header row, any order): prompt (required), external_id, band, tags (separated by ; , or |, or a
    JSON list), expected_actions (JSON list of {name, kwargs}), expected_outputs (JSON list, or separated by ;)."""
    report = ImportReport(kind="goals")
    rows = _goal_rows_csv(read_bounded(stream), report)
    _goals_write(actor=actor, project=project, rows=rows, report=report, source=f"csv:{name}")
    return report


@transaction.atomic
def goals_import_jsonl(
    *, actor: UserLike, project: Project, stream: IO[bytes], name: str = "goals.jsonl"
) -> ImportReport:
    """One object per line (or a JSON array) with the keys of the CSV columns; expected JSON stays JSON."""
    report = ImportReport(kind="goals")
    rows = _goal_rows_json(read_bounded(stream), report)
    _goals_write(actor=actor, project=project, rows=rows, report=report, source=f"jsonl:{name}")
    return report


def _slug(value: str, what: str) -> str:
    value = value.strip().lower()
    if not _SLUG.fullmatch(value):
        raise ValidationError(
            {what: f"must be a short name of letters, digits, '.', '_' or '-' (e.g. airline), not {value!r}"}
        )
    return value


@transaction.atomic
def tau_bench_tasks_import(
    *,
    actor: UserLike,
    project: Project,
    stream: IO[bytes],
    env: str = "",
    band: str = "",
    tags: list[str] | None = None,
    name: str = "tasks.json",
) -> ImportReport:
    """τ-bench `Task`s → goals: instruction → prompt, actions → expected actions, outputs → expected outputs.

    A task's index is its τ-bench task id, only unique within one environment (FORMATS.md gotcha 1),
    so the goal's external id is `tau-bench:<env>:<task id>` — the id the τ-bench results importer
    gives runs of that task, so imported runs attach to the seeded goal (`tau-bench:<task id>`
    without an env, as there). The split is not in a results file, so it is not in the id either:
    seed one split per env in a project. A results file (records with `task_id` and `info.task`)
    works too: each task is taken once, from its first trial.
    """
    env = _slug(env, "env") if env.strip() else ""
    # The env is a tag too, as the results importer tags the goals it makes.
    extra, errors = goal_values_clean({"prompt": "-", "band": band, "tags": [*([env] if env else []), *(tags or [])]})
    if errors:
        raise ValidationError(errors)
    report = ImportReport(kind="goals")
    rows = _goal_rows_tau(read_bounded(stream), report, env=env, band=extra["band"], tags=extra["tags"])
    _goals_write(actor=actor, project=project, rows=rows, report=report, source=f"tau-bench:{name}")
    return report


def goals_file_import(
    *,
    actor: UserLike,
    project: Project,
    stream: IO[bytes],
    name: str,
    format: str,
    env: str = "",
    band: str = "",
    tags: list[str] | None = None,
) -> ImportReport:
    """A bulk file in one of FORMATS through its importer (`env`, `band` and `tags` are τ-bench's): what the
    import page and the API both call."""
    common: dict[str, Any] = {"actor": actor, "project": project, "stream": stream, "name": name}
    if format == "tau-bench":
        return tau_bench_tasks_import(**common, env=env, band=band, tags=tags)
    if format == "swe-bench":
        return swe_tasks_import(**common)
    if format == "csv":
        return goals_import_csv(**common)
    if format == "jsonl":
        return goals_import_jsonl(**common)
    raise ValidationError({"format": f"one of {', '.join(FORMATS)}"})
