"""Writes of a project's audit settings."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction

from audit.rules import rules_errors
from core.models import Project
from core.services import audit_record


@transaction.atomic
def consensus_rules_set(*, actor: User, project: Project, rules: dict[str, Any]) -> Project:
    errors = rules_errors(rules)
    if errors:
        raise ValidationError(errors)
    taxonomy = {str(t.get("key")) for t in project.failure_taxonomy if isinstance(t, dict)}
    unknown = [t for t in rules.get("high_severity_tags", []) if t not in taxonomy]
    if unknown:
        raise ValidationError(f"/high_severity_tags: not in the project's taxonomy: {', '.join(unknown)}")
    axes = {str(a.get("key")) for a in project.rubric_axes if isinstance(a, dict)}
    unknown = [a for a in rules.get("critical_axes", []) if a not in axes]
    if unknown:
        raise ValidationError(f"/critical_axes: not a rubric axis of the project: {', '.join(unknown)}")
    before = project.consensus_rules
    project.consensus_rules = rules
    project.save(update_fields=["consensus_rules"])
    audit_record(
        actor=actor, verb="project.consensus_rules", target=project, project=project, before=before, after=rules
    )
    return project
