import pytest
from django.urls import reverse

from core.models import Membership, Role
from tests.conftest import login, make_user

pytestmark = pytest.mark.smoke


def test_pm_adds_changes_and_removes_a_member(project, pm_client) -> None:
    make_user("newbie")
    url = reverse("core:member_list", kwargs={"project_slug": project.slug})
    assert pm_client.post(url, {"username": "newbie", "role": Role.ANNOTATOR}).status_code == 302
    membership = Membership.objects.get(project=project, user__username="newbie")
    assert membership.role == Role.ANNOTATOR
    pm_client.post(url, {"username": "newbie", "role": Role.QA_LEAD})
    membership.refresh_from_db()
    assert membership.role == Role.QA_LEAD
    assert "newbie" in pm_client.get(url).content.decode()
    remove = reverse("core:member_remove", kwargs={"project_slug": project.slug, "membership_id": membership.pk})
    assert pm_client.post(remove).status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()


def test_unknown_user_is_a_422_with_the_reason(project, pm_client) -> None:
    url = reverse("core:member_list", kwargs={"project_slug": project.slug})
    response = pm_client.post(url, {"username": "ghost", "role": Role.ANNOTATOR})
    assert response.status_code == 422
    assert "No active user named &#x27;ghost&#x27;" in response.content.decode()


def test_only_project_managers_manage_members(project, annotator, qa_lead, outsider) -> None:
    url = reverse("core:member_list", kwargs={"project_slug": project.slug})
    assert login(annotator).get(url).status_code == 403
    assert login(qa_lead).post(url, {"username": "qalead", "role": Role.PROJECT_MANAGER}).status_code == 403
    assert login(outsider).get(url).status_code == 404
    assert Membership.objects.get(user=qa_lead, project=project).role == Role.QA_LEAD


def test_healthz_needs_no_login(client, db) -> None:
    response = client.get(reverse("core:healthz"))
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.smoke
def test_a_nul_character_anywhere_is_a_400_that_says_where(project, pm) -> None:
    from tests.conftest import login

    client = login(pm)
    page = client.get(f"/p/{project.slug}/trajectories/", {"q": "a\x00b"})
    assert page.status_code == 400 and "query parameter 'q'" in page.content.decode()
    form = client.post(f"/p/{project.slug}/batches/", {"name": "x\x00"})
    assert form.status_code == 400 and "form field 'name'" in form.content.decode()
    body = client.post(
        f"/api/projects/{project.slug}/batches/", '{"name": "x\\u0000"}', content_type="application/json"
    )
    assert body.status_code == 400 and "JSON body" in body.content.decode()
