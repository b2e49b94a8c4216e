"""Restoring a full Stepwise export on import: labels, consensus, adjudications and evidence come back.

Why a hook: `trajectories` imports the run (the canonical importer) and must not import the apps above
it, while the rows to restore belong to annotation, audit, verification and exports. So the stepwise
importer hands the record's other sections (ParsedRun.sections) to `trajectories.hooks`, and this app
registers `on_runs_stored` there (ExportsConfig.ready). The hook runs in the importing process (never in
a parse worker), inside the transaction that writes the batch of runs, so a run and everything restored
with it are committed together or not at all: a section that breaks SECTIONS_SCHEMA, or names a step the
run does not have, raises RecordError with the JSON pointer to the fault; the writer then writes the
batch again record by record and rejects that record — its run included — with the line and pointer.
A record whose run the project holds already is a duplicate and never reaches the hook, so importing the
same file twice restores nothing twice. The same path serves every way in: the CLI, the browser upload
and the API all go through trajectories.services.imports.

Annotators are named in an export by pseudonym only. Each pseudonym becomes (or is found again, per
project) an inactive account with an unusable password, whose exports.models.Pseudonym row makes
`exports.services.jobs.pseudonym` give the same name back; the account's username is made from the
project and the pseudonym, never from anything the export does not already say. A pseudonym that is a
member's own in this project (the project's export imported back into it) is that member's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from django.contrib.auth.models import User
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from annotation.models import STEP_LABEL_FIELDS, Assignment, AssignmentStatus, StepLabel, TrajectoryLabel
from audit.models import Consensus, ConsensusMethod, Escalation, EscalationStatus
from core.models import Membership, Project
from core.services import audit_record
from exports.formats.stepwise_full import SECTIONS_SCHEMA
from exports.models import Pseudonym, RestoredOrigin
from exports.services.jobs import pseudonym_derived
from trajectories.formats.base import RecordError
from trajectories.hooks import StoredRun
from trajectories.models import Step, Trajectory, TrajectoryStatus
from verification.models import CheckRun, Finding

ORIGIN_KEYS = ("content_sha256", "payload_sha256", "importer", "importer_version", "pointer")


@cache
def _validator() -> Draft202012Validator:
    Draft202012Validator.check_schema(SECTIONS_SCHEMA)
    return Draft202012Validator(SECTIONS_SCHEMA)


def _pointer(path: Iterable[Any]) -> str:
    return "".join(f"/{str(part).replace('~', '~0').replace('/', '~1')}" for part in path)


def _nul_at(value: Any, path: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """Where the first NUL character is (in a string or a key), or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, list):
        items: Iterable[tuple[Any, Any]] = enumerate(value)
    elif isinstance(value, dict):
        for key in value:
            if "\x00" in key:
                return (*path, key)
        items = value.items()
    else:
        return None
    for key, item in items:
        found = _nul_at(item, (*path, key))
        if found is not None:
            return found
    return None


@dataclass
class _Run:
    """One stored run's sections, checked, with its steps: index → (step id, tool name)."""

    stored: StoredRun
    steps: dict[int, tuple[int, str]]
    labels: list[dict[str, Any]] = field(default_factory=list)
    consensus: dict[str, Any] = field(default_factory=dict)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)


