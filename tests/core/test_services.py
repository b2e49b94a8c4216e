import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction

from core.models import AuditEvent, Membership, Role
from core.services import membership_remove, membership_set, project_create
from tests.conftest import make_user

pytestmark = pytest.mark.smoke


def test_project_defaults_follow_the_kind(pm) -> None:
    coding = project_create(actor=pm, name="Coding", kind="coding")
    assert coding.agreement_target == 0.78
    assert [a["key"] for a in coding.rubric_axes] == [
        "relevance",
        "factual_grounding",
        "tool_selection",
        "redundancy",
        "unsafe_edits",
    ]
    assert "wrong_localisation" in [t["key"] for t in coding.failure_taxonomy]


def test_project_create_refuses_bad_input(pm, project) -> None:
    with pytest.raises(ValidationError) as exc:
        project_create(actor=pm, name="X", kind="chat")
    assert "kind" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        project_create(actor=pm, name="Other", kind="tool_use", slug=project.slug)
    assert "slug" in exc.value.message_dict


def test_membership_set_changes_role_and_records_before_and_after(project, pm) -> None:
    user = make_user("someone")
    membership_set(actor=pm, project=project, user=user, role=Role.ANNOTATOR)
    membership_set(actor=pm, project=project, user=user, role=Role.REVIEWER)
    membership_set(actor=pm, project=project, user=user, role=Role.REVIEWER)  # no change, no event
    assert Membership.objects.get(project=project, user=user).role == Role.REVIEWER
    events = list(AuditEvent.objects.filter(verb="membership.set", after__user="someone").order_by("id"))
    assert [e.before for e in events] == [None, {"role": "annotator"}]
    assert events[-1].actor == pm
    membership_remove(actor=pm, membership=Membership.objects.get(project=project, user=user))
    assert not Membership.objects.filter(project=project, user=user).exists()
    assert AuditEvent.objects.filter(verb="membership.remove", before__user="someone").exists()


def test_audit_log_is_append_only_in_the_database(project) -> None:
    event = AuditEvent.objects.filter(project=project).first()
    assert event is not None
    verb = event.verb
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(verb="tampered")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    event.refresh_from_db()
    assert event.verb == verb
