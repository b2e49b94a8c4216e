"""Goal seeding: goals by hand and in bulk, τ-bench tasks, SWE-bench instances, balance, contamination."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from core.models import AuditEvent, Role
from core.services import membership_set
from tests.conftest import login, make_user
from tests.trajectories.fixtures_util import run_import
from trajectories.models import Goal, ImportStatus, LeakList, SweTask
from trajectories.selectors.goals import goal_balance, swe_task_available_for_annotation, swe_tasks_available
from trajectories.services import goals as svc
from trajectories.services import swe_tasks as swe_svc

pytestmark = pytest.mark.smoke

FIXTURES = Path(__file__).parent / "fixtures" / "goals"
PYDICOM = "swe-bench-instance_pydicom__pydicom-1458.json"


def _open(name: str) -> io.BytesIO:
    return io.BytesIO((FIXTURES / name).read_bytes())


def _errors(report: svc.ImportReport) -> list[tuple[int | None, str, int | None]]:
    return [(e.line, e.field, e.column) for e in report.errors]


# ---------------------------------------------------------------- goals by hand


def test_goal_create_validates_and_audits(project, pm):
    goal = svc.goal_create(
        actor=pm,
        project=project,
        prompt="Cancel reservation ZFA04Y",
        band="Atomic",
        tags=[" Cancel ", "cancel", "Reservations"],
        expected_actions=[{"name": "cancel_reservation", "kwargs": {"reservation_id": "ZFA04Y"}}],
        expected_outputs=["cancelled"],
        external_id="g-1",
    )
    assert (goal.band, goal.tags) == ("atomic", ["cancel", "reservations"])
    assert goal.prompt_sha256 == svc.prompt_sha256("Cancel reservation ZFA04Y")
    assert AuditEvent.objects.filter(verb="goal.create", target_id=str(goal.pk)).count() == 1

    with pytest.raises(ValidationError) as exc:
        svc.goal_create(
            actor=pm,
            project=project,
            prompt="  ",
            band="hard",
            tags=["a,b"],
            expected_actions=[{"kwargs": {}}],
            expected_outputs=[327],
        )
    assert set(exc.value.message_dict) == {
        "prompt",
        "band",
        "tags",
        "expected_actions/0/name",
        "expected_outputs/0",
    }
    with pytest.raises(ValidationError) as exc:
        svc.goal_create(actor=pm, project=project, prompt="other", external_id="g-1")
    assert "external_id" in exc.value.message_dict
    assert Goal.objects.filter(project=project).count() == 1


def test_goal_update_changes_fields_and_records_old_values(project, pm):
    goal = svc.goal_create(actor=pm, project=project, prompt="Old prompt", band="atomic", external_id="g-1")
    svc.goal_update(actor=pm, goal=goal, prompt="New prompt", band="composite", tags=["x"], external_id="g-1")
    goal.refresh_from_db()
    assert (goal.prompt, goal.band, goal.tags) == ("New prompt", "composite", ["x"])
    assert goal.prompt_sha256 == svc.prompt_sha256("New prompt")
    event = AuditEvent.objects.get(verb="goal.update")
    assert event.before == {"prompt": "Old prompt", "band": "atomic", "tags": []}
    with pytest.raises(ValidationError):
        svc.goal_update(actor=pm, goal=goal, prompt="New prompt", expected_actions={"name": "x"})
    # Saving the same values again writes nothing.
    svc.goal_update(actor=pm, goal=goal, prompt="New prompt", band="composite", tags=["x"], external_id="g-1")
    assert AuditEvent.objects.filter(verb="goal.update").count() == 1


# ---------------------------------------------------------------- bulk goals


def test_csv_import_imports_valid_rows_and_locates_bad_ones(project, pm):
    report = svc.goals_import_csv(actor=pm, project=project, stream=_open("goals.csv"))
    assert (report.created, report.rejected) == (3, 3)
    assert _errors(report) == [(5, "band", 3), (6, "expected_actions", 5), (8, "prompt", 2)]
    assert "not valid JSON" in report.errors[1].message
    g2 = Goal.objects.get(project=project, external_id="g-2")
    assert g2.prompt == "Book the cheapest flight from JFK to SFO on May 20,\nthen add one checked bag"
    assert (g2.band, g2.tags, g2.expected_outputs) == ("composite", ["booking", "baggage"], ["327"])
    g1 = Goal.objects.get(project=project, external_id="g-1")
    assert g1.expected_actions == [{"name": "cancel_reservation", "arguments": {"reservation_id": "ZFA04Y"}}]
    assert str(report.errors[0]).startswith("line 5, column 3 (band): must be one of")

    again = svc.goals_import_csv(actor=pm, project=project, stream=_open("goals.csv"))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    assert Goal.objects.filter(project=project).count() == 3
    assert AuditEvent.objects.filter(verb="goal.import").count() == 2


def test_csv_file_level_problems_reject_the_file(project, pm):
    with pytest.raises(ValidationError, match="column 2: unknown column 'promt'"):
        svc.goals_import_csv(actor=pm, project=project, stream=io.BytesIO(b"external_id,promt\nx,y\n"))
    with pytest.raises(ValidationError, match="needs a 'prompt' column"):
        svc.goals_import_csv(actor=pm, project=project, stream=io.BytesIO(b"band\natomic\n"))
    with pytest.raises(ValidationError, match="line 3: not valid UTF-8"):
        svc.goals_import_csv(actor=pm, project=project, stream=io.BytesIO(b"prompt\nok\n\xff\n"))
    report = svc.goals_import_csv(actor=pm, project=project, stream=io.BytesIO(b"prompt,band\nonly one cell\n"))
    assert report.errors[0].message == "has 1 cells, the header has 2 columns"
    assert not Goal.objects.filter(project=project).exists()


def test_jsonl_import_locates_bad_lines_and_is_idempotent(project, pm):
    report = svc.goals_import_jsonl(actor=pm, project=project, stream=_open("goals.jsonl"))
    assert (report.created, report.rejected) == (2, 4)
    assert [(e.line, e.field) for e in report.errors] == [
        (3, "expected_actions/0/name"),
        (4, ""),
        (5, "tags"),
        (5, "expected_outputs/0"),
        (6, "bnad"),
    ]
    assert "malformed JSON" in report.errors[1].message
    j1 = Goal.objects.get(project=project, external_id="j-1")
    assert j1.expected_outputs == ["delivered"]
    assert j1.expected_actions == [{"name": "get_order_details", "arguments": {"order_id": "#W2378156"}}]

    changed = b'{"external_id": "j-2", "prompt": "Return everything I bought last week", "band": "ambiguous"}\n'
    again = svc.goals_import_jsonl(actor=pm, project=project, stream=io.BytesIO(changed))
    assert (again.created, again.updated) == (0, 1)
    assert Goal.objects.get(project=project, external_id="j-2").band == "ambiguous"


def test_bulk_import_gives_an_id_to_a_goal_made_from_a_run(project, pm):
    goal = Goal.objects.create(project=project, prompt="Fly me", prompt_sha256=svc.prompt_sha256("Fly me"))
    data = b'{"external_id": "f-1", "prompt": "Fly me", "band": "atomic"}\n{"external_id": "f-1", "prompt": "Other"}\n'
    report = svc.goals_import_jsonl(actor=pm, project=project, stream=io.BytesIO(data))
    assert (report.created, report.updated, report.rejected) == (0, 1, 1)
    assert report.errors[0].message == "same external id 'f-1' as line 1, different content"
    goal.refresh_from_db()
    assert (goal.external_id, goal.band) == ("f-1", "atomic")


# ---------------------------------------------------------------- τ-bench tasks


def test_tau_bench_tasks_become_goals_with_expected_actions_and_outputs(project, pm):
    report = svc.tau_bench_tasks_import(
        actor=pm, project=project, stream=_open("tau_tasks.json"), env="airline", band="composite", tags=["booking"]
    )
    assert (report.created, report.rejected) == (2, 1)
    assert (report.errors[0].where, report.errors[0].field) == ("element 2 (line 20)", "instruction")
    goal = Goal.objects.get(project=project, external_id="tau-bench:airline:1")
    assert goal.prompt.startswith("Your user id is omar_davis_3817")
    assert goal.expected_outputs == ["327", "1000", "1786"]
    assert goal.expected_actions == [{"name": "get_user_details", "arguments": {"user_id": "omar_davis_3817"}}]
    assert (goal.band, goal.tags) == ("composite", ["airline", "booking"])
    with pytest.raises(ValidationError):
        svc.tau_bench_tasks_import(actor=pm, project=project, stream=_open("tau_tasks.json"), env="air line")


def test_tau_bench_results_file_yields_each_task_once_and_its_runs_attach(project, pm, samples_dir):
    path = samples_dir / "tau-bench_gpt-4o-airline_excerpt.json"
    with path.open("rb") as stream:
        report = svc.tau_bench_tasks_import(actor=pm, project=project, stream=stream, env="airline")
    assert (report.created, report.unchanged, report.rejected) == (4, 12, 0)
    ids = sorted(Goal.objects.filter(project=project).values_list("external_id", flat=True))
    assert ids == [f"tau-bench:airline:{n}" for n in (41, 44, 48, 8)]
    record = json.loads(path.read_text())[0]
    goal = Goal.objects.get(project=project, external_id=f"tau-bench:airline:{record['task_id']}")
    assert goal.prompt == record["info"]["task"]["instruction"]
    actions = [{"name": a["name"], "arguments": a["kwargs"]} for a in record["info"]["task"]["actions"]]
    assert goal.expected_actions == actions
    # The runs of the same file attach to the seeded goals: no second goal per task.
    job = run_import(project, path.read_bytes(), name=path.name)
    assert job.status == ImportStatus.DONE and job.trajectories_imported == 16, job.errors
    assert Goal.objects.filter(project=project).count() == 4
    assert goal.trajectories.count() == 4


# ---------------------------------------------------------------- SWE-bench instances


def test_swe_instances_with_lists_and_json_strings(coding_project, pm):
    report = swe_svc.swe_tasks_import(actor=pm, project=coding_project, stream=_open("swe_instances.jsonl"))
    assert (report.created, report.rejected) == (2, 1)
    assert sorted((e.line, e.field) for e in report.errors) == [(3, "FAIL_TO_PASS"), (3, "version")]
    assert '"0.20" is not 0.2' in next(e.message for e in report.errors if e.field == "version")
    sk = SweTask.objects.get(project=coding_project, instance_id="scikit-learn__scikit-learn-10297")
    assert sk.version == "0.20"
    assert sk.fail_to_pass == ["sklearn/linear_model/tests/test_ridge.py::test_ridge_classifier_cv_store_cv_values"]
    assert len(sk.pass_to_pass) == 2
    astropy = SweTask.objects.get(project=coding_project, instance_id="astropy__astropy-12907")
    assert astropy.image.startswith("swebench/sweb.eval")
    assert astropy.fail_to_pass == ["astropy/modeling/tests/test_separable.py::test_separable[compound_model6-result6]"]
    again = swe_svc.swe_tasks_import(actor=pm, project=coding_project, stream=_open("swe_instances.jsonl"))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)


def test_real_pydicom_instance_imports_as_a_swe_task(coding_project, pm, samples_dir):
    raw = (samples_dir / PYDICOM).read_bytes()
    instance = json.loads(raw)[0]
    report = swe_svc.swe_tasks_import(actor=pm, project=coding_project, stream=io.BytesIO(raw), name=PYDICOM)
    assert (report.created, report.rejected) == (1, 0)
    task = SweTask.objects.get(project=coding_project, instance_id="pydicom__pydicom-1458")
    assert task.repo == "pydicom/pydicom"
    assert task.base_commit == "8da0b9b215ebfad5756051c891def88e426787e7"
    assert task.version == "2.2"
    assert task.gold_patch == instance["patch"] and task.gold_patch.startswith("diff --git a/pydicom/")
    assert task.test_patch == instance["test_patch"]
    assert task.fail_to_pass == instance["FAIL_TO_PASS"] and task.fail_to_pass
    assert task.pass_to_pass == instance["PASS_TO_PASS"] and task.pass_to_pass
    assert task.problem_statement == instance["problem_statement"]


# ---------------------------------------------------------------- balance


def _run(goal_id: str) -> bytes:
    record = {
        "messages": [
            {"role": "user", "content": f"Goal {goal_id}"},
            {"role": "assistant", "content": "Done."},
        ],
        "metadata": {"goal_id": goal_id, "model": "m", "trial": 0},
    }
    return json.dumps(record).encode() + b"\n"


def test_balance_counts_goals_and_trajectories_per_band_and_tag(project, pm, reviewer, django_assert_max_num_queries):
    rows = [
        {"external_id": "a", "prompt": "A", "band": "atomic", "tags": ["lookup"]},
        {"external_id": "b", "prompt": "B", "band": "atomic", "tags": ["lookup", "write"]},
        {"external_id": "c", "prompt": "C", "band": "composite", "tags": ["write"]},
        {"external_id": "d", "prompt": "D"},
    ]
    data = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    svc.goals_import_jsonl(actor=pm, project=project, stream=io.BytesIO(data))
    runs = _run("a") + _run("b").replace(b'"trial": 0', b'"trial": 1') + _run("b") + _run("c")
    runs += json.dumps(
        {"messages": [{"role": "user", "content": "no goal"}, {"role": "assistant", "content": "ok"}]}
    ).encode()
    job = run_import(project, runs)
    assert job.status == ImportStatus.DONE and job.trajectories_imported == 5, job.errors

    with django_assert_max_num_queries(2):
        balance = goal_balance(project=project, role=Role.REVIEWER)
    # The run without a goal id got a goal from its text (no band, no tags): a gap the page shows.
    bands = {r.key: (r.goals, r.trajectories, r.goals_without_runs) for r in balance.bands}
    assert bands == {"atomic": (2, 3, 0), "composite": (1, 1, 0), "ambiguous": (0, 0, 0), "none": (2, 1, 1)}
    tags = {r.key: (r.goals, r.trajectories) for r in balance.tags}
    assert tags == {"lookup": (2, 3), "write": (2, 3), "(no tag)": (2, 1)}
    assert (balance.goals, balance.trajectories, balance.untagged_goals) == (5, 5, 2)
    # The goal list filters by tag, on both databases.
    response = login(reviewer).get(
        reverse("trajectories:goal_list", kwargs={"project_slug": project.slug}) + "?tag=write"
    )
    assert response.status_code == 200
    assert [g.external_id for g in response.context["page"].object_list] == ["b", "c"]
    fragment = login(reviewer).get(
        reverse("trajectories:goal_list", kwargs={"project_slug": project.slug}) + "?band=none",
        headers={"HX-Request": "true"},
    )
    assert fragment.content.decode().lstrip().startswith('<div id="results">')
    assert "no goal" in fragment.content.decode() and ">A<" not in fragment.content.decode()
    page = login(reviewer).get(reverse("trajectories:goal_balance", kwargs={"project_slug": project.slug}))
    assert page.status_code == 200
    assert b'<progress max="3" value="3"' in page.content


# ---------------------------------------------------------------- contamination


@pytest.fixture
def tasks(coding_project, pm, samples_dir) -> dict[str, SweTask]:
    swe_svc.swe_tasks_import(actor=pm, project=coding_project, stream=_open("swe_instances.jsonl"))
    swe_svc.swe_tasks_import(actor=pm, project=coding_project, stream=io.BytesIO((samples_dir / PYDICOM).read_bytes()))
    return {t.instance_id.split("__")[0]: t for t in SweTask.objects.filter(project=coding_project)}


def _flags(task: SweTask) -> list[tuple[str, str]]:
    task.refresh_from_db()
    return [(f["leak_list"], f["key"]) for f in task.contamination_flags]


def test_normalisation_is_as_documented():
    assert swe_svc.normalise_problem_statement("  Ｐixel  DATA\r\n\tbroken \n") == "pixel data broken"
    assert swe_svc.problem_sha256("Pixel data\nbroken") == swe_svc.problem_sha256("PIXEL   DATA broken  ")
    assert swe_svc.normalise_patch("a \r\nb\t\r\n\r\n") == "a\nb\n"
    assert swe_svc.patch_sha256("-x\r\n+y\r\n") == swe_svc.patch_sha256("-x\n+y\n")
    assert swe_svc.patch_sha256("-x\n+Y\n") != swe_svc.patch_sha256("-x\n+y\n")
    assert swe_svc.patch_sha256("") == swe_svc.problem_sha256(" \n ") == ""


def test_contamination_by_instance_id(coding_project, pm, tasks):
    leak_list, scan = swe_svc.leak_list_upload(
        actor=pm, project=coding_project, name="Model X", stream=_open("leak_list.txt")
    )
    assert leak_list.instance_ids == ["astropy__astropy-12907", "sympy__sympy-20590"]
    assert (scan.scanned, scan.flagged) == (3, 1)
    assert _flags(tasks["astropy"]) == [("Model X", "instance_id")]
    assert _flags(tasks["pydicom"]) == []
    assert not swe_task_available_for_annotation(tasks["astropy"])
    assert swe_task_available_for_annotation(tasks["pydicom"])
    assert set(swe_tasks_available(project=coding_project).values_list("instance_id", flat=True)) == {
        "pydicom__pydicom-1458",
        "scikit-learn__scikit-learn-10297",
    }
    assert AuditEvent.objects.filter(verb="leak_list.upload").count() == 1
    assert AuditEvent.objects.filter(verb="swe_task.contamination_scan").count() == 1


def test_contamination_by_patch_hash_ignores_line_endings(coding_project, pm, tasks, samples_dir):
    patch = json.loads((samples_dir / PYDICOM).read_text())[0]["patch"]
    crlf = patch.replace("\n", "\r\n")
    listing = f"patch_sha256: {swe_svc.patch_sha256(crlf)}\n".encode()
    swe_svc.leak_list_upload(actor=pm, project=coding_project, name="patches", stream=io.BytesIO(listing))
    assert _flags(tasks["pydicom"]) == [("patches", "patch_sha256")]
    assert tasks["pydicom"].contamination_flags[0]["value"] == swe_svc.patch_sha256(patch)
    assert _flags(tasks["astropy"]) == []


def test_contamination_by_normalised_problem_statement(coding_project, pm, tasks, samples_dir):
    statement = json.loads((samples_dir / PYDICOM).read_text())[0]["problem_statement"]
    # A leaked copy under another id: upper case, different spacing and line endings.
    leaked = {"instance_id": "copy-1", "problem_statement": "  " + statement.upper().replace("\n", " \r\n\r\n  ")}
    swe_svc.leak_list_upload(
        actor=pm, project=coding_project, name="forum dump", stream=io.BytesIO(json.dumps([leaked]).encode())
    )
    assert _flags(tasks["pydicom"]) == [("forum dump", "problem_sha256")]
    assert _flags(tasks["scikit-learn"]) == []


def test_a_new_list_replaces_its_entries_and_rescans(coding_project, pm, tasks):
    swe_svc.leak_list_upload(actor=pm, project=coding_project, name="Model X", stream=_open("leak_list.txt"))
    swe_svc.leak_list_upload(
        actor=pm, project=coding_project, name="Model X", stream=io.BytesIO(b"pydicom__pydicom-1458\n")
    )
    assert LeakList.objects.filter(project=coding_project).count() == 1
    assert _flags(tasks["astropy"]) == []
    assert _flags(tasks["pydicom"]) == [("Model X", "instance_id")]


def test_swe_tasks_imported_after_a_leak_list_are_flagged(coding_project, pm, samples_dir):
    swe_svc.leak_list_upload(
        actor=pm, project=coding_project, name="ids", stream=io.BytesIO(b"instance_id: pydicom__pydicom-1458\n")
    )
    report = swe_svc.swe_tasks_import(actor=pm, project=coding_project, stream=(samples_dir / PYDICOM).open("rb"))
    assert report.flagged == 1
    assert not swe_task_available_for_annotation(SweTask.objects.get(project=coding_project))


def test_leak_list_errors_are_located_and_reject_the_whole_file(coding_project, pm):
    bad = b"instance_id: ok-1\nfoo: bar\n" + b"a" * 64 + b"\npatch_sha256: nothex\n"
    with pytest.raises(ValidationError) as exc:
        swe_svc.leak_list_upload(actor=pm, project=coding_project, name="bad", stream=io.BytesIO(bad))
    assert [m.split(":")[0] for m in exc.value.messages] == ["line 2", "line 3", "line 4"]
    assert not LeakList.objects.exists()


def test_override_needs_a_reason_and_is_audited(coding_project, pm, tasks):
    with pytest.raises(ValidationError, match="nothing to override"):
        swe_svc.swe_task_override(actor=pm, task=tasks["astropy"], reason="fine")
    swe_svc.leak_list_upload(actor=pm, project=coding_project, name="Model X", stream=_open("leak_list.txt"))
    with pytest.raises(ValidationError) as exc:
        swe_svc.swe_task_override(actor=pm, task=tasks["astropy"], reason="   ")
    assert "reason" in exc.value.message_dict
    swe_svc.swe_task_override(actor=pm, task=tasks["astropy"], reason="Model X is not trained on this split.")
    tasks["astropy"].refresh_from_db()
    assert swe_task_available_for_annotation(tasks["astropy"])
    event = AuditEvent.objects.get(verb="swe_task.override")
    assert event.after == {"override": "Model X is not trained on this split."}
    assert event.before["flags"][0]["key"] == "instance_id"
    # A rescan with the same matches keeps the override; a new match withdraws it.
    swe_svc.contamination_scan(actor=pm, project=coding_project)
    tasks["astropy"].refresh_from_db()
    assert tasks["astropy"].contamination_override
    listing = f"problem_sha256: {swe_svc.problem_sha256(tasks['astropy'].problem_statement)}\n".encode()
    scan = swe_svc.leak_list_upload(actor=pm, project=coding_project, name="Other", stream=io.BytesIO(listing))[1]
    assert scan.overrides_cleared == ["astropy__astropy-12907"]
    tasks["astropy"].refresh_from_db()
    assert not swe_task_available_for_annotation(tasks["astropy"])


# ---------------------------------------------------------------- pages and permissions


def _urls(project, goal_id: int, task_id: int) -> dict[str, str]:
    kw = {"project_slug": project.slug}
    return {
        "list": reverse("trajectories:goal_list", kwargs=kw),
        "balance": reverse("trajectories:goal_balance", kwargs=kw),
        "swe": reverse("trajectories:swe_task_list", kwargs=kw),
        "new": reverse("trajectories:goal_create", kwargs=kw),
        "import": reverse("trajectories:goal_import", kwargs=kw),
        "edit": reverse("trajectories:goal_edit", kwargs={**kw, "goal_id": goal_id}),
        "override": reverse("trajectories:swe_task_override", kwargs={**kw, "task_id": task_id}),
    }


def test_permissions_per_role(coding_project, pm, tasks):
    goal = svc.goal_create(actor=pm, project=coding_project, prompt="Fix it")
    urls = _urls(coding_project, goal.pk, tasks["astropy"].pk)
    people = {role: make_user(role) for role in (Role.ANNOTATOR, Role.REVIEWER, Role.QA_LEAD)}
    for role, user in people.items():
        membership_set(actor=pm, project=coding_project, user=user, role=role)
    expected = {
        Role.PROJECT_MANAGER: dict.fromkeys(urls, 200),
        Role.REVIEWER: {**dict.fromkeys(urls, 403), "list": 200, "balance": 200, "swe": 200},
        Role.QA_LEAD: {**dict.fromkeys(urls, 403), "list": 200, "balance": 200, "swe": 200},
        Role.ANNOTATOR: dict.fromkeys(urls, 403),
        "outsider": dict.fromkeys(urls, 404),
    }
    clients = {Role.PROJECT_MANAGER: login(pm), "outsider": login(make_user("outsider"))}
    clients |= {role: login(user) for role, user in people.items()}
    for role, codes in expected.items():
        got = {name: clients[role].get(url).status_code for name, url in urls.items()}
        assert got == codes, role
    upload = reverse("trajectories:leak_list_upload", kwargs={"project_slug": coding_project.slug})
    for role in (Role.REVIEWER, Role.ANNOTATOR):
        response = clients[role].post(upload, {"name": "x", "upload": SimpleUploadedFile("l.txt", b"a-1\n")})
        assert response.status_code == 403
        assert clients[role].post(urls["new"], {"prompt": "p"}).status_code == 403
        assert clients[role].post(urls["override"], {"reason": "r"}).status_code == 403
    assert clients["outsider"].post(upload, {"name": "x"}).status_code == 404
    assert not LeakList.objects.exists()
    assert Goal.objects.filter(project=coding_project).count() == 1


def test_goal_form_creates_edits_and_answers_422(project, pm_client):
    kw = {"project_slug": project.slug}
    response = pm_client.post(
        reverse("trajectories:goal_create", kwargs=kw),
        {"prompt": "Cancel ZFA04Y", "band": "atomic", "tags": "cancel, reservations", "expected_outputs": '["done"]'},
    )
    assert response.status_code == 302
    goal = Goal.objects.get(project=project)
    assert (goal.tags, goal.expected_outputs) == (["cancel", "reservations"], ["done"])
    edit = reverse("trajectories:goal_edit", kwargs={**kw, "goal_id": goal.pk})
    assert "Cancel ZFA04Y" in pm_client.get(edit).content.decode()
    bad = pm_client.post(edit, {"prompt": "x", "expected_actions": "[{"}, headers={"HX-Request": "true"})
    assert bad.status_code == 422
    assert b"not valid JSON" in bad.content and b"<html" not in bad.content
    bad = pm_client.post(edit, {"prompt": "x", "expected_actions": '[{"kwargs": {}}]'})
    assert bad.status_code == 422
    assert b"expected_actions/0/name: must be a non-empty string" in bad.content
    ok = pm_client.post(edit, {"prompt": "Cancel ZFA04Y now", "band": "composite"}, headers={"HX-Request": "true"})
    assert ok.status_code == 200 and ok.headers["HX-Redirect"] == reverse("trajectories:goal_list", kwargs=kw)
    goal.refresh_from_db()
    assert (goal.prompt, goal.band) == ("Cancel ZFA04Y now", "composite")


def test_import_page_reports_rejected_rows_escaped(project, pm_client):
    url = reverse("trajectories:goal_import", kwargs={"project_slug": project.slug})
    hostile = b'{"prompt": "p", "band": "<script>alert(1)</script>"}\n'
    upload = SimpleUploadedFile("goals.jsonl", (FIXTURES / "goals.jsonl").read_bytes() + hostile)
    response = pm_client.post(url, {"format": "jsonl", "upload": upload})
    assert response.status_code == 200
    page = response.content.decode()
    assert "2 goals created, 0 updated, 0 unchanged, 5 rejected" in page
    assert "expected_actions/0/name" in page and "<script>alert(1)" not in page
    no_file = pm_client.post(url, {"format": "csv"})
    assert no_file.status_code == 422
    bad_file = pm_client.post(url, {"format": "csv", "upload": SimpleUploadedFile("g.csv", b"promt\nx\n")})
    assert bad_file.status_code == 422 and "unknown column" in bad_file.content.decode()


def test_swe_pages_upload_leak_list_and_override(coding_project, pm_client, tasks):
    kw = {"project_slug": coding_project.slug}
    upload = SimpleUploadedFile("leaks.txt", (FIXTURES / "leak_list.txt").read_bytes())
    response = pm_client.post(
        reverse("trajectories:leak_list_upload", kwargs=kw), {"name": "Model X", "upload": upload}
    )
    assert response.status_code == 302
    page = pm_client.get(reverse("trajectories:swe_task_list", kwargs=kw) + "?status=flagged").content.decode()
    assert "astropy__astropy-12907" in page and "pydicom__pydicom-1458" not in page
    assert "NFKC" in page
    bad = pm_client.post(
        reverse("trajectories:leak_list_upload", kwargs=kw),
        {"name": "y", "upload": SimpleUploadedFile("l.txt", b"foo: bar\n")},
    )
    assert bad.status_code == 422 and "line 1: unknown kind" in bad.content.decode()
    override = reverse("trajectories:swe_task_override", kwargs={**kw, "task_id": tasks["astropy"].pk})
    empty = pm_client.post(override, {"reason": "  "})
    assert empty.status_code == 422 and b"Say why" in empty.content
    assert pm_client.post(override, {"reason": "Checked: not in its training data."}).status_code == 302
    tasks["astropy"].refresh_from_db()
    assert tasks["astropy"].contamination_override == "Checked: not in its training data."


def test_overview_links_to_goal_pages(coding_project, project, pm_client):
    coding = pm_client.get(reverse("trajectories:project_overview", kwargs={"project_slug": coding_project.slug}))
    assert (
        reverse("trajectories:swe_task_list", kwargs={"project_slug": coding_project.slug}) in coding.content.decode()
    )
    tool_use = pm_client.get(
        reverse("trajectories:project_overview", kwargs={"project_slug": project.slug})
    ).content.decode()
    assert reverse("trajectories:goal_balance", kwargs={"project_slug": project.slug}) in tool_use
    assert "SWE tasks" not in tool_use


# ---------------------------------------------------------------- command


def test_import_goals_command_exit_codes(coding_project, pm, capsys, samples_dir):
    slug = coding_project.slug
    with pytest.raises(SystemExit) as exc:
        call_command("import_goals", slug, str(FIXTURES / "goals.csv"), "--format", "csv", "--as", "pm")
    assert exc.value.code == 1
    captured = capsys.readouterr()
    assert "3 goals created" in captured.out and "line 5, column 3 (band)" in captured.err
    call_command("import_goals", slug, str(samples_dir / PYDICOM), "--format", "swe-bench")
    assert "1 SWE tasks created" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        call_command("import_goals", slug, str(FIXTURES / "tau_tasks.json"), "--format", "tau-bench", "--env", "a b")
    assert exc.value.code == 2
    assert "env: must be a short name" in capsys.readouterr().err


# ---------------------------------------------------------------- whatever the file holds

_cell = st.one_of(
    st.sampled_from(["atomic", "Composite", "hard", "", "[", '[{"name": "x"}]', '["1"]', "a;b", "\x00", '"', "\n"]),
    st.text(max_size=12),
)
_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_keys = st.sampled_from(
    [
        "prompt",
        "external_id",
        "band",
        "tags",
        "expected_actions",
        "expected_outputs",
        "instance_id",
        "repo",
        "base_commit",
        "problem_statement",
        "patch",
        "version",
        "FAIL_TO_PASS",
        "PASS_TO_PASS",
        "instruction",
        "x",
    ]
)
FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(
    rows=st.lists(st.lists(_cell, min_size=1, max_size=4), max_size=5),
    objects=st.lists(st.dictionaries(_keys, _value, max_size=6), max_size=4),
)
def test_any_file_ends_in_a_report_or_a_located_refusal(coding_project, pm, rows, objects):
    """Goals, τ-bench tasks, SWE instances and leak lists: every row accounted for, never an exception."""
    csv_data = "prompt,band,tags,expected_actions\n" + "".join(",".join(f'"{c}"' for c in row) + "\n" for row in rows)
    jsonl = b"".join(json.dumps(o).encode() + b"\n" for o in objects)
    calls = [
        (svc.goals_import_csv, csv_data.encode("utf-8", "surrogatepass"), {}),
        (svc.goals_import_jsonl, jsonl, {}),
        (svc.tau_bench_tasks_import, json.dumps(objects).encode(), {"env": "retail"}),
        (swe_svc.swe_tasks_import, jsonl, {}),
    ]
    for service, data, extra in calls:
        try:
            report = service(actor=pm, project=coding_project, stream=io.BytesIO(data), **extra)
        except ValidationError as exc:
            assert exc.messages
            continue
        assert all(e.where and e.message for e in report.errors)
    try:
        swe_svc.leak_list_upload(actor=pm, project=coding_project, name="fuzz", stream=io.BytesIO(jsonl or b"\n"))
    except ValidationError as exc:
        assert exc.messages
