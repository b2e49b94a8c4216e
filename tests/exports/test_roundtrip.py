"""Stepwise JSONL round trip: export → import into a fresh project (labels, consensus, adjudications and
evidence included) → export gives the same bytes; the same file twice restores nothing twice; a bad
labels/consensus/evidence section rejects its record, with the line and pointer, and nothing of it."""

from __future__ import annotations

import orjson
import pytest
from django.contrib.auth.models import User

from annotation.models import STEP_LABEL_FIELDS, Assignment, StepLabel, TrajectoryLabel
from audit.models import Consensus, Escalation, EscalationStatus
from core.models import Project
from core.services import project_create
from exports.formats.stepwise_full import STEP_VALUE_SCHEMAS
from exports.models import Pseudonym
from exports.services.batches import batch_create
from exports.services.jobs import export_dir, export_job_create, export_job_run, pseudonym
from tests.annotation.helpers import freeze_registry
from tests.trajectories.fixtures_util import run_import
from trajectories.models import Trajectory, TrajectoryStatus
from verification.models import CheckRun, Finding
from verification.services import trajectories_verify

pytestmark = pytest.mark.smoke


def _export(project: Project, actor, name: str) -> bytes:
    batch = batch_create(actor=actor, project=project, name=name, filters={})
    job = export_job_run(job_id=export_job_create(actor=actor, batch=batch, format="stepwise").pk)
    return (export_dir(job) / job.files[0]["name"]).read_bytes()


def test_export_import_export_gives_the_same_bytes(audited, pm) -> None:
    first = _export(audited, pm, "release")
    rows = [orjson.loads(line) for line in first.splitlines()]
    assert [len(r["labels"]) for r in rows] == [3, 3, 3]
    assert rows[0]["consensus"]["adjudications"][0]["choice"] == "C"
    evidence = {check["kind"]: check for check in rows[2]["evidence"]}
    assert sorted(evidence) == ["grounding", "replay", "schema"]
    assert [f["code"] for f in evidence["schema"]["findings"]] == ["bad_pattern"]

    fresh = project_create(actor=pm, name="Fresh", kind="tool_use")
    freeze_registry(fresh, pm)
    job = run_import(fresh, first, name="release.jsonl")
    assert (job.status, job.trajectories_imported, job.rejected) == ("done", 3, 0), job.errors
    restored = Trajectory.objects.filter(project=fresh)
    assert set(restored.values_list("status", flat=True)) == {TrajectoryStatus.AUDITED}
    assert Assignment.objects.filter(trajectory__project=fresh).count() == 9
    assert TrajectoryLabel.objects.filter(assignment__trajectory__project=fresh).count() == 9
    assert Escalation.objects.get(project=fresh).status == EscalationStatus.RESOLVED
    adjudicated = Consensus.objects.get(trajectory__project=fresh, method="adjudicated")
    assert adjudicated.escalation is not None and adjudicated.value == 1
    assert Finding.objects.filter(trajectory__project=fresh, code="bad_pattern").count() == 1

    again = _export(fresh, pm, "release again")
    assert again == first

    # The fresh project's own checks (what its import queues) agree with the restored evidence and add
    # nothing — for the runs whose content hash is the same here (the timed run's "Z" times come back as
    # "+00:00", so its hash, and with it the checks' inputs, differ: its source keeps the original hash).
    untimed = list(restored.exclude(rollout_id="run-bad").values_list("id", flat=True))
    assert trajectories_verify(trajectory_ids=untimed) == {
        "schema:unchanged": 2,
        "grounding:unchanged": 2,
        "replay:unchanged": 2,
        "final_state:skipped": 2,
    }
    assert _export(fresh, pm, "after verify") == first
    timed = restored.get(rollout_id="run-bad")
    assert timed.content_sha256 != rows[2]["source"]["content_sha256"]


def test_a_project_with_no_users_gets_inactive_accounts_named_by_the_pseudonyms(audited, pm) -> None:
    data = _export(audited, pm, "release")
    names = sorted({label["annotator"] for line in data.splitlines() for label in orjson.loads(line)["labels"]})
    originals = set(User.objects.values_list("username", flat=True))
    empty = project_create(actor=None, name="Empty", kind="tool_use")
    assert not empty.memberships.exists()

    job = run_import(empty, data, name="release.jsonl")
    assert (job.trajectories_imported, job.rejected) == (3, 0), job.errors
    accounts = User.objects.exclude(username__in=originals)
    assert accounts.count() == 3
    for user in accounts:
        assert not user.is_active and not user.has_usable_password()
        assert pseudonym(empty.pk, user.pk) in names
        assert not any(original in user.username for original in originals)
    assert sorted(Pseudonym.objects.filter(project=empty).values_list("name", flat=True)) == names
    counts = (
        Assignment.objects.count(),
        StepLabel.objects.count(),
        Consensus.objects.count(),
        CheckRun.objects.count(),
    )

    # The same file again: every run a duplicate, nothing restored twice.
    job = run_import(empty, data + b"\n", name="again.jsonl")
    assert (job.trajectories_imported, job.duplicates, job.rejected) == (0, 3, 0)
    after = (Assignment.objects.count(), StepLabel.objects.count(), Consensus.objects.count(), CheckRun.objects.count())
    assert after == counts
    assert User.objects.exclude(username__in=originals).count() == 3

    assert _export(empty, pm, "from nobody") == data


