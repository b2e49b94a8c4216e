from django import template

from core.models import Role

register = template.Library()


@register.filter
def role_label(value: str) -> str:
    """A role's human label ("qa_lead" → "QA lead"); unknown values are shown as they are."""
    return str(Role(value).label) if value in Role.values else value