def _check(run: _Run) -> None:
    """RecordError (pointer, where, line) for what cannot be restored as it is."""
    stored = run.stored

    def fail(message: str, pointer: str) -> RecordError:
        return RecordError(message, pointer=pointer, where=stored.where, line=stored.line)

    error = best_match(_validator().iter_errors(stored.sections))
    if error is not None:
        raise fail(f"{error.message} (schema rule: {error.validator})", _pointer(error.absolute_path))
    nul = _nul_at(stored.sections, ())
    if nul is not None:
        raise fail("a NUL character, which the database cannot keep", _pointer(nul))

    def step(index: Any, pointer: str) -> None:
        if index is not None and int(index) not in run.steps:
            raise fail(f"the run has no step {index} (it has {len(run.steps)})", pointer)

    run.labels = stored.sections.get("labels", [])
    seen: set[str] = set()
    for i, label in enumerate(run.labels):
        if label["annotator"] in seen:
            raise fail(f"{label['annotator']} has a second label on this run", f"/labels/{i}/annotator")
        seen.add(label["annotator"])
        if label["submitted_at"] is not None:
            try:
                moment = datetime.fromisoformat(label["submitted_at"])
            except ValueError:
                moment = None
            if moment is None or moment.tzinfo is None:
                raise fail(
                    f"not an ISO 8601 date-time with a time zone: {label['submitted_at']!r}",
                    f"/labels/{i}/submitted_at",
                )
        for index in label["steps"]:
            step(index, f"/labels/{i}/steps/{index}")
        if label["verdict"] is not None:
            step(label["verdict"]["first_failing_step"], f"/labels/{i}/verdict/first_failing_step")
    run.consensus = stored.sections.get("consensus") or {"steps": {}, "verdict": {}, "adjudications": []}
    for index in run.consensus["steps"]:
        step(index, f"/consensus/steps/{index}")
    keys: set[tuple[Any, str, str]] = set()
    for i, adjudication in enumerate(run.consensus["adjudications"]):
        step(adjudication["step"], f"/consensus/adjudications/{i}/step")
        key = (adjudication["step"], adjudication["field"], adjudication["source"])
        if key in keys:
            raise fail("a second adjudication of the same field, step and source", f"/consensus/adjudications/{i}")
        keys.add(key)
    run.evidence = stored.sections.get("evidence", [])
    kinds: set[str] = set()
    for i, check in enumerate(run.evidence):
        if check["kind"] in kinds:
            raise fail(f"a second {check['kind']} check (the export holds the latest of each)", f"/evidence/{i}/kind")
        kinds.add(check["kind"])
        for j, finding in enumerate(check["findings"]):
            step(finding["step"], f"/evidence/{i}/findings/{j}/step")
    run.source = stored.sections.get("source", {})


def _known(project: Project, names: set[str]) -> dict[str, int]:
    """The names this project's exports give accounts already: a kept pseudonym, or a member's own
    (a project's export imported back into it names its own annotators)."""
    accounts = dict(Pseudonym.objects.filter(project=project, name__in=names).values_list("name", "user_id"))
    for user_id in Membership.objects.filter(project=project).values_list("user_id", flat=True):
        name = pseudonym_derived(project.pk, user_id)
        if name in names:
            accounts.setdefault(name, user_id)
    return accounts


def _accounts(project: Project, names: set[str]) -> dict[str, int]:
    """Pseudonym → the user id of its account in this project, made (inactive, no password) where missing."""
    accounts = _known(project, names)
    missing = sorted(names - accounts.keys())
    if missing:
        # Two imports into the project at once must not both make an account for the same name: the
        # first to lock the project's row makes them, the other then finds them (held until commit).
        list(Project.objects.select_for_update().filter(pk=project.pk).values_list("pk", flat=True))
        accounts = _known(project, names)
        missing = sorted(names - accounts.keys())
    if missing:
        users = []
        for name in missing:
            user = User(username=f"restored-{project.pk}-{name}", is_active=False)
            user.set_unusable_password()
            users.append(user)
        User.objects.bulk_create(users)
        Pseudonym.objects.bulk_create(
            [Pseudonym(project=project, user=user, name=name) for name, user in zip(missing, users, strict=True)]
        )
        accounts |= {name: user.pk for name, user in zip(missing, users, strict=True)}
    return accounts


