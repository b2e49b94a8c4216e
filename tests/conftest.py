"""Persona fixtures: every test sets up through the real services."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from core.models import Project, Role
from core.services import membership_set, project_create

PASSWORD = "correct horse battery staple"


def make_user(username: str, *, staff: bool = False):
    User = get_user_model()
    return User.objects.create_user(username=username, password=PASSWORD, is_staff=staff)


@pytest.fixture
def pm(db):
    return make_user("pm")


@pytest.fixture
def project(pm) -> Project:
    project = project_create(actor=pm, name="Airline desk", kind="tool_use")
    membership_set(actor=pm, project=project, user=pm, role=Role.PROJECT_MANAGER)
    return project


@pytest.fixture
def coding_project(pm) -> Project:
    project = project_create(actor=pm, name="Pydicom fixes", kind="coding")
    membership_set(actor=pm, project=project, user=pm, role=Role.PROJECT_MANAGER)
    return project


def _member(project: Project, pm, username: str, role: str):
    user = make_user(username)
    membership_set(actor=pm, project=project, user=user, role=role)
    return user


@pytest.fixture
def annotator(project, pm):
    return _member(project, pm, "ann1", Role.ANNOTATOR)


@pytest.fixture
def annotator2(project, pm):
    return _member(project, pm, "ann2", Role.ANNOTATOR)


@pytest.fixture
def reviewer(project, pm):
    return _member(project, pm, "reviewer", Role.REVIEWER)


@pytest.fixture
def qa_lead(project, pm):
    return _member(project, pm, "qalead", Role.QA_LEAD)


@pytest.fixture
def outsider(db):
    return make_user("outsider")


@pytest.fixture
def staff(db):
    return make_user("admin", staff=True)


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def pm_client(pm) -> Client:
    return login(pm)


SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "samples"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The real agent-run files beside the checkout (CI has them); missing is a failure, not a skip."""
    assert SAMPLES.is_dir(), (
        f"the samples folder is missing: {SAMPLES} (it lives beside the checkout as shared/samples)"
    )
    return SAMPLES
