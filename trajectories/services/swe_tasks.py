"""SWE-bench instances (pipeline stage 2) and the contamination scan that keeps leaked SWE tasks out of
annotation: leak lists, normalisation and hash keys, the scan, and the PM's override.

Bulk imports never stop at a bad row: valid rows are written (in one transaction, after the whole
file has been read), invalid rows come back located (line or field, why). Re-importing a file changes
nothing: SWE tasks are matched by `instance_id`.

Contamination keys (also explained on the SWE tasks page):
- instance id: the string itself, surrounding whitespace removed, compared exactly.
- problem statement: Unicode NFKC, then case folding (`str.casefold`, a stronger lower case),
  then every run of whitespace (spaces, tabs, line breaks, Unicode spaces) becomes one space and
  leading / trailing whitespace is removed; the key is the sha256 hex of the UTF-8 bytes.
- patch: line endings CRLF and CR become LF, trailing spaces and tabs are removed from every
  line, trailing empty lines are removed and one final LF is added; the key is the sha256 hex of
  the UTF-8 bytes. Case and inner spacing are kept: code is case- and space-sensitive.
An empty statement or patch has no key (two empty patches are not a leak).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction

from core.models import Project
from core.services import UserLike, audit_record
from trajectories.formats.base import RecordError
from trajectories.formats.reading import sniff_container
from trajectories.models import LeakList, SweTask
from trajectories.services._rows import (
    ImportReport,
    RowError,
    errors_of,
    has_nul,
    json_records,
    located,
    read_bounded,
)

MAX_REASON = 2000
LEAK_KEYS = ("instance_id", "patch_sha256", "problem_sha256")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_LINE_END = re.compile(r"\r\n?")
_TRAILING = re.compile(r"[ \t]+$", re.MULTILINE)
_LEAK_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*[:,\t]\s*(.*)")


# ---------------------------------------------------------------- normalisation


def normalise_problem_statement(text: str) -> str:
    """NFKC, case-folded, whitespace runs collapsed to one space, stripped (see the module docstring)."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def normalise_patch(patch: str) -> str:
    """LF line endings, no trailing spaces or tabs on any line, exactly one final LF ('' stays '')."""
    text = _TRAILING.sub("", _LINE_END.sub("\n", patch)).rstrip("\n")
    return text + "\n" if text else ""


def problem_sha256(text: str) -> str:
    normalised = normalise_problem_statement(text)
    return hashlib.sha256(normalised.encode("utf-8", "surrogatepass")).hexdigest() if normalised else ""


def patch_sha256(patch: str) -> str:
    normalised = normalise_patch(patch)
    return hashlib.sha256(normalised.encode("utf-8", "surrogatepass")).hexdigest() if normalised else ""


@dataclass(slots=True)
class ScanReport:
    scanned: int = 0
    flagged: int = 0
    changed: list[str] = field(default_factory=list)  # instance ids whose flags changed
    overrides_cleared: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- SWE-bench instances

SWE_FIELDS = (
    "instance_id",
    "repo",
    "base_commit",
    "version",
    "problem_statement",
    "gold_patch",
    "test_patch",
    "fail_to_pass",
    "pass_to_pass",
    "image",
)


def _test_list(value: Any, key: str, errors: dict[str, str]) -> list[str]:
    """FAIL_TO_PASS / PASS_TO_PASS: a list of strings, or a JSON string holding one (FORMATS.md §2.1)."""
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            errors[key] = f"a string here must hold a JSON list of test ids: {exc.msg.split(':')[0]}"
            return []
    if not isinstance(value, list):
        errors[key] = "must be a list of test ids (or a JSON string of one)"
        return []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            errors[f"{key}/{i}"] = "a test id must be a string"
            return []
    return value


