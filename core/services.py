"""Writes for projects, membership and the audit log. Every write records an AuditEvent."""

import math
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils.text import slugify
from rest_framework.authtoken.models import Token

from core.defaults import project_defaults
from core.models import AuditEvent, Membership, Project, ProjectKind, Role
from core.project_settings import settings_json_errors, settings_keys

UserLike = User | AnonymousUser | None


def audit_record(
    *,
    actor: UserLike,
    verb: str,
    target: models.Model,
    project: Project | None = None,
    before: Any = None,
    after: Any = None,
) -> AuditEvent:
    """Append one event. Call inside the transaction of the write it describes."""
    return AuditEvent.objects.create(
        actor=actor if isinstance(actor, User) else None,
        project=project,
        verb=verb,
        target_type=target._meta.label_lower,
        target_id=str(target.pk),
        before=before,
        after=after,
    )


@transaction.atomic
def project_create(
    *,
    actor: UserLike,
    name: str,
    kind: str,
    slug: str = "",
    description: str = "",
    guidelines: str = "",
    overlap: int = 3,
) -> Project:
    if kind not in ProjectKind.values:
        raise ValidationError({"kind": f"must be one of {', '.join(ProjectKind.values)}"})
    if not name.strip():
        raise ValidationError({"name": "must not be empty"})
    slug = slug or slugify(name)[:80].strip("-")
    if not slug:
        raise ValidationError({"slug": "the name gives no slug (letters or digits): give one"})
    if Project.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": f"a project with slug {slug!r} already exists"})
    project = Project(
        name=name.strip(),
        slug=slug,
        kind=kind,
        description=description,
        guidelines=guidelines,
        overlap=overlap,
        created_by=actor if isinstance(actor, User) else None,
        **project_defaults(kind),
    )
    project.full_clean()
    try:
        with transaction.atomic():  # another request may have taken the slug since the check above
            project.save()
    except IntegrityError as exc:
        raise ValidationError({"slug": f"a project with slug {slug!r} already exists"}) from exc
    audit_record(
        actor=actor,
        verb="project.create",
        target=project,
        project=project,
        after={"name": project.name, "slug": project.slug, "kind": project.kind},
    )
    return project


@transaction.atomic
def project_create_managed(*, actor: User, name: str, kind: str, slug: str = "", description: str = "") -> Project:
    """A new project whose creator is its project manager (the "New project" page and the API)."""
    project = project_create(actor=actor, name=name, kind=kind, slug=slug, description=description)
    membership_set(actor=actor, project=project, user=actor, role=Role.PROJECT_MANAGER)
    return project


# The settings a project manager edits, with the range each must stay in (the model's check constraints).
_RANGES: dict[str, tuple[float, float]] = {
    "overlap": (1, 9),
    "agreement_target": (-1, 1),
    "calibration_threshold": (-1, 1),
    "gold_rate": (0, 1),
    "review_rate": (0, 1),
}
_TEXTS: dict[str, int] = {"name": 200, "description": 20_000, "guidelines": 200_000}
EDITABLE = (*_TEXTS, *_RANGES, "rubric_axes", "failure_taxonomy")


def _check_settings(project: Project, changes: dict[str, Any]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for field, value in changes.items():
        if field in _TEXTS:
            if not isinstance(value, str):
                errors[field] = ["must be text"]
            elif "\x00" in value:
                errors[field] = ["must not contain a NUL character"]
            elif len(value) > _TEXTS[field]:
                errors[field] = [f"at most {_TEXTS[field]} characters (this is {len(value)})"]
            elif field == "name" and not value.strip():
                errors[field] = ["must not be empty"]
        elif field in _RANGES:
            low, high = _RANGES[field]
            whole = field == "overlap"
            if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
                errors[field] = ["must be a whole number" if whole else "must be a number"]
            elif not math.isfinite(value) or not low <= value <= high:
                errors[field] = [f"must be between {low:g} and {high:g}"]
        else:
            problems = settings_json_errors(field, value)
            if problems:
                errors[field] = problems
    # The consensus rules (audit's editor) name axes and tags; that editor refuses names the project lacks.
    rules = project.consensus_rules if isinstance(project.consensus_rules, dict) else {}
    for field, rule in (("rubric_axes", "critical_axes"), ("failure_taxonomy", "high_severity_tags")):
        if field in changes and field not in errors:
            named = [str(k) for k in rules.get(rule, []) if isinstance(rules.get(rule), list)]
            gone = [k for k in named if k not in settings_keys(changes[field])]
            if gone:
                errors[field] = [
                    f"the consensus rules' /{rule} name {', '.join(map(repr, gone))}: "
                    "take them out of the consensus rules first"
                ]
    return errors


@transaction.atomic
def project_update(*, actor: User, project: Project, changes: dict[str, Any]) -> Project:
    """Change a project's settings (only the fields in `changes`, each one of EDITABLE). Every value is checked
    before anything is saved; changed guidelines bump guideline_version. One audit event holds the changed
    fields' values before and after.

    Removing a rubric axis or a failure tag is allowed even when labels use it: every reader (annotation's
    forms, consensus, agreement, exports) iterates the project's current keys and skips others, so those
    labels still read; the removed key's values stay stored and stop counting."""
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise ValidationError({field: ["is not a setting that can be changed here"] for field in unknown})
    locked = Project.objects.select_for_update().get(pk=project.pk)
    errors = _check_settings(locked, changes)
    if errors:
        raise ValidationError(errors)
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for field, value in changes.items():
        value = value.strip() if field == "name" else value
        if field in _RANGES and field != "overlap":
            value = float(value)
        if getattr(locked, field) != value:
            before[field], after[field] = getattr(locked, field), value
            setattr(locked, field, value)
    if "guidelines" in after:
        before["guideline_version"] = locked.guideline_version
        locked.guideline_version += 1
        after["guideline_version"] = locked.guideline_version
    if after:
        locked.save(update_fields=list(after))
        audit_record(actor=actor, verb="project.update", target=locked, project=locked, before=before, after=after)
    for field in after:
        setattr(project, field, getattr(locked, field))
    return project


@transaction.atomic
def membership_set(*, actor: UserLike, project: Project, user: User, role: str) -> Membership:
    """Give `user` `role` in `project`, replacing any role they had there."""
    if role not in Role.values:
        raise ValidationError({"role": f"must be one of {', '.join(Role.values)}"})
    membership = Membership.objects.select_for_update().filter(project=project, user=user).first()
    before = {"role": membership.role} if membership else None
    if membership is None:
        membership = Membership.objects.create(project=project, user=user, role=role)
    elif membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    else:
        return membership
    audit_record(
        actor=actor,
        verb="membership.set",
        target=membership,
        project=project,
        before=before,
        after={"user": user.get_username(), "role": role},
    )
    return membership


@transaction.atomic
def membership_remove(*, actor: UserLike, membership: Membership) -> None:
    project = membership.project
    before = {"user": membership.user.get_username(), "role": membership.role}
    audit_record(actor=actor, verb="membership.remove", target=membership, project=project, before=before)
    membership.delete()


@transaction.atomic
def api_token_rotate(*, user: User) -> Token:
    """A new API token for the user; the one they had stops working at once."""
    Token.objects.filter(user=user).delete()
    token = Token.objects.create(user=user)
    audit_record(actor=user, verb="api_token.rotate", target=user)
    return token


@transaction.atomic
def api_token_revoke(*, user: User) -> bool:
    """The user's API token deleted (False when they had none)."""
    deleted, _ = Token.objects.filter(user=user).delete()
    if deleted:
        audit_record(actor=user, verb="api_token.revoke", target=user)
    return bool(deleted)
