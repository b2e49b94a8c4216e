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


def test_an_api_token_is_made_shown_once_used_replaced_and_revoked(project, annotator, pm) -> None:
    from django.test import Client

    from core.models import AuditEvent

    page = login(annotator)
    url = reverse("core:api_token")
    assert "You have no token" in page.get(url).content.decode()
    made = page.post(url, {"action": "rotate"})
    assert made.status_code == 200 and "no-store" in made["Cache-Control"]
    key = made.context["key"]
    assert len(key) == 40 and key in made.content.decode()
    again = page.get(url).content.decode()
    assert key not in again and "You have a token" in again  # shown once, never again

    def api(token: str) -> int:
        return Client().get(f"/api/projects/{project.slug}/", HTTP_AUTHORIZATION=f"Token {token}").status_code

    assert api(key) == 200  # the script sees what the person sees: their project
    other = make_user("elsewhere")
    assert Client().get(f"/api/projects/{project.slug}/", HTTP_AUTHORIZATION=f"Token {key}x").status_code == 401
    replaced = page.post(url, {"action": "rotate"}).context["key"]
    assert replaced != key and api(key) == 401 and api(replaced) == 200
    assert page.post(url, {"action": "revoke"}).status_code == 302
    assert api(replaced) == 401 and "You have no token" in page.get(url).content.decode()
    assert list(AuditEvent.objects.filter(actor=annotator).values_list("verb", flat=True).order_by("id")) == [
        "api_token.rotate",
        "api_token.rotate",
        "api_token.revoke",
    ]
    assert login(other).get(f"/api/projects/{project.slug}/").status_code == 404


def test_the_api_token_page_needs_a_sign_in_and_a_known_action(client, annotator) -> None:
    url = reverse("core:api_token")
    assert client.get(url).status_code == 302
    page = login(annotator)
    response = page.post(url, {"action": "steal"}, follow=True)
    assert "Choose" in response.content.decode() and "You have no token" in response.content.decode()