def swe_values_clean(raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """SweTask fields from a SWE-bench instance (unknown keys ignored) and {key: why} for what is wrong."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    limits = {"instance_id": 300, "repo": 300, "base_commit": 64, "version": 40, "image": 300}
    for key in ("instance_id", "repo", "base_commit"):
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            errors[key] = "required: a non-empty string"
        values[key] = value.strip() if isinstance(value, str) else ""
    version = raw.get("version", "")
    if isinstance(version, int | float) and not isinstance(version, bool):
        errors["version"] = f'must be a string: the number {version!r} may have lost digits ("0.20" is not 0.2)'
    elif version is not None and not isinstance(version, str):
        errors["version"] = "must be a string"
    values["version"] = version.strip() if isinstance(version, str) else ""
    values["image"] = raw.get("image") if isinstance(raw.get("image"), str) else ""
    for key, name in (
        ("problem_statement", "problem_statement"),
        ("patch", "gold_patch"),
        ("test_patch", "test_patch"),
    ):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            errors[key] = "must be a string"
        values[name] = value if isinstance(value, str) else ""
    if not values["problem_statement"].strip() and "problem_statement" not in errors:
        errors["problem_statement"] = "required: a non-empty string"
    values["fail_to_pass"] = _test_list(raw.get("FAIL_TO_PASS"), "FAIL_TO_PASS", errors)
    values["pass_to_pass"] = _test_list(raw.get("PASS_TO_PASS"), "PASS_TO_PASS", errors)
    for key, limit in limits.items():
        if key not in errors and len(values[key]) > limit:
            errors[key] = f"must be at most {limit} characters"
    for key, value in values.items():
        if key not in errors and has_nul(value):
            errors[key] = "must not contain a NUL character"
    return values, errors


@transaction.atomic
def swe_tasks_import(
    *, actor: UserLike, project: Project, stream: IO[bytes], name: str = "instances.json"
) -> ImportReport:
    """SWE-bench task instances (a JSON list or JSONL) → SweTasks, matched by instance_id.

    `patch` becomes the gold patch; FAIL_TO_PASS / PASS_TO_PASS may be lists or JSON strings;
    `version` must be a string. New and changed tasks are checked against the project's leak lists.
    """
    report = ImportReport(kind="SWE tasks")
    wanted: dict[str, tuple[str, dict[str, Any]]] = {}
    for record, value in json_records(read_bounded(stream)):
        if isinstance(record, RecordError):
            report.errors.append(RowError(where=record.where, line=record.line, message=record.message))
            continue
        if not isinstance(value, dict):
            report.errors.append(located(record, f"expected an instance object, found {type(value).__name__}"))
            continue
        values, errors = swe_values_clean(value)
        if errors:
            report.errors.extend(errors_of(record, errors))
            continue
        first = wanted.get(values["instance_id"])
        if first is not None:
            if first[1] != values:
                report.errors.append(located(record, f"also in {first[0]}, with different content", "instance_id"))
            else:
                report.unchanged += 1
            continue
        wanted[values["instance_id"]] = (record.where, values)
    existing = {t.instance_id: t for t in SweTask.objects.filter(project=project, instance_id__in=list(wanted))}
    fresh: list[SweTask] = []
    changed: list[SweTask] = []
    for instance_id, (_, values) in wanted.items():
        task = existing.get(instance_id)
        if task is None:
            fresh.append(SweTask(project=project, **values))
            continue
        diff = [name for name in SWE_FIELDS if getattr(task, name) != values[name]]
        if not diff:
            report.unchanged += 1
            continue
        for key in diff:
            setattr(task, key, values[key])
        changed.append(task)
    SweTask.objects.bulk_create(fresh, batch_size=200)
    if changed:
        SweTask.objects.bulk_update(changed, list(SWE_FIELDS[1:]), batch_size=200)
    report.created, report.updated = len(fresh), len(changed)
    touched = [t.instance_id for t in (*fresh, *changed)]
    scan = _scan(project=project, only=touched) if touched else ScanReport()
    report.flagged = scan.flagged
    audit_record(
        actor=actor,
        verb="swe_task.import",
        target=project,
        project=project,
        after={
            "source": name,
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "rejected": report.rejected,
            "flagged": report.flagged,
            "flags_changed": scan.changed[:1000],
        },
    )
    return report


# ---------------------------------------------------------------- leak lists and the contamination scan


def _leak_keys_of_instance(value: Mapping[str, Any], errors: list[str], where: str) -> dict[str, set[str]]:
    keys: dict[str, set[str]] = {k: set() for k in LEAK_KEYS}
    instance_id = value.get("instance_id")
    if isinstance(instance_id, str) and instance_id.strip():
        keys["instance_id"].add(instance_id.strip())
    for key, text_key, digest in (
        ("patch_sha256", "patch", patch_sha256),
        ("problem_sha256", "problem_statement", problem_sha256),
    ):
        given = value.get(key)
        if given is not None:
            if not isinstance(given, str) or not _HEX64.fullmatch(given.strip().lower()):
                errors.append(f"{where} ({key}): must be a sha256 hex digest (64 hex characters)")
            else:
                keys[key].add(given.strip().lower())
        text = value.get(text_key)
        if isinstance(text, str) and digest(text):
            keys[key].add(digest(text))
    if not any(keys.values()):
        errors.append(f"{where}: no instance_id, patch, problem_statement, patch_sha256 or problem_sha256 in it")
    return keys


_LEAK_KINDS = {
    "instance_id": "instance_id",
    "id": "instance_id",
    "instance": "instance_id",
    "patch_sha256": "patch_sha256",
    "patch": "patch_sha256",
    "problem_sha256": "problem_sha256",
    "problem": "problem_sha256",
    "problem_statement_sha256": "problem_sha256",
}


def leak_entries_parse(data: bytes) -> dict[str, list[str]]:
    """{instance_id: […], patch_sha256: […], problem_sha256: […]} from a leak-list file, or ValidationError.

    Text: one entry per line, `kind: value` (kind instance_id, patch_sha256 or problem_sha256; ':' ',' or a
    tab between), a bare value is an instance id; blank lines and lines starting with # are skipped.
    JSON array / JSONL: objects with those keys, or whole SWE-bench instances (their keys are computed).
    A leak list is all or nothing: any bad line rejects the file.
    """
    errors: list[str] = []
    keys: dict[str, set[str]] = {k: set() for k in LEAK_KEYS}
    if sniff_container(data[:4096]) in {"array", "jsonl"}:
        for record, value in json_records(data):
            if isinstance(record, RecordError):
                errors.append(str(record))
            elif not isinstance(value, dict):
                errors.append(f"{record.where}: expected an object")
            else:
                for key, found in _leak_keys_of_instance(value, errors, record.where).items():
                    keys[key] |= found
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError(f"line {data.count(b'\n', 0, exc.start) + 1}: not valid UTF-8") from None
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            match = _LEAK_LINE.fullmatch(line)
            if match and match.group(1).lower() in _LEAK_KINDS:
                kind, value = _LEAK_KINDS[match.group(1).lower()], match.group(2).strip()
            elif match:
                errors.append(
                    f"line {number}: unknown kind {match.group(1)!r}; use instance_id, patch_sha256 or problem_sha256"
                )
                continue
            elif _HEX64.fullmatch(line.lower()):
                errors.append(f"line {number}: a bare sha256: say whether it is a patch_sha256: or problem_sha256:")
                continue
            else:
                kind, value = "instance_id", line
            if not value:
                errors.append(f"line {number}: no value after {kind}")
            elif kind != "instance_id" and not _HEX64.fullmatch(value.lower()):
                errors.append(f"line {number}: {kind} must be a sha256 hex digest (64 hex characters)")
            elif len(value) > 300:
                errors.append(f"line {number}: an instance id is at most 300 characters")
            else:
                keys[kind].add(value.lower() if kind != "instance_id" else value)
    if errors:
        shown = errors[:20]
        more = f" … and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise ValidationError([*shown[:-1], shown[-1] + more])
    if not any(keys.values()):
        raise ValidationError("the leak list has no entries")
    return {k: sorted(v) for k, v in keys.items()}


def _flags_for(task: SweTask, lists: Iterable[tuple[LeakList, dict[str, set[str]]]]) -> list[dict[str, Any]]:
    own = {
        "instance_id": task.instance_id,
        "patch_sha256": patch_sha256(task.gold_patch),
        "problem_sha256": problem_sha256(task.problem_statement),
    }
    flags = []
    for leak_list, sets in lists:
        for key in LEAK_KEYS:
            if own[key] and own[key] in sets[key]:
                flags.append({"leak_list_id": leak_list.pk, "leak_list": leak_list.name, "key": key, "value": own[key]})
    return flags


def _scan(*, project: Project, only: list[str] | None = None) -> ScanReport:
    lists = [
        (
            ll,
            {
                "instance_id": set(ll.instance_ids),
                "patch_sha256": set(ll.patch_sha256s),
                "problem_sha256": set(ll.problem_sha256s),
            },
        )
        for ll in LeakList.objects.filter(project=project).order_by("id")
    ]
    tasks = (
        SweTask.objects.filter(project=project)
        .select_for_update()
        .only("id", "instance_id", "gold_patch", "problem_statement", "contamination_flags", "contamination_override")
    )
    if only is not None:
        tasks = tasks.filter(instance_id__in=only)
    report = ScanReport()
    dirty: list[SweTask] = []
    for task in tasks.order_by("id"):
        report.scanned += 1
        flags = _flags_for(task, lists)
        report.flagged += bool(flags)
        if flags == task.contamination_flags:
            continue
        seen = {(f.get("leak_list_id"), f.get("key")) for f in task.contamination_flags}
        if task.contamination_override and any((f["leak_list_id"], f["key"]) not in seen for f in flags):
            task.contamination_override = ""  # the override was for other matches; a PM must look again
            report.overrides_cleared.append(task.instance_id)
        task.contamination_flags = flags
        report.changed.append(task.instance_id)
        dirty.append(task)
    SweTask.objects.bulk_update(dirty, ["contamination_flags", "contamination_override"], batch_size=500)
    return report


@transaction.atomic
def contamination_scan(*, actor: UserLike, project: Project) -> ScanReport:
    """Match every SWE task of the project against its leak lists; flags say which list and which key matched.

    A task whose flags gain a match its override did not cover loses the override.
    """
    report = _scan(project=project)
    audit_record(
        actor=actor,
        verb="swe_task.contamination_scan",
        target=project,
        project=project,
        after={
            "scanned": report.scanned,
            "flagged": report.flagged,
            "changed": report.changed[:1000],
            "overrides_cleared": report.overrides_cleared[:1000],
        },
    )
    return report


@transaction.atomic
def leak_list_upload(*, actor: UserLike, project: Project, name: str, stream: IO[bytes]) -> tuple[LeakList, ScanReport]:
    """Store a leak list (a new name adds a list, a known name replaces its entries) and rescan the project."""
    name = " ".join(name.split())
    if not name or len(name) > 200:
        raise ValidationError({"name": "give the list a name of 1 to 200 characters"})
    entries = leak_entries_parse(read_bounded(stream))
    leak_list = LeakList.objects.select_for_update().filter(project=project, name=name).first()
    before = None
    if leak_list is None:
        leak_list = LeakList(project=project, name=name)
    else:
        before = {k: len(getattr(leak_list, f"{k}s")) for k in LEAK_KEYS}
    leak_list.instance_ids = entries["instance_id"]
    leak_list.patch_sha256s = entries["patch_sha256"]
    leak_list.problem_sha256s = entries["problem_sha256"]
    leak_list.uploaded_by = actor if isinstance(actor, User) else None
    leak_list.save()
    audit_record(
        actor=actor,
        verb="leak_list.upload",
        target=leak_list,
        project=project,
        before=before,
        after={"name": name, **{k: len(v) for k, v in entries.items()}},
    )
    return leak_list, contamination_scan(actor=actor, project=project)


@transaction.atomic
def swe_task_override(*, actor: UserLike, task: SweTask, reason: str) -> SweTask:
    """Let a flagged task into annotation anyway; the reason is required and kept (and audited)."""
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": "say why this task may be annotated despite the match"})
    if len(reason) > MAX_REASON:
        raise ValidationError({"reason": f"at most {MAX_REASON} characters"})
    task = SweTask.objects.select_for_update().get(pk=task.pk)
    if not task.contamination_flags:
        raise ValidationError({"reason": "this task matches no leak list: there is nothing to override"})
    before = {"override": task.contamination_override, "flags": task.contamination_flags}
    task.contamination_override = reason
    task.save(update_fields=["contamination_override"])
    audit_record(
        actor=actor,
        verb="swe_task.override",
        target=task,
        project=task.project,
        before=before,
        after={"override": reason},
    )
    return task
