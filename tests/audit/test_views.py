"""The audit pages through the real views: who sees what, deciding, reviewing, feedback, rules, CSV."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.models import GoldItem
from audit.models import Escalation, EscalationStatus
from audit.services.agreement import project_agreement_compute
from audit.services.consensus import trajectory_consensus_compute
from tests.annotation.helpers import freeze_registry, import_runs
from tests.audit.helpers import claim, label_and_submit, team
from tests.conftest import login

pytestmark = pytest.mark.smoke


@pytest.fixture
def escalated(project, pm):
    freeze_registry(project, pm)
    project.gold_rate = 0.0
    project.review_rate = 0.0
    project.save(update_fields=["gold_rate", "review_rate"])
    (run,) = import_runs(project, 1)
    users = team(project, pm)
    rewards = [-1, 0, 1]
    for user, reward in zip(users, rewards, strict=True):
        label_and_submit(
            claim(project, user, run),
            user,
            steps={0: {"process_reward": reward, "comment": f"my note {reward}"}},
        )
    trajectory_consensus_compute(trajectory_id=run.pk)
    return run, users, Escalation.objects.get()


def test_only_leads_see_escalations(escalated, project, reviewer, outsider, qa_lead) -> None:
    _run, users, escalation = escalated
    url = reverse("audit:escalation", kwargs={"escalation_id": escalation.pk})
    for user in (users[0], reviewer, outsider):
        assert login(user).get(reverse("audit:escalations")).status_code == 404
        assert login(user).get(url).status_code == 404
        assert login(user).post(url, {"choice": "A", "kind": "ambiguous", "reason": "x"}).status_code == 404
    assert Escalation.objects.get().status == EscalationStatus.OPEN
    page = login(qa_lead).get(reverse("audit:escalations"), {"kind": "process_reward"})
    assert page.status_code == 200 and f'href="{url}"' in page.content.decode()
    empty = login(qa_lead).get(reverse("audit:escalations"), {"kind": "rubric"})
    assert f'href="{url}"' not in empty.content.decode()


def test_the_lead_decides_blind_then_sees_names(escalated, project, qa_lead) -> None:
    run, users, escalation = escalated
    client = login(qa_lead)
    url = reverse("audit:escalation", kwargs={"escalation_id": escalation.pk})
    html = client.get(url).content.decode()
    assert 'id="vote-A"' in html and 'id="vote-C"' in html
    assert all(u.username not in html for u in users)  # names stay hidden until the decision
    assert "my note -1" in html
    bad = client.post(url, {"choice": "own", "value": "7", "kind": "annotator_error", "reason": "x"})
    assert bad.status_code == 422 and "−1, 0 or +1" in bad.content.decode()
    done = client.post(url, {"choice": "C", "kind": "annotator_error", "reason": "The call worked.", "then": "stay"})
    assert done.status_code == 302
    html = client.get(url).content.decode()
    assert all(u.username in html for u in users) and "The call worked." in html
    assert GoldItem.objects.filter(trajectory=run).exists()


def test_annotators_see_the_outcome_of_their_own_items_only(escalated, project, qa_lead) -> None:
    _run, users, escalation = escalated
    login(qa_lead).post(
        reverse("audit:escalation", kwargs={"escalation_id": escalation.pk}),
        {"choice": "own", "value": "1", "kind": "annotator_error", "reason": "A lookup that worked earns +1."},
    )
    page = login(users[0]).get(reverse("audit:feedback", kwargs={"project_slug": project.slug}))
    html = page.content.decode()
    assert page.status_code == 200 and "A lookup that worked earns +1." in html and "Adjudicated" in html
    assert users[1].username not in html and users[2].username not in html and qa_lead.username not in html
    assert login(users[0]).get(reverse("audit:quality", kwargs={"project_slug": project.slug})).status_code == 403


def test_quality_page_figures_and_csv(escalated, project, qa_lead, outsider) -> None:
    project_agreement_compute(project_id=project.pk)
    url = reverse("audit:quality", kwargs={"project_slug": project.slug})
    page = login(qa_lead).get(url)
    html = page.content.decode()
    assert page.status_code == 200 and "What the target means" in html and "not enough data" in html
    assert 'id="pair-matrix"' in html and "<svg" in html
    sliced = login(qa_lead).get(url, {"slice": "tool:get_reservation"}).content.decode()
    assert '<option value="tool:get_reservation" selected>' in sliced
    csv = login(qa_lead).get(
        reverse("audit:quality_csv", kwargs={"project_slug": project.slug}), {"table": "annotators"}
    )
    assert csv.status_code == 200 and csv["Content-Type"].startswith("text/csv")
    lines = csv.content.decode().splitlines()
    assert lines[0].startswith("scope,slice,measure") and sum(line.startswith("annotator,") for line in lines) == 3
    assert login(outsider).get(url).status_code == 404


def test_rules_are_checked_with_the_place_of_the_fault(project, pm, qa_lead) -> None:
    url = reverse("audit:rules", kwargs={"project_slug": project.slug})
    client = login(pm)
    broken = client.post(url, {"rules": '{"routing": "least_loaded",,}'})
    assert broken.status_code == 422 and "line 1, column" in broken.content.decode()
    wrong = client.post(url, {"rules": '{"routing": "random", "min_items": 0}'})
    text = wrong.content.decode()
    assert wrong.status_code == 422 and "/min_items" in text and "/routing" in text
    unknown = client.post(url, {"rules": '{"critical_axes": ["speed"]}'})
    assert unknown.status_code == 422 and "not a rubric axis" in unknown.content.decode()
    ok = client.post(url, {"rules": '{"routing": "round_robin", "critical_tools": ["cancel_reservation"]}'})
    assert ok.status_code == 302
    project.refresh_from_db()
    assert project.consensus_rules == {"routing": "round_robin", "critical_tools": ["cancel_reservation"]}
    assert login(qa_lead).post(url, {"rules": "{}"}).status_code == 403


def test_a_reviewer_confirms_a_sampled_item(project, pm, reviewer) -> None:
    freeze_registry(project, pm)
    project.gold_rate = 0.0
    project.review_rate = 1.0
    project.save(update_fields=["gold_rate", "review_rate"])
    (run,) = import_runs(project, 1)
    for user in team(project, pm):
        label_and_submit(claim(project, user, run), user)
    trajectory_consensus_compute(trajectory_id=run.pk)
    listing = login(reviewer).get(reverse("audit:reviews", kwargs={"project_slug": project.slug}))
    assert listing.status_code == 200
    review = run.review
    url = reverse("audit:review", kwargs={"project_slug": project.slug, "review_id": review.pk})
    assert "Environment feedback" in login(reviewer).get(url).content.decode()
    assert login(reviewer).post(url, {"action": "confirm"}).status_code == 302
    review.refresh_from_db()
    assert review.status == "confirmed"
