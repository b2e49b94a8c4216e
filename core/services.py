"""Writes for projects, membership and the audit log. Every write records an AuditEvent."""

from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils.text import slugify
from rest_framework.authtoken.models import Token

from core.defaults import project_defaults
from core.models import AuditEvent, Membership, Project, ProjectKind, Role

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
    slug = slug or slugify(name)[:80]
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
    project.save()
    audit_record(
        actor=actor,
        verb="project.create",
        target=project,
        project=project,
        after={"name": project.name, "slug": project.slug, "kind": project.kind},
    )
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
