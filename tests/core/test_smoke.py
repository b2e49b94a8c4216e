import pytest

from core.models import AuditEvent, Project

pytestmark = pytest.mark.smoke


def test_project_create_records_an_audit_event(project: Project) -> None:
    events = AuditEvent.objects.filter(project=project, verb="project.create")
    assert events.count() == 1
    assert events.get().after["kind"] == "tool_use"
    assert project.agreement_target == 0.82
    assert [a["key"] for a in project.rubric_axes][:2] == ["politeness", "clarification"]