def runs_restore(*, project: Project, runs: list[StoredRun]) -> dict[str, int]:
    """Restore the labels, consensus, adjudications, evidence and provenance the runs' records carry.

    Called inside the transaction that wrote the runs (see the module docstring); RecordError for a
    section that cannot be restored, before anything is written. Returns how many rows of each kind."""
    ids = [r.trajectory_id for r in runs]
    steps: dict[int, dict[int, tuple[int, str]]] = {i: {} for i in ids}
    for trajectory_id, index, step_id, tool_name in Step.objects.filter(trajectory_id__in=ids).values_list(
        "trajectory_id", "index", "id", "tool_name"
    ):
        steps[trajectory_id][index] = (step_id, tool_name)
    checked = [_Run(stored=r, steps=steps[r.trajectory_id]) for r in runs]
    for run in checked:
        _check(run)
    accounts = _accounts(project, {label["annotator"] for run in checked for label in run.labels})

    # Labels, in the order exported (submission order: the restored ids keep it).
    assignments: list[tuple[_Run, dict[str, Any], Assignment]] = []
    for run in checked:
        for label in run.labels:
            submitted = label["submitted_at"]
            assignments.append(
                (
                    run,
                    label,
                    Assignment(
                        trajectory_id=run.stored.trajectory_id,
                        annotator_id=accounts[label["annotator"]],
                        status=AssignmentStatus.SUBMITTED,
                        is_gold=label["gold"],
                        time_spent_ms=label["time_spent_ms"],
                        submitted_at=datetime.fromisoformat(submitted) if submitted else None,
                    ),
                )
            )
    Assignment.objects.bulk_create([a for _, _, a in assignments])
    step_labels: list[tuple[int, int, Assignment, StepLabel]] = []  # (trajectory, step index, …)
    verdicts: list[tuple[int, Assignment, TrajectoryLabel]] = []
    for run, label, assignment in assignments:
        version = label["guideline_version"] if label["guideline_version"] is not None else 1
        for index, values in label["steps"].items():
            step_labels.append(
                (
                    run.stored.trajectory_id,
                    int(index),
                    assignment,
                    StepLabel(
                        assignment=assignment,
                        step_id=run.steps[int(index)][0],
                        guideline_version=version,
                        **{f: values[f] for f in STEP_LABEL_FIELDS},
                    ),
                )
            )
        if label["verdict"] is not None:
            v = label["verdict"]
            first = v["first_failing_step"]
            verdicts.append(
                (
                    run.stored.trajectory_id,
                    assignment,
                    TrajectoryLabel(
                        assignment=assignment,
                        goal_completed=v["goal_completed"],
                        overall_success=v["overall_success"],
                        efficiency=v["efficiency"],
                        error_handling=v["error_handling"],
                        first_failing_step_id=None if first is None else run.steps[first][0],
                        comment=v["comment"],
                        guideline_version=version,
                    ),
                )
            )
    StepLabel.objects.bulk_create([s for *_, s in step_labels], batch_size=1000)
    TrajectoryLabel.objects.bulk_create([v for *_, v in verdicts])
    # The submitted labels (not gold) of each step and of each verdict, in the order shown (as
    # audit.services.consensus.submitted_label_ids gives them): what escalations and consensus cite.
    votes: dict[tuple[int, int | None], list[int]] = {}
    for trajectory_id, index, assignment, label_row in step_labels:
        if not assignment.is_gold:
            votes.setdefault((trajectory_id, index), []).append(label_row.pk)
    for trajectory_id, assignment, verdict in verdicts:
        if not assignment.is_gold:
            votes.setdefault((trajectory_id, None), []).append(verdict.pk)

    # Adjudications, then the settled values (an adjudicated one points at its escalation).
    escalations: list[Escalation] = []
    decided: dict[tuple[int, int | None, str], Escalation] = {}  # the last decision on each field
    for run in checked:
        t = run.stored.trajectory_id
        for a in run.consensus["adjudications"]:
            index = a["step"]
            escalation = decided[(t, index, a["field"])] = Escalation(
                project=project,
                trajectory_id=t,
                step_id=None if index is None else run.steps[index][0],
                field=a["field"],
                source=a["source"],
                reason=a["reason"],
                tool_name="" if index is None else run.steps[index][1],
                label_ids=votes.get((t, index), []),
                status=EscalationStatus.RESOLVED,
                decision=a["value"],
                decision_source=a["choice"],
                decision_kind=a["kind"],
                decision_reason=a["explanation"],
            )
            escalations.append(escalation)
    Escalation.objects.bulk_create(escalations)
    consensus = []
    for run in checked:
        t = run.stored.trajectory_id
        settled: list[tuple[int | None, str, dict[str, Any]]] = [
            (int(index), key, entry)
            for index, fields in run.consensus["steps"].items()
            for key, entry in fields.items()
        ]
        settled += [(None, key, entry) for key, entry in run.consensus["verdict"].items()]
        for at, key, entry in settled:
            adjudicated = entry["method"] == ConsensusMethod.ADJUDICATED
            consensus.append(
                Consensus(
                    trajectory_id=t,
                    step_id=None if at is None else run.steps[at][0],
                    field=key,
                    value=entry["value"],
                    method=entry["method"],
                    agreement=entry["agreement"],
                    source_labels=votes.get((t, at), []),
                    escalation=decided.get((t, at, key)) if adjudicated else None,
                )
            )
    Consensus.objects.bulk_create(consensus, batch_size=1000)

    # The machine evidence: the latest check run of each kind, with its findings.
    checks: list[tuple[_Run, dict[str, Any], CheckRun]] = [
        (
            run,
            check,
            CheckRun(
                trajectory_id=run.stored.trajectory_id,
                kind=check["kind"],
                status=check["status"],
                verifier_version=check["verifier_version"],
                inputs_sha256=check.get("inputs_sha256", ""),
                result=check.get("result", {}),
            ),
        )
        for run in checked
        for check in run.evidence
    ]
    CheckRun.objects.bulk_create([c for *_, c in checks])
    findings = [
        Finding(
            check_run=check_run,
            trajectory_id=run.stored.trajectory_id,
            step_id=None if f["step"] is None else run.steps[f["step"]][0],
            code=f["code"],
            failure_mode=f["failure_mode"],
            argument=f["argument"],
            pointer=f["pointer"],
            rule=f["rule"],
            value=f["value"],
            message=f["message"],
            evidence=f.get("evidence", {}),
        )
        for run, check, check_run in checks
        for f in check["findings"]
    ]
    Finding.objects.bulk_create(findings, batch_size=1000)

    # Provenance, the verified reward, and the audit status a batch selects by.
    RestoredOrigin.objects.bulk_create(
        [
            RestoredOrigin(
                trajectory_id=run.stored.trajectory_id,
                source={k: run.source[k] for k in ORIGIN_KEYS if k in run.source},
            )
            for run in checked
            if any(k in run.source for k in ORIGIN_KEYS)
        ]
    )
    trajectories = Trajectory.objects.filter(pk__in=ids)
    audited = [run.stored.trajectory_id for run in checked if run.consensus["steps"] or run.consensus["verdict"]]
    labelled = [run.stored.trajectory_id for run in checked if run.labels and run.stored.trajectory_id not in audited]
    trajectories.filter(pk__in=audited).update(status=TrajectoryStatus.AUDITED)
    trajectories.filter(pk__in=labelled).update(status=TrajectoryStatus.ANNOTATED)
    rewards: dict[float, list[int]] = {}
    for run in checked:
        if run.source.get("verified_reward") is not None:
            rewards.setdefault(run.source["verified_reward"], []).append(run.stored.trajectory_id)
    for reward, with_it in rewards.items():
        trajectories.filter(pk__in=with_it).update(verified_reward=reward)
    counts = {
        "trajectories": len(checked),
        "accounts": len(accounts),
        "labels": len(assignments),
        "consensus": len(consensus),
        "adjudications": len(escalations),
        "check_runs": len(checks),
        "findings": len(findings),
    }
    audit_record(actor=None, verb="import.restore", target=project, project=project, after=counts)
    return counts


def on_runs_stored(project: Project, runs: list[StoredRun]) -> None:
    """The trajectories hook (see the module docstring)."""
    runs_restore(project=project, runs=runs)
