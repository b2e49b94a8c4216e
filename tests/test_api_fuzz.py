"""schemathesis against the OpenAPI schema, in-process on the WSGI app: no request it generates — for any
operation, signed in as a project manager with real data — gets a server error; and where the schema describes
the answers exactly (the paginated lists, goals, SWE tasks, assignments, labels), every answer matches it."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from config.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


@pytest.fixture
def no_connection_close():
    """As Django's test client does: the app runs inside the test's transaction, so a request must not close
    the connection at its end."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def token(project, pm, no_connection_close) -> tuple[str, str]:
    from annotation.services import assignment_claim_next, step_label_save
    from core.models import Role
    from core.services import membership_set
    from tests.annotation.helpers import freeze_registry, import_runs
    from tests.conftest import make_user
    from trajectories.services.goals import goal_create

    freeze_registry(project, pm)
    import_runs(project, 2)
    goal_create(actor=pm, project=project, prompt="Cancel ZFA04Y", band="atomic", tags=["cancel"], external_id="g-1")
    annotator = make_user("fuzz-annotator")
    membership_set(actor=pm, project=project, user=annotator, role=Role.ANNOTATOR)
    work = assignment_claim_next(annotator=annotator, project=project)  # an assignment and a label to list
    step = work.trajectory.steps.get(index=0)
    step_label_save(annotator=annotator, assignment=work, step=step, values={"comment": "draft"}, base_version=0)
    key, _ = Token.objects.get_or_create(user=pm)
    return key.key, project.slug


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_request_gets_a_server_error(case, token) -> None:
    key, slug = token
    if case.path_parameters and "project_slug" in case.path_parameters:
        case.path_parameters["project_slug"] = slug  # the real project: its data, with fuzzed ids, queries and bodies
    response = case.call(headers={"Authorization": f"Token {key}"})
    case.validate_response(response, checks=[not_a_server_error])


EXACT = "/goals/|/swe-tasks/|/assignments/|/labels/|/trajectories/|/imports/|/escalations/|/agreement/|/batches/"


@pytest.mark.django_db
@schema.include(path_regex=EXACT).parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_answers_match_the_schema(case, token) -> None:
    key, slug = token
    if case.path_parameters and "project_slug" in case.path_parameters:
        case.path_parameters["project_slug"] = slug
    response = case.call(headers={"Authorization": f"Token {key}"})
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
