"""A QA lead resolves an escalation with the keyboard only, in a real Chromium."""

from __future__ import annotations

import pytest

from annotation.models import GoldItem
from audit.models import Escalation, EscalationStatus
from audit.services.consensus import trajectory_consensus_compute
from tests.annotation.helpers import freeze_registry, import_runs
from tests.audit.helpers import claim, label_and_submit, team
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_lead_decides_from_the_keyboard(page, live_server, project, pm, qa_lead) -> None:
    freeze_registry(project, pm)
    project.gold_rate = 0.0
    project.review_rate = 0.0
    project.save(update_fields=["gold_rate", "review_rate"])
    runs = import_runs(project, 2)
    users = team(project, pm)
    for run in runs:
        for user, reward in zip(users, (-1, 0, 1), strict=True):
            label_and_submit(claim(project, user, run), user, steps={0: {"process_reward": reward}})
        trajectory_consensus_compute(trajectory_id=run.pk)
    first, second = Escalation.objects.order_by("created_at", "id")

    log_in(page, live_server, qa_lead.username, PASSWORD)
    page.goto(f"{live_server.url}/escalations/")
    page.click(f"a[href='/escalations/{first.pk}/']")
    page.wait_for_selector("#decision-form")
    assert all(u.username not in page.content() for u in users)
    page.keyboard.press("3")  # accept C
    assert page.is_checked("input[name=choice][value=C]")
    page.keyboard.press("e")  # annotator error
    page.fill("textarea[name=reason]", "The lookup worked: +1.")
    page.keyboard.press("Control+Enter")  # resolve and open the next
    page.wait_for_url(f"**/escalations/{second.pk}/")
    first.refresh_from_db()
    assert (
        first.status == EscalationStatus.RESOLVED and first.decision == 1 and first.decision_kind == "annotator_error"
    )
    assert GoldItem.objects.filter(trajectory=first.trajectory).exists()

    page.keyboard.press("o")  # own value: the field takes the focus
    assert page.is_checked("input[name=choice][value=own]")
    page.select_option("#own-value select", "0")
    page.keyboard.press("a")  # a key typed in the value field is not a shortcut
    assert not page.is_checked("input[name=kind][value=ambiguous]")
    page.focus("textarea[name=reason]")
    page.fill("textarea[name=reason]", "Nothing says how to score a lookup nobody needed.")
    page.click("input[name=kind][value=ambiguous]")
    page.click("button[value=stay]")
    page.wait_for_selector("text=Ambiguous (guideline gap)")
    second.refresh_from_db()
    assert second.decision == 0 and not GoldItem.objects.filter(trajectory=second.trajectory).exists()
    assert all(u.username in page.content() for u in users)  # names once the decision is recorded
    assert not page.js_errors
