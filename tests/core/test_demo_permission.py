"""The demo's project manager may start projects; its annotators may not."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from demo.services import demo_seed
from tests.conftest import login

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_demo_project_manager_holds_core_add_project() -> None:
    demo_seed(stdout=io.StringIO(), run_now=True)
    demo_seed(stdout=io.StringIO(), run_now=True)  # seeding again keeps it, once
    users = get_user_model().objects
    pm, annotator = users.get(username="pm"), users.get(username="ann1")
    assert pm.user_permissions.filter(codename="add_project").count() == 1
    assert not annotator.has_perm("core.add_project")
    assert "New project" in login(pm).get(reverse("core:project_list")).content.decode()
    assert login(annotator).get(reverse("core:project_new")).status_code == 403