def test_a_projects_own_export_imported_back_gives_its_annotators_their_labels(audited, pm) -> None:
    data = _export(audited, pm, "release")
    labelled_by = sorted(Assignment.objects.filter(trajectory__project=audited).values_list("annotator_id", flat=True))
    accounts = User.objects.count()
    Trajectory.objects.filter(project=audited).delete()

    job = run_import(audited, data, name="release.jsonl")
    assert (job.trajectories_imported, job.rejected) == (3, 0), job.errors
    assert User.objects.count() == accounts and not Pseudonym.objects.exists()
    again = Assignment.objects.filter(trajectory__project=audited).values_list("annotator_id", flat=True)
    assert sorted(again) == labelled_by
    assert _export(audited, pm, "release again") == data


def test_the_command_line_import_restores_too(audited, pm, tmp_path) -> None:
    from django.core.management import call_command

    data = _export(audited, pm, "release")
    path = tmp_path / "release.jsonl"
    path.write_bytes(data)
    cli = project_create(actor=pm, name="From the CLI", kind="tool_use")
    call_command("import_trajectories", cli.slug, str(path))
    assert Assignment.objects.filter(trajectory__project=cli).count() == 9
    assert _export(cli, pm, "cli") == data


def _broken(row: dict, how: str) -> str:
    """Break one section of a row; the pointer the refusal must name."""
    if how == "reward":
        row["labels"][1]["steps"]["0"]["process_reward"] = 5
        return "/labels/1/steps/0/process_reward"
    if how == "no step":
        row["consensus"]["steps"]["7"] = row["consensus"]["steps"]["0"]
        return "/consensus/steps/7"
    if how == "unknown field":
        row["labels"][0]["steps"]["1"]["mood"] = "happy"
        return "/labels/0/steps/1"
    if how == "twice":
        row["labels"][2]["annotator"] = row["labels"][0]["annotator"]
        return "/labels/2/annotator"
    if how == "date":
        row["labels"][0]["submitted_at"] = "yesterday"
        return "/labels/0/submitted_at"
    if how == "nul":
        row["labels"][0]["steps"]["0"]["comment"] = "fine\x00"
        return "/labels/0/steps/0/comment"
    if how == "huge":
        row["labels"][0]["guideline_version"] = 2**40
        return "/labels/0/guideline_version"
    if how == "finding":
        row["evidence"][0]["findings"] = [{"step": 0, "code": "nonsense"}]
        return "/evidence/0/findings/0"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["reward", "no step", "unknown field", "twice", "date", "nul", "huge", "finding"])
def test_a_bad_section_rejects_its_record_with_line_and_pointer_and_nothing_of_it(audited, pm, how) -> None:
    lines = _export(audited, pm, "release").splitlines()
    row = orjson.loads(lines[1])
    pointer = _broken(row, how)
    lines[1] = orjson.dumps(row)
    fresh = project_create(actor=pm, name="Fresh", kind="tool_use")
    users_before = User.objects.count()

    job = run_import(fresh, b"\n".join(lines) + b"\n", name="broken.jsonl")
    assert (job.trajectories_imported, job.rejected) == (2, 1)
    (error,) = job.errors
    assert (error["line"], error["pointer"]) == (2, pointer), error
    assert error["where"] == "line 2" and error["message"]
    assert not Trajectory.objects.filter(project=fresh, rollout_id=row["rollout_id"]).exists()
    assert Assignment.objects.filter(trajectory__project=fresh).count() == 6
    assert not Consensus.objects.filter(trajectory__project=fresh, trajectory__rollout_id=row["rollout_id"]).exists()
    assert User.objects.count() == users_before + 3  # the good rows' annotators, once each


def test_the_schema_names_every_step_label_field() -> None:
    assert tuple(STEP_VALUE_SCHEMAS) == STEP_LABEL_FIELDS


def test_the_demo_project_round_trips(db, settings, tmp_path) -> None:
    from demo.services import demo_seed

    settings.MEDIA_ROOT = tmp_path
    summary = demo_seed(run_now=True)
    demo = Project.objects.get(pk=summary["projects"]["airline-desk-demo"])
    ids = list(Trajectory.objects.filter(project=demo).values_list("id", flat=True))
    trajectories_verify(trajectory_ids=ids, kinds=["schema"])
    pm = User.objects.get(username="pm")
    data = _export(demo, pm, "demo release")
    rows = [orjson.loads(line) for line in data.splitlines()]
    assert rows and all(r["labels"] and r["consensus"]["steps"] and r["evidence"] for r in rows)

    fresh = project_create(actor=None, name="Demo again", kind="tool_use")
    job = run_import(fresh, data, name="demo.jsonl")
    assert (job.trajectories_imported, job.rejected) == (len(rows), 0), job.errors
    assert _export(fresh, pm, "demo again") == data
