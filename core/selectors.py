"""Reads that depend on who asks. An outsider gets Http404, never a hint that a thing exists."""

from datetime import datetime

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404
from rest_framework.authtoken.models import Token

from core.models import Membership, Project, Role

UserLike = User | AnonymousUser

# Who may do what, by role. Staff (admins) may do everything.
MANAGE_ROLES = frozenset({Role.PROJECT_MANAGER})
REVIEW_ROLES = frozenset({Role.PROJECT_MANAGER, Role.QA_LEAD, Role.REVIEWER})


def project_list_for_user(*, user: UserLike) -> QuerySet[Project]:
    if not isinstance(user, User):
        return Project.objects.none()
    if user.is_staff:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()


def project_create_allowed(*, user: UserLike) -> bool:
    """Staff, or whoever holds Django's `core.add_project` permission (the demo's project manager)."""
    return isinstance(user, User) and user.is_active and (user.is_staff or user.has_perm("core.add_project"))


def check_project_create(*, user: UserLike) -> None:
    if not project_create_allowed(user=user):
        raise PermissionDenied("You may not create projects; ask an administrator.")


def project_role_for_user(*, user: UserLike, project: Project) -> str | None:
    """The user's role in the project; staff who are not members act as project managers."""
    if not isinstance(user, User):
        return None
    role = Membership.objects.filter(user=user, project=project).values_list("role", flat=True).first()
    if role is None and user.is_staff:
        return Role.PROJECT_MANAGER
    return role


def project_get_for_user(*, user: UserLike, slug: str) -> tuple[Project, str]:
    """The project and the user's role in it; Http404 for anyone who is not a member."""
    if isinstance(user, User):  # a member: the project and the role in one query (every project page asks)
        membership = Membership.objects.filter(user=user, project__slug=slug).select_related("project").first()
        if membership is not None:
            return membership.project, membership.role
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise Http404("No such project.")
    role = project_role_for_user(user=user, project=project)
    if role is None:
        raise Http404("No such project.")
    return project, role


def project_members(*, project: Project) -> QuerySet[Membership]:
    return Membership.objects.filter(project=project).select_related("user").order_by("role", "user__username")


def check_role(*, role: str, allowed: frozenset[str]) -> None:
    """PermissionDenied unless `role` is one of `allowed` (the user is a member: 403, not 404)."""
    if role not in allowed:
        raise PermissionDenied("Your role in this project does not allow this.")


def api_token_created(*, user: User) -> datetime | None:
    """When the user's API token was made (None without one). The key itself is shown only once, when made."""
    return Token.objects.filter(user=user).values_list("created", flat=True).first()
