"""30 annotator sessions claiming at once against PostgreSQL: 100 runs, overlap 3."""

from __future__ import annotations

import threading
from collections import Counter

import orjson
import pytest
from django.db import connection, connections

from annotation.models import Assignment, AssignmentStatus
from annotation.services import NoWork, assignment_claim_next, assignment_submit, step_label_save, trajectory_label_save
from core.models import Role
from core.services import membership_set
from tests.annotation.helpers import freeze_registry
from tests.conftest import make_user
from tests.trajectories.fixtures_util import run_import

SESSIONS = 30
RUNS = 100


def _respond_only(n: int) -> bytes:
    return (
        orjson.dumps(
            {"messages": [{"role": "user", "content": f"hi {n}"}, {"role": "assistant", "content": f"hello {n}"}]}
        )
        + b"\n"
    )


def _finish(assignment, annotator) -> None:
    step = assignment.trajectory.steps.get()
    step_label_save(
        annotator=annotator,
        assignment=assignment,
        step=step,
        values={"failure_modes": ["none"], "process_reward": 0},
        base_version=0,
    )
    trajectory_label_save(
        annotator=annotator,
        assignment=assignment,
        values={"goal_completed": True, "overall_success": True, "efficiency": 5, "error_handling": 5},
        base_version=0,
    )
    assignment_submit(annotator=annotator, assignment=assignment)


@pytest.mark.django_db(transaction=True)
def test_thirty_sessions_claiming_at_once_never_exceed_the_overlap(project, pm) -> None:
    assert connection.vendor == "postgresql"
    project.rubric_axes = []
    project.gold_rate = 0.0
    project.save(update_fields=["rubric_axes", "gold_rate"])
    freeze_registry(project, pm)
    run_import(project, b"".join(_respond_only(n) for n in range(RUNS)))
    users = [make_user(f"session{i}") for i in range(SESSIONS)]
    for user in users:
        membership_set(actor=pm, project=project, user=user, role=Role.ANNOTATOR)

    start = threading.Barrier(SESSIONS)
    errors: list[BaseException] = []
    done: Counter[int] = Counter()

    def session(user) -> None:
        try:
            start.wait(timeout=30)
            while True:
                try:
                    assignment = assignment_claim_next(annotator=user, project=project)
                except NoWork:
                    return
                _finish(assignment, user)
                done[user.pk] += 1
        except BaseException as exc:  # reported below, with the thread's traceback lost but its message kept
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=session, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a session never finished"
    assert errors == []
    per_run = Counter(Assignment.objects.filter(trajectory__project=project).values_list("trajectory_id", flat=True))
    assert len(per_run) == RUNS
    assert set(per_run.values()) == {3}
    pairs = list(Assignment.objects.values_list("trajectory_id", "annotator_id"))
    assert len(pairs) == len(set(pairs)) == RUNS * 3
    assert set(Assignment.objects.values_list("status", flat=True)) == {AssignmentStatus.SUBMITTED}
    assert sum(done.values()) == RUNS * 3
    assert len(done) > 1  # the work really was shared between sessions
